"""A scripted policy that cheats: it reads the arena's world state.

It exists to show that survival in the arena needs behaviour (seek food, avoid
hazards) and that such behaviour can live for thousands of steps. It is never
used for learning.
"""
from __future__ import annotations

import math

import numpy as np

from edge_runtime.evaluate import Policy, PolicyError

from .arena import Arena


class OraclePolicy:
    def __init__(self, arena: Arena, patience: int = 120):
        self.arena = arena
        self.patience = patience
        self._target = None  # (index, position) of the food being chased
        self._since = 0
        self._banned: dict[int, int] = {}

    def __call__(self, sense=None) -> tuple[int, int]:
        a = self.arena
        c = a.cfg
        w = a.world_state()
        pos, heading = w["pos"], w["heading"]
        # attraction to the nearest food whose path does not cross a hazard
        food = w["food"]
        self._since += 1
        self._banned = {i: n - 1 for i, n in self._banned.items() if n > 1}
        if self._target is not None:
            i, p = self._target
            if not np.allclose(food[i], p):  # eaten: pick a new one
                self._target = None
            elif self._since > self.patience:  # stuck behind something: try another for a while
                self._banned[i] = 3 * self.patience
                self._target = None
        if self._target is None:
            best_i, best_d = None, np.inf
            for i, f in enumerate(food):
                d = np.hypot(*(f - pos)) + (3.0 if self._blocked(pos, f, w) else 0.0)
                if i not in self._banned and d < best_d:
                    best_i, best_d = i, d
            if best_i is None and len(food):
                best_i = int(np.argmin(np.hypot(*(food - pos).T)))
            if best_i is not None:
                self._target = (best_i, food[best_i].copy())
                self._since = 0
        best = None if self._target is None else self._target[1]
        goal = np.zeros(2) if best is None else (best - pos) / max(np.hypot(*(best - pos)), 1e-6)
        # repulsion from hazards, obstacles and walls, stronger when close
        rep = np.zeros(2)
        for arr, rad, gain in ((w["hazards"], c.hazard_radius, 3.0), (w["obstacles"], c.obstacle_radius, 1.0)):
            for h in arr:
                d = pos - h
                dist = np.hypot(*d) - rad - c.robot_radius
                if dist < 1.2:
                    rep += gain * d / max(np.hypot(*d), 1e-6) * (1.2 - dist) / max(dist, 0.05)
        for k in range(2):
            if pos[k] < 0.8:
                rep[k] += (0.8 - pos[k]) * 2
            if pos[k] > c.size - 0.8:
                rep[k] -= (pos[k] - (c.size - 0.8)) * 2
        want = goal + 0.5 * rep
        target = math.atan2(want[1], want[0])
        err = (target - heading + math.pi) % (2 * math.pi) - math.pi
        step = math.radians(c.turn_rate_deg)
        turn = 0 if err > step / 2 else (2 if err < -step / 2 else 1)
        drive = 2 if abs(err) < math.radians(45) else 1
        return (drive, turn)

    @staticmethod
    def _blocked(pos, goal, w) -> bool:
        seg = goal - pos
        L = np.hypot(*seg)
        if L < 1e-6:
            return False
        u = seg / L
        for h in w["hazards"]:
            rel = h - pos
            along = float(rel @ u)
            if 0 < along < L and abs(rel[0] * u[1] - rel[1] * u[0]) < 0.7:
                return True
        return False


class OracleBaseline(Policy):
    """The oracle as an evaluation policy: `edge-runtime eval --policy oracle` on the arena."""

    name = "oracle"
    action_repeat = 1  # a per-step controller: holding its action for several steps only makes it clumsier

    def start_life(self, body, seed):
        if not isinstance(body, Arena):
            raise PolicyError("oracle: only the built-in arena exposes the world state an oracle reads")
        self.o = OraclePolicy(body)

    def __call__(self, sense):
        return self.o()
