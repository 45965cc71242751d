"""`EdgeArena-v0`: the built-in arena as a gymnasium env.

Body signals travel in the observation (hp, energy, touch); the reward is
always 0.0 because the world hands out no score. Death is termination.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from .arena import Arena, ArenaConfig


def sense_obs(s) -> dict:
    """A Sense as an EdgeArena-v0 observation (what a policy trained on the env reads, in any harness)."""
    return {"left": s.left, "right": s.right, "touch": s.touch.astype(np.float32),
            "body": np.array([s.hp, s.energy], np.float32)}


class EdgeArenaEnv(gym.Env):
    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}
    action_names = ("drive", "turn")  # the heads of the arena's robot, by name (GymBody reads them)

    def __init__(self, config: ArenaConfig | None = None, render_mode: str | None = None, **overrides):
        cfg = config or ArenaConfig(**overrides)
        self.arena = Arena(cfg)
        self.render_mode = render_mode
        h, w = cfg.eye_h, cfg.eye_w
        self.observation_space = spaces.Dict({
            "left": spaces.Box(0, 255, (h, w, 3), np.uint8),
            "right": spaces.Box(0, 255, (h, w, 3), np.uint8),
            "touch": spaces.Box(0.0, 1.0, (cfg.n_touch,), np.float32),
            "body": spaces.Box(0.0, 1.0, (2,), np.float32),  # hp, energy
        })
        self.action_space = spaces.MultiDiscrete([n for n in self.arena.spec.action_heads.values()])
        self._last = None

    def _obs(self, s):
        self._last = s
        return sense_obs(s)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        if seed is None:
            seed = int(self.np_random.integers(2**31))
        s = self.arena.reset(seed=seed)
        return self._obs(s), {"frame_id": s.frame_id}

    def step(self, action):
        s = self.arena.act(tuple(int(a) for a in np.asarray(action).reshape(-1)))
        return self._obs(s), 0.0, bool(s.dead), False, {"frame_id": s.frame_id, **self.arena.counters}

    def render(self):
        if self._last is None:
            return None
        return np.concatenate([self._last.left, self._last.right], 1)

    def close(self):
        self.arena.close()
