"""Any gymnasium env as a body (`edge-runtime run --body gym:ENV_ID`).

Observations:

* images (a Box of shape HxWx{1,3,4}, HxW, or {1,3,4}xHxW; uint8, or floats in
  0..1) become the eyes, resized to ``eye_shape`` (area interpolation) and
  converted to RGB. One image feeds both eyes; in a Dict, keys naming ``left``
  and ``right`` pick the eyes, else the first two images (sorted keys).
* vectors (other Boxes) become the touch/body vector, flattened, as float32,
  NaNs zeroed, in sorted key order; a Discrete observation becomes a one-hot.
* ``hp``/``health`` and ``energy``/``battery`` keys (one value each) are the
  body scalars; a two-value ``body`` key is read as [hp, energy] (the layout of
  ``EdgeArena-v0``). Without an hp key, an ``info["lives"]`` count (the ALE
  convention) is read as hp = lives left / lives at the episode's start: losing
  a life is an injury, game over is death. Without any of them hp and energy
  stay 1.0: the body then feels only death.
* an env without image observations gets black eyes of ``eye_shape``, unless
  it renders ``rgb_array`` frames (``render_mode="rgb_array"``), which then
  feed both eyes.

Actions: Discrete(n) -> head ``action``; MultiDiscrete -> heads ``a0, a1...``
(or the env's ``action_names``); MultiBinary(n) -> n two-way heads; a Dict of
discrete spaces -> heads by key; a Box -> three choices (low, centre, high)
per dimension.

Termination is death; truncation is not: the env is reset and the life goes
on (``extra["truncated"] = True``). The env's reward is dropped here.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Optional

import numpy as np

from edge_runtime.body import DRIVE_TURN_HEADS, Action, Body, BodySpec, Sense, UncertainMortality
from edge_runtime.config import check

from .obs_sense import DEFAULT_EYES, ObsField, SenseMapper



@dataclass
class GymConfig:
    """The [gym] section: how `--body gym:ENV_ID` makes its env."""

    eye_shape: Optional[tuple[int, int]] = None  # [H, W] of the eyes (None: the env's own image size, or 48x64)
    kwargs: dict = field(default_factory=dict)  # [gym.kwargs]: keyword arguments for gymnasium.make
    decision_steps: int = 0  # env steps per decision (the body's action_repeat); 0: 4 for drive/turn heads, else 1

    def __post_init__(self):
        if self.eye_shape is not None:
            check(isinstance(self.eye_shape, (list, tuple)) and len(self.eye_shape) == 2
                  and all(isinstance(x, int) and x >= 8 for x in self.eye_shape), "gym.eye_shape",
                  f"must be [H, W], both integers >= 8, got {self.eye_shape!r}")
            self.eye_shape = tuple(self.eye_shape)
        check(isinstance(self.kwargs, dict), "gym.kwargs", "must be a table")
        check(self.decision_steps >= 0, "gym.decision_steps", "must be >= 0 (0: 4 for drive/turn heads, else 1)")


class GymBodyError(ValueError):
    """The env's spaces cannot be mapped onto a body."""


