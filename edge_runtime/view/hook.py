"""The loop's side of the live view: a snapshot at most `hz` times a second, only while a page is open."""
from __future__ import annotations

import logging
import time

import numpy as np

from ..acting import body_vector, eyes_at
from ..hooks import Hook
from ..runtime import RULE_METRICS
from .server import ViewServer

log = logging.getLogger("edge_runtime.view")



class ViewHook(Hook):
    """Runner hook: publishes snapshots to a ViewServer. `hw` is the size the brain sees its eyes at."""

    def __init__(self, server: ViewServer, hw: tuple[int, int], hz: float = 10.0):
        self.server = server
        self.hw = (int(hw[0]), int(hw[1]))
        self.period = 1.0 / hz
        self._next = 0.0
        self._rate_t = None
        self._rate_steps = 0
        self.published = 0

    def on_start(self, runner):
        self.server.start()
        log.info("live view: %s%s", self.server.url, " (open it with ?token=..., the view's token)" if self.server.token else "")

    def on_step(self, runner, sense, metrics):
        if self.server.clients == 0:  # nobody is watching: nothing to do, not even the clock
            self._rate_t = None
            return
        now = time.monotonic()
        if now < self._next:
            return
        self._next = now + self.period
        self.server.publish(self.snapshot(runner, sense, metrics, now))
        self.published += 1

    def on_wait(self, runner, waiting_for):
        """A dead robot waiting for its revive: the page goes on showing it (no steps run meanwhile)."""
        if runner.sense is not None:
            self.on_step(runner, runner.sense, runner.last)

    def on_stop(self, runner, summary):
        self.server.close()
        log.info("live view closed: %d pages served, %d dropped, %d refused", self.server.served,
                 self.server.dropped, self.server.refused)

    def snapshot(self, runner, sense, metrics: dict, now: float) -> dict:
        """What one frame shows; plain data, copied (the loop goes on changing its own)."""
        rule = runner.rule
        steps = rule.steps
        if self._rate_t is None:
            rate = None
        else:
            dt = now - self._rate_t
            rate = round((steps - self._rate_steps) / dt, 1) if dt > 0 else None
        self._rate_t, self._rate_steps = now, steps
        left, right = eyes_at(sense, self.hw)
        spec = runner.body.spec
        bv = body_vector(sense, spec.touch_channels)
        regions = rule.regions_now() or {"heads": {}, "loss": [], "lr": [], "thought": []}
        return {
            "t": round(time.time(), 3), "step": steps, "body_step": runner.body_steps, "life": len(runner.lifespans) + 1,
            "life_steps": runner.life_steps, "steps_per_s": rate, "learning": bool(rule.learning),
            "left": np.array(left, np.uint8, copy=True), "right": np.array(right, np.uint8, copy=True),
            # hp and energy rounded from the sense itself, as metrics.jsonl rounds them: their float32 copies in
            # the body vector can round the other way at the 4th decimal (0.14725000001: 0.1473, its float32: 0.1472)
            "hw": list(self.hw), "body": [round(float(sense.hp), 4), round(float(sense.energy), 4)]
            + [round(float(v), 4) for v in bv[2:]],
            "body_names": ["hp", "energy"] + [f"touch{i}" for i in range(spec.touch_channels)],
            "heads": {k: _r(p) for k, p in regions["heads"].items()}, "loss": _r(regions["loss"]),
            "lr": _r(regions["lr"]), "thought": _r(regions["thought"]),
            # the same rounding as metrics.jsonl, so a figure on the page is the figure in the file
            "metrics": {k: round(float(metrics[k]), 6) for k in RULE_METRICS if k in metrics},
            "lifespans": list(runner.lifespans[-30:]), "lives": len(runner.lifespans),
            "rollbacks": rule.rollbacks, "faults": rule.faults,
        }


def _r(xs: list[float]) -> list[float]:
    return [round(x, 5) for x in xs]
