"""Body kinds: how the runtime finds the bodies it can live in, without importing any of them.

A body package declares each kind it offers as a `BodyKind` and lists it under the `edge_runtime.bodies`
entry-point group of its distribution (pyproject.toml). The runtime looks kinds up by name when it needs one,
so `edge_runtime/` never imports `sim_bridge/` or `hardware/` (tests/test_import_graph.py checks it), and a third
party can add a body by shipping a package with such an entry point.

Commands a body package adds to the CLI (`edge-runtime virtual-mcu`, `bench godot`, `bench bad-day`) are found
the same way, under `edge_runtime.commands`.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Callable, Mapping

if TYPE_CHECKING:
    from .body import Body
    from .config import Config

BODY_GROUP = "edge_runtime.bodies"
COMMAND_GROUP = "edge_runtime.commands"


class BodyError(Exception):
    """A body could not be made (unknown kind, a device or a world that does not start); one line for the user."""


@dataclass(frozen=True)
class BodyKind:
    """What a body package tells the runtime about one kind of body.

    make(cfg, arg) builds the body from the whole config (`arg` is what follows the colon in `--body gym:ENV_ID`,
    else ""); it raises BodyError (or ConfigError naming a field) when it cannot.
    section / section_type: the config section the kind owns and always has (with its defaults when the file
    does not), typed by that dataclass.
    selected_by: config sections whose presence makes this the body of `run --config` without --body.
    policies: evaluation policies only this kind can run, name -> factory() returning an
    edge_runtime.evaluate.Policy (the arena's oracle reads its world state).
    config_sections: the other sections it reads, name -> "module:Class" of their dataclass (imported only when a
    config has or asks for that section). Every section is built into its dataclass when the config loads, so a
    bad key fails then, naming it; the body reads it typed with `cfg.section(name)`.
    """

    name: str
    make: Callable[["Config", str], "Body"]
    summary: str = ""
    section: str | None = None
    section_type: type | None = None
    selected_by: tuple[str, ...] = ()
    takes_arg: bool = False
    default: bool = False
    policies: Mapping[str, Callable[[], object]] = field(default_factory=dict)
    config_sections: Mapping[str, str] = field(default_factory=dict)  # other sections it reads: name -> "module:Class"


@functools.lru_cache(maxsize=1)
def kinds() -> dict[str, BodyKind]:
    """Every registered kind, by name (loaded from the entry points once)."""
    out = {}
    for ep in entry_points(group=BODY_GROUP):
        k = ep.load()
        if not isinstance(k, BodyKind) or k.name != ep.name:
            raise BodyError(f"entry point {ep.name} = {ep.value}: not a BodyKind named {ep.name!r}")
        out[k.name] = k
    return out


def known() -> str:
    return ", ".join(sorted(k.name + (":ARG" if k.takes_arg else "") for k in kinds().values())) or \
        "none (is edge-runtime installed? pip install -e .)"


def kind(name: str) -> BodyKind:
    k = kinds().get(name.split(":", 1)[0])
    if k is None:
        raise BodyError(f"--body {name!r}: unknown body (known: {known()})")
    if k.takes_arg != (":" in name and len(name.split(":", 1)[1]) > 0):
        raise BodyError(f"--body {name!r}: {'needs' if k.takes_arg else 'takes no'} an argument ({k.name}"
                        f"{':ARG' if k.takes_arg else ''})")
    return k


def default_kind() -> BodyKind:
    for k in kinds().values():
        if k.default:
            return k
    raise BodyError(f"no default body registered (known: {known()})")


def choose(cfg: "Config", name: str | None = None) -> tuple[BodyKind, str]:
    """The kind (and its argument) for --body NAME, or, without a name, the one the config's sections select."""
    if name:
        return kind(name), name.split(":", 1)[1] if ":" in name else ""
    for k in kinds().values():
        if any(cfg.has(s) for s in k.selected_by):
            return k, ""
    return default_kind(), ""


def make_body(cfg: "Config", name: str | None = None) -> "Body":
    k, arg = choose(cfg, name)
    return k.make(cfg, arg)


def section_loader(ref: str) -> Callable[[], type]:
    """"module:Class" -> a function importing and returning the class (config loading stays light)."""
    def load():
        import importlib

        mod, _, cls = ref.partition(":")
        return getattr(importlib.import_module(mod), cls)
    return load


def command(name: str) -> Callable:
    """A CLI command a body package contributes (entry point group edge_runtime.commands)."""
    for ep in entry_points(group=COMMAND_GROUP):
        if ep.name == name:
            return ep.load()
    raise BodyError(f"command {name!r} is not installed (is edge-runtime installed? pip install -e .)")
