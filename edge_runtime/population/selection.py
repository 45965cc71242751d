"""Selection by survival alone: who is replaced, by whom, and the perturbation a copy takes.

Score of an agent = the Kaplan-Meier median of its recent lives: its last `window` completed lives (deaths)
and the life it is living now, which has not ended and so counts as censored (it lasted at least this long).
An agent whose current life is already longer than its median is not judged by its past alone, and one
that never died scores its current life (the median's lower bound). No reward enters: only how long lives lasted.

Every G decisions, the `fraction` of agents ranked lowest are replaced:
    pbt         each takes the parameters and learning state of an agent drawn from the top `fraction`
    tournament  each takes those of the winner of a random pair drawn from the agents not being replaced
and the copy is perturbed (explore): every parameter tensor w <- w + sigma * std(w) * N(0, 1), and the
self-made rate's range [lr_min, lr_max] scaled by a factor drawn from {0.8, 1.25} (kept within (0, 1]).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

METHODS = ("none", "pbt", "tournament")


def km_median(lengths: list[float], censored: list[bool]) -> float:
    """Kaplan-Meier median survival: the first length where the survival estimate falls to 1/2 or below.

    When it never does (half or more of the lives have not ended), the median is only known to be beyond the
    longest life seen: that length is returned, a lower bound (an agent that has not died yet scores its
    current life, never an unbounded value that would rank a newborn above a veteran)."""
    if not lengths:
        return 0.0
    order = sorted(zip(lengths, censored), key=lambda x: (x[0], x[1]))  # deaths before censorings at a tie
    at_risk = len(order)
    s = 1.0
    for t, cens in order:
        if not cens:
            s *= 1.0 - 1.0 / at_risk
            if s <= 0.5:
                return float(t)
        at_risk -= 1
    return float(order[-1][0]) if order else 0.0


@dataclass
class Selection:
    method: str = "none"
    every: int = 500  # G: decisions between selection rounds
    fraction: float = 0.25  # the share replaced each round (and, for pbt, the share copied from)
    window: int = 8  # completed lives per agent that count
    sigma: float = 0.01  # weight noise, relative to each tensor's std
    lr_factors: tuple[float, float] = (0.8, 1.25)

    def __post_init__(self):
        if self.method not in METHODS:
            raise ValueError(f"--select: must be one of {'|'.join(METHODS)}, got {self.method!r}")
        if self.every < 1:
            raise ValueError("--select-every: must be >= 1")
        if not 0.0 < self.fraction <= 0.5:
            raise ValueError("--select-fraction: must be in (0, 0.5]")

    def score(self, lives: list[int], current: int) -> float:
        recent = lives[-self.window:]
        return km_median(recent + [current], [False] * len(recent) + [True])

    def plan(self, scores: list[float], rng: np.random.Generator) -> list[tuple[int, int]]:
        """[(child, parent)]: which agents are replaced by copies of which. Ties broken at random."""
        n = len(scores)
        k = max(1, int(round(self.fraction * n))) if n >= 2 else 0
        if self.method == "none" or k == 0:
            return []
        order = sorted(range(n), key=lambda i: (scores[i], rng.random()))
        losers, rest = order[:k], order[k:]
        out = []
        for child in losers:
            if self.method == "pbt":
                parent = int(rng.choice(order[-k:]))
            else:
                a, b = rng.choice(rest, size=2, replace=len(rest) < 2)
                parent = int(a if scores[a] >= scores[b] else b)
            if scores[parent] > scores[child]:
                out.append((child, parent))
        return out

    def perturb(self, state: dict, rng: np.random.Generator) -> dict:
        """A copy's exploration: weight noise and a rescaled self-made rate range (in place, returned)."""
        noise_seed = int(rng.integers(2**62))
        if self.sigma > 0:
            params = state["params"]
            if all(isinstance(w, np.ndarray) for w in params.values()):  # the numpy learner's agents
                g = np.random.default_rng(noise_seed)
                for k, w in params.items():  # new arrays: a copy from Ray's object store is read-only
                    if w.size > 1:
                        params[k] = w + (g.standard_normal(w.shape) * (self.sigma * float(w.std()))).astype(w.dtype)
            else:
                import torch

                g = torch.Generator().manual_seed(noise_seed)
                for w in params.values():
                    if w.numel() > 1:
                        w.add_(torch.randn(w.shape, generator=g) * (self.sigma * float(w.std())))
        f = float(rng.choice(self.lr_factors))
        lo, hi = state["lr_min"] * f, state["lr_max"] * f
        if hi > 1.0:  # keep the range inside (0, 1]: the bounded step may only shrink
            lo, hi = lo / hi, 1.0
        state["lr_min"], state["lr_max"] = lo, hi
        state["lr_factor"] = f
        return state

    def lineage(self, round_: int, step: int, child: int, parent: int, child_score: float, parent_score: float,
                perturbed: dict) -> dict:
        """One line of lineage.jsonl: who replaced whom, when, why, and how the copy was perturbed."""
        return {"round": round_, "step": step, "child": child, "parent": parent,
                "why": f"{self.method}: recent survival {_fmt(child_score)} < {_fmt(parent_score)} "
                       f"(Kaplan-Meier median of the last {self.window} lives and the current one)",
                "child_score": score_json(child_score), "parent_score": score_json(parent_score),
                "sigma": self.sigma, "lr_factor": perturbed["lr_factor"],
                "lr_min": round(perturbed["lr_min"], 6), "lr_max": round(perturbed["lr_max"], 6)}


def score_json(x: float) -> float:
    return round(float(x), 1)


def _fmt(x: float) -> str:
    return f"{x:.0f}"
