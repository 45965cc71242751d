"""Wiring for the CLI and the service: the hooks a run needs, run directories, `checkpoints verify`."""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path

from ..config import Config, ConfigError, learner_backend
from ..runtime import Hook
from .fileformat import NoValidCheckpoint, decode, is_numpy_payload
from .hook import CheckpointHook, _mb, budget
from .state import check_matches
from .store import CheckpointStore, resolve_dir

log = logging.getLogger("edge_runtime.checkpoint")


def checkpoint_hooks(cfg: Config, spec, run_dir: str | Path, resume: str = "no", seed: int = 0) -> tuple[list[Hook], int]:
    """The hooks a run needs for checkpoints, and the seed to run with.

    resume: "no" (fresh start), "yes" (the newest valid checkpoint must exist and match),
    "auto" (resume if there is a valid checkpoint, else start fresh; for the service).
    Raises CheckpointError (NoValidCheckpoint, CheckpointMismatch) and ConfigError.
    """
    c = cfg.section("checkpoint")
    d = store_dir(cfg, run_dir)
    store = CheckpointStore(d)
    state = None
    if resume in ("yes", "auto"):
        try:
            info, state = store.load()
        except NoValidCheckpoint:
            if resume == "yes":
                raise
            bad = sorted(d.glob("ckpt-*.bin")) if d.is_dir() else []
            if bad:
                # none of them loads: keep them for a post-mortem, out of the new run's way
                stamp = time.strftime("%Y%m%d-%H%M%S")
                for f in bad:
                    f.rename(f.with_name(f"{f.name}.corrupt-{stamp}"))
                log.warning("%s: %d checkpoint file(s), none valid: kept as *.corrupt-%s, starting fresh",
                            d, len(bad), stamp)
            else:
                log.info("no checkpoint in %s: starting fresh", d)
        if state is not None:
            check_matches(state, cfg, spec, where=f"checkpoint {info.path} (step {info.step})")
            seed = int(state["meta"]["seed"])
            log.info("resuming from %s, sequence %d, step %d", info.path, info.sequence, info.step)
    if not c.enabled:
        if state is not None:
            raise ConfigError("checkpoint.enabled: resuming needs checkpoints enabled")
        return [], seed
    return [CheckpointHook(store, c, resume_state=state)], seed


def pin_backend_to_checkpoint(cfg: Config, run_dir: str | Path, resume: str) -> Config:
    """model.backend = auto, resuming: the learner the run's newest valid checkpoint was written by (a numpy
    payload: numpy; else torch), so that a run begun before auto chose numpy (or under another resolution of
    auto) goes on with its own learner. Any other model.backend, or nothing to resume: cfg unchanged."""
    if cfg.model.backend != "auto" or resume == "no" or not cfg.section("checkpoint").enabled:
        return cfg
    sd = store_dir(cfg, run_dir)
    best = CheckpointStore(sd).newest() if sd.is_dir() else None
    if best is None:
        return cfg  # (checkpoint_hooks says what is missing or damaged)
    saved = "numpy" if is_numpy_payload(best[1]) else "torch"
    if saved != learner_backend(cfg.model, cfg.rule.name):
        log.info("model.backend = auto: this run's checkpoint was written by the %s learner; it goes on with it", saved)
    return cfg.replace("model", backend=saved)


def store_dir(cfg: Config, run_dir: str | Path) -> Path:
    """Where a run's checkpoints live: checkpoint.dir, relative to the run directory unless absolute."""
    c = cfg.section("checkpoint")
    return Path(c.dir) if Path(c.dir).is_absolute() else Path(run_dir) / c.dir


RUN_FILES = ("config.toml", "weights.pt", "weights.npz", "metrics.jsonl", "lives.jsonl", "summary.json")


def run_dir_holds_a_run(cfg: Config, run_dir: str | Path) -> str | None:
    """None when run_dir is free to start in; else what it holds, starting "a checkpoint" when one is valid
    and "no valid checkpoint" otherwise."""
    d = Path(run_dir)
    files = [f for f in RUN_FILES if (d / f).exists()]
    sd = store_dir(cfg, run_dir)
    slots = sorted(sd.glob("ckpt-*.bin*")) if sd.is_dir() else []
    if not files and not slots:
        return None
    store = CheckpointStore(sd)
    best = store.newest(store.scan(decode_payload=True))  # (quietly: load() would log each slot)
    if best is not None:
        return f"a checkpoint at step {best[0].step}, sequence {best[0].sequence}"
    return f"no valid checkpoint; {', '.join(files + [p.name for p in slots][:2])}"


def set_run_aside(cfg: Config, run_dir: str | Path) -> Path:
    """Rename run_dir (and an absolute checkpoint.dir outside it) to <name>.old-<time>; nothing is deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = Path(run_dir)
    sd = store_dir(cfg, run_dir)
    moved = []
    outside = sd.is_dir() and sd.resolve() != d.resolve() and d.resolve() not in sd.resolve().parents
    for src in ([d] if d.exists() else []) + ([sd] if outside else []):
        dest = src.with_name(f"{src.name}.old-{stamp}")
        n = 1
        while dest.exists():
            dest = src.with_name(f"{src.name}.old-{stamp}-{n}")
            n += 1
        src.rename(dest)
        moved.append(dest)
    return moved[0] if moved else d


def verify(path: str | Path) -> dict:
    """What `edge-runtime checkpoints verify DIR --json` prints."""
    store = CheckpointStore(resolve_dir(path))
    scanned = store.scan(decode_payload=True)
    best = store.newest(scanned)
    out = {"valid": best is not None, "dir": str(store.dir), "slot": None, "sequence": None, "step": None,
           "slots": [i.to_dict() for i, _ in scanned]}
    if best is not None:
        info, payload = best
        state = decode(payload)
        meta = state.get("meta", {}) if isinstance(state.get("meta"), dict) else {}
        out.update(slot=info.slot, sequence=info.sequence, step=info.step, rule=meta.get("rule"),
                   seed=meta.get("seed"), created=info.created, bytes=info.bytes)
        try:
            c = Config.from_dict(json.loads(state["config"])).section("checkpoint")
            out["wear"] = budget(info.bytes, c)
        except (ConfigError, KeyError, TypeError, ValueError):
            pass
    return out


def format_verify(res: dict) -> str:
    lines = [f"{res['dir']}: {'valid' if res['valid'] else 'NO VALID CHECKPOINT'}"
             + (f" - newest is slot {res['slot']}, sequence {res['sequence']}, step {res['step']}" if res["valid"] else "")]
    for s in res["slots"]:
        lines.append(f"  slot {s['slot']}: " + (f"ok, sequence {s['sequence']}, step {s['step']}, {s['bytes']} bytes"
                                                if s["valid"] else f"invalid: {s['error']}"))
    if "wear" in res:
        w = res["wear"]
        lines.append(f"  wear budget: {_mb(w['bytes_per_day_timer'])}/day from the timer (every {w['every_s']:.0f} s)")
    return "\n".join(lines)
