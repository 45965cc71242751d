"""What every `edge-runtime` command shares: one-line usage errors, the common options, --config and --set."""
from __future__ import annotations

import argparse

from .config import Config, ConfigError


class UsageError(Exception):
    pass


class Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2
        raise UsageError(message)


def _add_common(p: argparse.ArgumentParser, steps_default=None):
    p.add_argument("--config", metavar="FILE.toml", help="configuration file (TOML)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one config value, e.g. --set rule.rollback=false (repeatable)")
    p.add_argument("--rule", help="learning rule: survival (default) | seed-v1")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])


def parse_value(text: str):
    from .config import tomllib

    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text  # a bare string


def load_config(args) -> Config:
    cfg = Config.load(args.config) if getattr(args, "config", None) else Config()
    d = cfg.to_dict()
    for item in getattr(args, "set", []) or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise ConfigError(f"--set {item!r}: expected SECTION.KEY=VALUE")
        key, val = item.split("=", 1)
        sec, k = key.split(".", 1)
        d.setdefault(sec, {})[k] = parse_value(val)
    if getattr(args, "rule", None):
        d["rule"]["name"] = args.rule
    return Config.from_dict(d)


def _positive(name, v):
    if v is not None and v <= 0:
        raise UsageError(f"{name} must be > 0, got {v}")
