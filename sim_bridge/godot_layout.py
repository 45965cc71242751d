"""One agent's layout: its observation keys mapped to eyes, touch, HP and energy, its actions by name."""
from __future__ import annotations

import logging
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping, Optional

import numpy as np

from edge_runtime.body import Action, BodySpec

from .arena import ACTION_HEADS
from .godot_protocol import GodotError, is_image_key

log = logging.getLogger("sim_bridge.godot")

HP_KEYS = ("hp", "health")
ENERGY_KEYS = ("energy", "battery")
DEFAULT_EYES = (48, 64)  # eye shape of a world that sends no images (black eyes)
CONTINUOUS_CHOICES = (-1.0, 0.0, 1.0)  # a continuous action dimension becomes a 3-way head


@dataclass
class _Head:
    name: str  # head name in the BodySpec
    key: str  # action key on the wire
    n: int
    continuous: int = -1  # >= 0: index into a continuous action vector of size `size`
    size: int = 0


@dataclass
class AgentLayout:
    """How one agent's observation and action spaces map to the body contract."""

    spec: BodySpec
    left: Optional[str]
    right: Optional[str]
    image_shapes: dict
    hp: Optional[str]
    energy: Optional[str]
    touch: list  # [(key, size, kind)] kind: box | discrete
    heads: list = field(default_factory=list)
    action_keys: dict = field(default_factory=dict)  # wire key -> ("discrete", None) | ("continuous", size)

    @classmethod
    def from_spaces(cls, obs_space: Mapping, act_space: Mapping, name: str, control_hz: float = 10.0) -> "AgentLayout":
        images = [k for k, v in obs_space.items() if is_image_key(k)]
        shapes = {}
        for k in images:
            s = [int(x) for x in obs_space[k]["size"]]
            if len(s) == 3 and s[0] in (1, 3, 4) and s[2] not in (1, 3, 4):
                s = [s[1], s[2], s[0]]
            shapes[k] = s
        left = next((k for k in images if "left" in k.lower()), None)
        right = next((k for k in images if "right" in k.lower()), None)
        rest = [k for k in sorted(images) if k not in (left, right)]
        if left is None and rest:
            left = rest.pop(0)
        if right is None:
            right = rest.pop(0) if rest else left
        eye = tuple(shapes[left][:2]) if left else DEFAULT_EYES
        hp = next((k for k in obs_space if k.lower() in HP_KEYS), None)
        energy = next((k for k in obs_space if k.lower() in ENERGY_KEYS), None)
        touch = []
        for k in sorted(obs_space):
            if k in images or k in (hp, energy):
                continue
            v = obs_space[k]
            kind = v.get("space", "box")
            if kind == "discrete":
                touch.append((k, int(v["size"]), "discrete"))
            else:
                touch.append((k, int(np.prod([int(x) for x in v["size"]])), "box"))
        heads = []
        action_keys = {}
        for k, v in act_space.items():
            size = int(v["size"])
            if v.get("action_type", "discrete") == "continuous":
                action_keys[k] = ("continuous", size)
                for j in range(size):
                    heads.append(_Head(k if size == 1 else f"{k}.{j}", k, len(CONTINUOUS_CHOICES), j, size))
            else:
                if size < 2:
                    raise GodotError(f"{name}: discrete action {k!r} has {size} choice(s); a head needs at least 2")
                action_keys[k] = ("discrete", None)
                heads.append(_Head(k, k, size))
        if not heads:
            raise GodotError(f"{name}: the world declares no actions")
        names = [h.name for h in heads]
        if set(names) == set(ACTION_HEADS) and all(h.n == ACTION_HEADS[h.name] for h in heads):
            heads.sort(key=lambda h: list(ACTION_HEADS).index(h.name))  # the built-in arena's order: same brain fits
        spec = BodySpec(eye_shape=eye, touch_channels=sum(t[1] for t in touch),
                        action_heads=OrderedDict((h.name, h.n) for h in heads), control_hz=control_hz, name=name)
        return cls(spec, left, right, shapes, hp, energy, touch, heads, action_keys)

    def wire_action(self, action: Action) -> dict:
        """A body action (by name, or in head order) as the world's action dict."""
        vals = self.spec.normalize_action(action)
        out = {}
        for h, v in zip(self.heads, vals):
            if h.continuous < 0:
                out[h.key] = int(v)
            else:
                out.setdefault(h.key, [0.0] * h.size)[h.continuous] = CONTINUOUS_CHOICES[v]
        return out

    def idle_action(self) -> dict:
        return self.wire_action({h.name: h.n // 2 for h in self.heads})


def _rgb(img: np.ndarray) -> np.ndarray:
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _scalar(v) -> float:
    a = np.asarray(v, np.float64).reshape(-1)
    return float(np.clip(a[0], 0.0, 1.0)) if a.size else 1.0
