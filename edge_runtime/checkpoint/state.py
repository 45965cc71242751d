"""What a checkpoint holds: capture() a runner as plain data, check it matches, apply() it to a runner."""
from __future__ import annotations

import json
import logging
import time

import numpy as np

from ..body import Restorable
from ..config import MODEL_BACKEND_KEYS, Config, ConfigError, learner_backend
from ..runtime import Overrides
from .fileformat import VERSION, CheckpointMismatch

log = logging.getLogger("edge_runtime.checkpoint")


LIFESPANS_KEPT = 10_000  # the runner's lifespan list is kept up to this many recent lives
# config sections that only say how this process runs, not what the agent is: they may change across a resume
OPERATIONAL_SECTIONS = ("runtime", "checkpoint", "console", "service")


def _body_state(body) -> dict | None:
    """The world, where the body can put it back (a `Restorable` body, e.g. the arena). A real body: None."""
    if isinstance(body, Restorable):
        return {"kind": "custom", "state": body.checkpoint_state()}
    return None


def _load_body_state(body, st: dict | None):
    """Put the world back; returns the body's current Sense, or None when nothing was restored."""
    if st is None or not isinstance(body, Restorable):
        return None
    # "arena": checkpoints written before worlds saved themselves held the arena's fields at this level
    return body.load_checkpoint_state(st["state"] if st["kind"] == "custom" else st)


def _payload_kind(backend: str) -> str:
    """torch and ort learners hold the same torch state; a numpy learner's is numpy arrays."""
    return "numpy" if backend == "numpy" else "torch"


def capture(runner, seed: int | None = None) -> dict:
    """Everything resume needs, as plain data (tensors cloned, so a writer thread may serialise later)."""
    rule = runner.rule
    rs = rule.state_dict()
    lifespans = runner.lifespans[-LIFESPANS_KEPT:]
    if rule.net.name == "numpy":  # (torch is never imported by a numpy learner's run)
        rs = {k: v.copy() if isinstance(v, np.ndarray) else v for k, v in rs.items()}
        model = rule.brain.state_dict()  # copies
        lifespans = np.array(lifespans, dtype=np.int64)
    else:
        import torch

        rs = {k: ([x.clone() for x in v] if isinstance(v, list) and v and isinstance(v[0], torch.Tensor)
                  else v.clone() if isinstance(v, torch.Tensor) else v) for k, v in rs.items()}
        model = {k: v.detach().clone() for k, v in rule.brain.state_dict().items()}
        lifespans = torch.tensor(lifespans, dtype=torch.int64)
    return {
        "meta": {"format": VERSION, "step": int(rule.steps), "rule": rule.name, "towers": rule.brain.towers,
                 "seed": int(runner.seed if seed is None else seed), "created": time.time(), "backend": rule.net.name},
        "config": json.dumps(runner.cfg.to_dict(), sort_keys=True, default=str),
        "spec": json.dumps(runner.body.spec.to_dict(), sort_keys=True),
        "model": model,
        "rule": rs,
        "runner": {"body_steps": int(runner.body_steps), "life_steps": int(runner.life_steps),
                   "lives_completed": len(runner.lifespans), "lifespans": lifespans},
        "body": _body_state(runner.body),
        # console overrides are state of the run (not config): they come back on resume
        "overrides": json.dumps(runner.overrides.active(), sort_keys=True),
        # a real body's event counters (bumps, MCU boots...) over the run so far: they add up across restarts
        "body_counters": json.dumps(runner.body_counters(), sort_keys=True, default=str),
    }


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def differences(state: dict, cfg: Config, spec) -> list[str]:
    """What differs between a checkpoint and the config/body it is about to be loaded into (empty: they match)."""
    diffs = []
    saved = json.loads(state["config"])
    try:  # as this version reads it: a section saved partly (older versions) compares with its defaults filled in
        saved = json.loads(json.dumps(Config.from_dict(saved).to_dict(), sort_keys=True))
    except ConfigError:
        pass  # no longer a valid config: compared as saved, so every difference shows
    now = json.loads(json.dumps(cfg.to_dict(), sort_keys=True, default=str))
    for s in OPERATIONAL_SECTIONS:
        saved.pop(s, None)
        now.pop(s, None)
    a, b = _flat(saved), _flat(now)
    for k in MODEL_BACKEND_KEYS:  # a checkpoint written with torch resumes on ort and back
        a.pop(f"model.{k}", None)
        b.pop(f"model.{k}", None)
    saved_backend = state.get("meta", {}).get("backend", "torch")
    now_backend = learner_backend(cfg.model, cfg.rule.name)
    if _payload_kind(saved_backend) != _payload_kind(now_backend):  # ... but a numpy learner's state is its own
        diffs.append(f"model.backend: checkpoint {saved_backend!r}, now {now_backend!r}")
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            diffs.append(f"{k}: checkpoint {a.get(k, '<absent>')!r}, now {b.get(k, '<absent>')!r}")
    sa, sb = _flat(json.loads(state["spec"])), _flat(json.loads(json.dumps(spec.to_dict(), sort_keys=True)))
    for k in sorted(set(sa) | set(sb)):
        if sa.get(k, "<absent>") != sb.get(k, "<absent>"):
            diffs.append(f"body.{k}: checkpoint {sa.get(k, '<absent>')!r}, now {sb.get(k, '<absent>')!r}")
    return diffs


def check_matches(state: dict, cfg: Config, spec, where: str = "checkpoint"):
    diffs = differences(state, cfg, spec)
    if diffs:
        more = f" (+{len(diffs) - 8} more)" if len(diffs) > 8 else ""
        raise CheckpointMismatch(f"{where} belongs to a different config/body, refusing to load it: "
                                 f"{'; '.join(diffs[:8])}{more}")


def apply(runner, state: dict):
    """Load a checkpoint into a runner whose body has just been reset (the Runner calls hooks' on_start then)."""
    rule = runner.rule
    if state["meta"]["rule"] != rule.name:
        raise CheckpointMismatch(f"checkpoint is for rule {state['meta']['rule']!r}, this run uses {rule.name!r}")
    saved = state["meta"].get("backend", "torch")  # (checkpoints before the numpy learner: torch)
    if _payload_kind(saved) != _payload_kind(rule.net.name):
        raise CheckpointMismatch(f"checkpoint was written with model.backend = {saved}, this run uses "
                                 f"{rule.net.name}: set model.backend = {saved} to resume it")
    rule.brain.load_state_dict(state["model"], strict=True)
    rule.load_state_dict(state["rule"])
    rule._cur = None
    # the RAM ring and the death-replay window are not on flash: they restart from the resumed state
    rule.ring.clear()
    if getattr(rule, "window", None) is not None:
        rule.window.clear()
    rule.take_snapshot()
    r = state["runner"]
    runner.body_steps, runner.life_steps = r["body_steps"], r["life_steps"]
    runner.lifespans = [int(x) for x in r["lifespans"].tolist()]
    sense = _load_body_state(runner.body, state["body"])
    if sense is not None:
        runner.sense = sense  # the world is back, its own counters with it
    elif "body_counters" in state:
        runner.counters_before = json.loads(state["body_counters"])
    if "overrides" in state:
        runner.overrides = Overrides.from_dict(json.loads(state["overrides"]))  # applied by the runner after on_start
