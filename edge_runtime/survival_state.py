"""The survival rule's bookkeeping that needs no tensors: the running scale of discomfort and the setback
measure over lives. The torch rule (rules/survival.py), the population and the numpy learner share them."""
from __future__ import annotations

import math
import statistics
from collections import deque


class RunningScale:
    """Divide a signal by the running std of its discounted sum (Welford), as stream-x scales its signal."""

    def __init__(self, gamma: float):
        self.gamma = gamma
        self.u = 0.0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def __call__(self, x: float, end: bool) -> float:
        self.u = self.gamma * self.u + x
        self.n += 1
        d = self.u - self.mean
        self.mean += d / self.n
        self.m2 += d * (self.u - self.mean)
        if end:
            self.u = 0.0
        var = self.m2 / self.n if self.n > 1 else 1.0
        return x / math.sqrt(var + 1e-8)

    def state(self) -> dict:
        return {"u": self.u, "n": self.n, "mean": self.mean, "m2": self.m2}

    def load(self, d: dict):
        self.u, self.n, self.mean, self.m2 = d["u"], d["n"], d["mean"], d["m2"]


class Setback:
    """f in [0, 1]: how far the median of the last n lives (in decisions) fell below setback_ratio * the best
    such median, which fades by setback_decay per life; 0 until n lives are done. See the module docstring."""

    def __init__(self, cfg):
        self.cfg = cfg
        self.life_len = 0  # decisions in the current life
        self.lifespans: deque = deque(maxlen=cfg.setback_lives)
        self.median = 0.0  # of lifespans: it changes only at a death, and f is read every decision
        self.best = 0.0

    def count(self, dead: bool):
        """One decision lived; at a death, the life joins the median and the best is updated."""
        self.life_len += 1
        if not dead:
            return
        self.lifespans.append(self.life_len)
        self.life_len = 0
        self.median = statistics.median(self.lifespans)
        if len(self.lifespans) == self.lifespans.maxlen:
            self.best = max(self.best * self.cfg.setback_decay, self.median)

    def __call__(self) -> float:
        c = self.cfg
        if len(self.lifespans) < c.setback_lives or self.best <= 0:
            return 0.0
        recent = max(self.median, self.life_len)
        return min(1.0, max(0.0, 1.0 - recent / (c.setback_ratio * self.best)))

    def target_fraction(self) -> float:
        """The entropy target as a fraction of each head's maximum, raised toward setback_entropy_target by f."""
        c = self.cfg
        if c.setback_entropy_target <= c.entropy_target:
            return c.entropy_target
        return c.entropy_target + self() * (c.setback_entropy_target - c.entropy_target)

    def state(self) -> dict:
        return {"life_len": self.life_len, "lifespans": list(self.lifespans), "best": self.best}

    def load(self, d: dict):
        self.life_len, self.best = d["life_len"], d["best"]
        self.lifespans = deque(d["lifespans"], maxlen=self.cfg.setback_lives)
        self.median = statistics.median(self.lifespans) if self.lifespans else 0.0


def step_metrics(d_now: float, lr_scale: float, a_pi: float, entropy: float, delta: float, discomfort: float,
                 log_beta: list[float], setback: float) -> dict:
    """What the survival rule reports per decision, whatever computes it (named in the rule's docstring)."""
    return {"self_loss": d_now, "self_lr": lr_scale, "lr_eff": lr_scale * a_pi, "entropy": entropy, "td_error": delta,
            "discomfort": discomfort, "entropy_w": round(math.exp(max(log_beta)), 6), "setback": setback}
