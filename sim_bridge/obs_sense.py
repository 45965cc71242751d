"""From a simulator's observation to a `Sense`: one mapping for every bridge (gymnasium envs, Godot worlds).

A bridge says what its observation holds as a list of `ObsField`s (which keys are images, which are vectors,
which are discrete), because *that* is protocol-specific: gymnasium tells by the space's shape, the Godot RL
Agents protocol by the key's name. What those fields then mean to the body is decided here, once:

* eyes: a key naming ``left`` and one naming ``right``; else the first images in sorted key order; one image
  feeds both eyes. Images are converted to uint8 RGB (gray repeated, alpha dropped, floats in 0..1 scaled) and
  resized to the eye shape with area interpolation.
* ``hp``/``health`` and ``energy``/``battery`` (one value each, any case) are the body scalars; without them, a
  two-value ``body`` key is read as [hp, energy]. Both are clipped to 0..1; a body without them stays at 1.0 and
  feels only death.
* everything else is the touch/body vector, in sorted key order: boxes flattened (NaN -> 0), discrete values
  one-hot.

Scores never reach this module: bridges drop them before.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable, Mapping, Optional, Sequence

import numpy as np

from edge_runtime.body import Sense

HP_KEYS = ("hp", "health")
ENERGY_KEYS = ("energy", "battery")
PAIR_KEY = "body"  # [hp, energy] in one two-value vector (the layout of EdgeArena-v0)
DEFAULT_EYES = (48, 64)  # eyes of a world that sends no images (black, or its rendered frame)


class ObservationError(ValueError):
    """An observation does not fit what its space declared."""


@dataclass(frozen=True)
class ObsField:
    """One entry of an observation, as its bridge reads the space."""

    key: object  # the dict key (None: the whole observation is this one field)
    kind: str  # image | box | discrete
    size: int = 0  # box: number of values; discrete: number of choices
    image: tuple = ()  # image: (H, W, C, channels_first)

    def __post_init__(self):
        if self.kind not in ("image", "box", "discrete"):
            raise ValueError(f"ObsField {self.key!r}: kind must be image|box|discrete, got {self.kind!r}")


def to_eye(img, eye_shape, channels_first: bool = False) -> np.ndarray:
    """Any image array -> uint8 RGB of eye_shape (H, W)."""
    a = np.asarray(img)
    if channels_first:
        a = np.moveaxis(a, 0, -1)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.dtype != np.uint8:
        a = a.astype(np.float32)
        if np.nanmax(a, initial=0.0) <= 1.0:
            a = a * 255.0
        a = np.clip(np.nan_to_num(a), 0, 255).astype(np.uint8)
    if a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    elif a.shape[2] == 4:
        a = a[:, :, :3]
    h, w = eye_shape
    if a.shape[:2] != (h, w):
        import cv2  # only when a world's images differ from the eyes (the Godot arena renders them at eye size)

        a = cv2.resize(np.ascontiguousarray(a), (w, h), interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(a)


def _sort_key(k) -> str:
    return "" if k is None else str(k)


class SenseMapper:
    """The mapping of one agent's observation fields onto eyes, the touch vector, HP and energy."""

    def __init__(self, fields: Sequence[ObsField], eye_shape: Optional[tuple] = None, name: str = "body"):
        self.name = name
        fields = sorted(fields, key=lambda f: _sort_key(f.key))
        images = [f for f in fields if f.kind == "image"]
        self.images = {f.key: f.image for f in images}
        keys = [f.key for f in images]
        left = next((k for k in keys if k is not None and "left" in str(k).lower()), None)
        right = next((k for k in keys if k is not None and "right" in str(k).lower()), None)
        rest = [k for k in keys if k not in (left, right)]
        if left is None and rest:
            left = rest.pop(0)
        if right is None:
            right = rest.pop(0) if rest else left
        self.left, self.right = (left, right) if keys else (None, None)
        if eye_shape is None:
            eye_shape = tuple(self.images[left][:2]) if keys else DEFAULT_EYES
        self.eye_shape = tuple(int(x) for x in eye_shape)
        self.hp = self.energy = self.pair = None
        vector = []
        others = [f for f in fields if f.kind != "image"]
        for f in others:
            lk = str(f.key).lower() if f.key is not None else ""
            if f.kind == "box" and f.size == 1 and lk in HP_KEYS and self.hp is None:
                self.hp = f.key
            elif f.kind == "box" and f.size == 1 and lk in ENERGY_KEYS and self.energy is None:
                self.energy = f.key
            else:
                vector.append(f)
        if self.hp is None and self.energy is None:
            pair = next((f for f in vector if f.kind == "box" and f.size == 2 and str(f.key).lower() == PAIR_KEY), None)
            if pair is not None:
                self.pair = pair.key
                vector.remove(pair)
        self.vector = vector
        self.touch_channels = sum(f.size for f in vector)

    def _value(self, obs, key):
        if key is None:
            return obs
        try:
            return obs[key]
        except (KeyError, IndexError, TypeError):
            raise ObservationError(f"{self.name}: observation has no {key!r}") from None

    def eyes(self, obs, decode: Callable | None = None, fallback=None) -> tuple[np.ndarray, np.ndarray]:
        """Both eyes; `decode(key, value)` turns a wire value into an array (default: as is); no images: fallback()."""
        if self.left is None:
            img = fallback() if fallback is not None else None
            if img is None:
                black = np.zeros(self.eye_shape + (3,), np.uint8)
                return black, black
            eye = to_eye(img, self.eye_shape)
            return eye, eye

        def one(key):
            v = self._value(obs, key)
            return to_eye(decode(key, v) if decode else v, self.eye_shape, self.images[key][3])

        left = one(self.left)
        return left, (left if self.right == self.left else one(self.right))

    def vector_of(self, obs) -> np.ndarray:
        parts = []
        for f in self.vector:
            v = self._value(obs, f.key)
            if f.kind == "discrete":
                oh = np.zeros(f.size, np.float32)
                oh[int(np.clip(int(np.asarray(v).reshape(-1)[0]), 0, f.size - 1))] = 1.0
                parts.append(oh)
            else:
                a = np.asarray(v, np.float32).reshape(-1)
                if a.size != f.size:
                    raise ObservationError(f"{self.name}: observation {f.key!r} has {a.size} values, its space says {f.size}")
                parts.append(a)
        return np.nan_to_num(np.concatenate(parts)).astype(np.float32) if parts else np.zeros(0, np.float32)

    def scalars(self, obs) -> tuple[float, float]:
        def first(key, i=0):
            a = np.asarray(self._value(obs, key), np.float64).reshape(-1)
            return float(a[i]) if a.size > i else 1.0

        hp = energy = 1.0
        if self.pair is not None:
            hp, energy = first(self.pair, 0), first(self.pair, 1)
        if self.hp is not None:
            hp = first(self.hp)
        if self.energy is not None:
            energy = first(self.energy)
        return float(np.clip(np.nan_to_num(hp), 0.0, 1.0)), float(np.clip(np.nan_to_num(energy), 0.0, 1.0))

    def sense(self, obs: Mapping, dead: bool, frame_id: int, extra: dict, decode: Callable | None = None,
              fallback: Callable | None = None) -> Sense:
        left, right = self.eyes(obs, decode, fallback)
        hp, energy = self.scalars(obs)
        return Sense(left=left, right=right, touch=self.vector_of(obs), hp=hp, energy=energy, dead=bool(dead),
                     t=time.monotonic(), frame_id=frame_id, extra=extra)