def _image_layout(space) -> tuple | None:
    """(H, W, C, channels_first) when `space` is an image Box, else None."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Box):
        return None
    s = space.shape
    if len(s) == 2 and min(s) >= 8:
        return s[0], s[1], 1, False
    if len(s) == 3:
        if s[2] in (1, 3, 4) and min(s[:2]) >= 8:
            return s[0], s[1], s[2], False
        if s[0] in (1, 3, 4) and min(s[1:]) >= 8:
            return s[1], s[2], s[0], True
    return None


class GymBody(Body, UncertainMortality):
    """A gymnasium env seen through the body contract."""

    def __init__(self, env, eye_shape: tuple[int, int] | None = None, name: str | None = None, control_hz: float = 10.0,
                 decision_steps: int = 0):
        from gymnasium import spaces

        self.env = env
        env_id = getattr(getattr(env, "spec", None), "id", None) or type(env.unwrapped).__name__
        self.name = name or f"GymBody({env_id})"
        self._closed = False
        self._frame = 0
        self._lives_full = 0  # lives at the episode's start, for envs that count them in info (ALE)
        self._dead = True
        self.truncations = 0
        obs_space = env.observation_space
        items = list(obs_space.spaces.items()) if isinstance(obs_space, spaces.Dict) else [(None, obs_space)]
        items.sort(key=lambda kv: "" if kv[0] is None else str(kv[0]))
        fields = []
        for k, sp in items:
            if (lay := _image_layout(sp)) is not None:
                fields.append(ObsField(k, "image", image=lay))
            elif isinstance(sp, spaces.Discrete):
                fields.append(ObsField(k, "discrete", int(sp.n)))
            elif isinstance(sp, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)):
                fields.append(ObsField(k, "box", int(np.prod(sp.shape))))
            else:
                raise GymBodyError(f"{self.name}: observation {k!r} ({type(sp).__name__}) is not supported")
        images = [f for f in fields if f.kind == "image"]
        self._use_render = not images and getattr(env, "render_mode", None) == "rgb_array"
        if eye_shape is None:
            first = SenseMapper(fields).left  # the image that will be the left eye
            eye_shape = tuple(next(f.image for f in images if f.key == first)[:2]) if images else DEFAULT_EYES
            if eye_shape[0] * eye_shape[1] > 96 * 128:  # the brain resizes again; keep the bridge cheap
                eye_shape = DEFAULT_EYES
        self.mapper = SenseMapper(fields, eye_shape, self.name)
        self._eye = self.mapper.eye_shape
        # actions
        self._act_space = env.action_space
        heads: list[tuple[str, int]] = []
        asp = env.action_space
        names = getattr(env.unwrapped, "action_names", None)
        if isinstance(asp, spaces.Discrete):
            heads = [("action", int(asp.n))]
            self._act_kind = "discrete"
        elif isinstance(asp, spaces.MultiDiscrete):
            nv = [int(n) for n in np.asarray(asp.nvec).reshape(-1)]
            hn = list(names) if names is not None and len(names) == len(nv) else [f"a{i}" for i in range(len(nv))]
            heads = list(zip(hn, nv))
            self._act_kind = "multi"
        elif isinstance(asp, spaces.MultiBinary):
            heads = [(f"a{i}", 2) for i in range(int(np.prod(asp.shape)))]
            self._act_kind = "binary"
        elif isinstance(asp, spaces.Dict) and all(isinstance(s, spaces.Discrete) for s in asp.spaces.values()):
            heads = [(str(k), int(s.n)) for k, s in asp.spaces.items()]
            self._act_kind = "dict"
        elif isinstance(asp, spaces.Box) and np.all(np.isfinite(asp.low)) and np.all(np.isfinite(asp.high)):
            heads = [(f"a{i}", 3) for i in range(int(np.prod(asp.shape)))]
            self._act_kind = "box"
        else:
            raise GymBodyError(f"{self.name}: action space {asp} is not supported (Discrete, MultiDiscrete, "
                               "MultiBinary, Dict of Discrete, bounded Box)")
        bad = [(h, n) for h, n in heads if n < 2]
        if bad:
            raise GymBodyError(f"{self.name}: action head(s) {bad} need at least 2 choices")
        wheeled = OrderedDict(heads) == DRIVE_TURN_HEADS  # EdgeArena-v0: the arena's robot
        self.spec = BodySpec(eye_shape=self._eye, touch_channels=self.mapper.touch_channels, action_heads=OrderedDict(heads),
                             control_hz=control_hz, name=self.name, still=(1, 1) if wheeled else self._still(heads),
                             action_repeat=decision_steps or (4 if wheeled else 1))

    def _still(self, heads) -> tuple | None:
        """The env's do-nothing action where its space says what that is, else None (no stationary baseline)."""
        asp = self.env.action_space
        if self._act_kind == "discrete":  # ALE names its actions: NOOP
            meanings = getattr(self.env.unwrapped, "get_action_meanings", None)
            names = list(meanings()) if callable(meanings) else []
            return (names.index("NOOP"),) if "NOOP" in names else None
        if self._act_kind == "binary":  # no button pressed
            return tuple(0 for _ in heads)
        if self._act_kind == "box" and np.allclose(np.asarray(asp.low), -np.asarray(asp.high)):  # zero force
            return tuple(1 for _ in heads)
        return None

    def why_it_cannot_die(self, probe_steps: int = 3000) -> str | None:
        """Random actions on this env until an episode terminates: a world that only ever truncates cannot kill."""
        asp = self.env.action_space
        asp.seed(12345)
        self.env.reset(seed=12345)
        truncations = 0
        for n in range(1, probe_steps + 1):
            _, _score, terminated, truncated, _ = self.env.step(asp.sample())  # the score is dropped here too
            if terminated:
                return None
            if truncated:
                truncations += 1
                self.env.reset()
        self._dead = True  # the probe used the env: the next life starts with a reset
        if truncations == 0:
            return None  # no episode ended either way: nothing says it cannot
        return (f"{self.name} ended its episodes only by truncation ({truncations} truncations and no termination "
                f"in {probe_steps} random {type(asp).__name__} actions): a time limit is not a death, so there is no lifespan to "
                "measure")

    @classmethod
    def make(cls, env_id: str, eye_shape=None, decision_steps: int = 0, **env_kwargs) -> "GymBody":
        import gymnasium as gym

        import sim_bridge  # noqa: F401  (registers EdgeArena-v0)

        try:
            env = gym.make(env_id, **env_kwargs)
        except gym.error.Error as e:
            raise GymBodyError(f"gym:{env_id}: {e}") from None
        try:
            return cls(env, eye_shape=eye_shape, decision_steps=decision_steps)
        except BaseException:
            env.close()
            raise

    # ------------------------------------------------------------ mapping
    def _sense(self, obs, dead: bool, extra: dict, new_episode: bool = False) -> Sense:
        self._frame += 1
        s = self.mapper.sense(obs, dead, self._frame, extra, fallback=self.env.render if self._use_render else None)
        lives = extra.get("lives")
        if self.mapper.hp is None and isinstance(lives, (int, np.integer)) and not isinstance(lives, bool):
            # the ALE convention: info["lives"] counts the lives a game has left; losing one is an injury the
            # body feels (hp = lives left / lives at the episode's start), game over is death
            if new_episode:
                self._lives_full = max(int(lives), 1)
            if self._lives_full:
                s.hp = float(np.clip(int(lives) / self._lives_full, 0.0, 1.0))
        return s

    def _to_env_action(self, action: Action):
        vals = self.spec.normalize_action(action)
        if self._act_kind == "discrete":
            return vals[0]
        if self._act_kind in ("multi", "binary"):
            return np.asarray(vals, dtype=self._act_space.dtype).reshape(self._act_space.shape)
        if self._act_kind == "dict":
            return {k: v for k, v in zip(self.spec.action_heads, vals)}
        lo = np.asarray(self._act_space.low, np.float64).reshape(-1)
        hi = np.asarray(self._act_space.high, np.float64).reshape(-1)
        a = lo + (hi - lo) * np.asarray(vals, np.float64) / 2.0
        return a.reshape(self._act_space.shape).astype(self._act_space.dtype)

    # ------------------------------------------------------------ contract
    def _check(self):
        if self._closed:
            raise RuntimeError(f"{self.name}: body is closed")

    def reset(self, seed: int | None = None) -> Sense:
        self._check()
        obs, info = self.env.reset(seed=seed)
        self._dead = False
        return self._sense(obs, False, _clean(info), new_episode=True)

    def act(self, action: Action) -> Sense:
        self._check()
        if self._dead:
            raise RuntimeError(f"{self.name}: act() on a dead body; call respawn() or reset()")
        obs, _dropped, terminated, truncated, info = self.env.step(self._to_env_action(action))  # the score is dropped
        extra = _clean(info)
        if terminated:
            self._dead = True
            return self._sense(obs, True, extra)
        if truncated:  # the episode was cut by a time limit: not a death, the life goes on in a fresh episode
            self.truncations += 1
            obs, info2 = self.env.reset()
            extra = {**_clean(info2), "truncated": True}
            return self._sense(obs, False, extra, new_episode=True)
        return self._sense(obs, False, extra)

    def respawn(self) -> Sense:
        return self.reset()

    @property
    def counters(self) -> dict:
        return {"truncations": self.truncations}

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.env.close()


def _clean(info: Any) -> dict:
    """Diagnostics only; anything that looks like a score stays behind."""
    if not isinstance(info, dict):
        return {}
    return {k: v for k, v in info.items() if "reward" not in str(k).lower() and "return" not in str(k).lower()}
