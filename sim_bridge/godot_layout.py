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
from .obs_sense import ObsField, SenseMapper

log = logging.getLogger("sim_bridge.godot")

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
    mapper: SenseMapper  # observation -> Sense (sim_bridge/obs_sense.py, shared with the gymnasium bridge)
    image_shapes: dict  # image key -> [H, W, C] as sent
    heads: list = field(default_factory=list)
    action_keys: dict = field(default_factory=dict)  # wire key -> ("discrete", None) | ("continuous", size)

    @property
    def left(self) -> Optional[str]:
        return self.mapper.left

    @property
    def right(self) -> Optional[str]:
        return self.mapper.right

    @classmethod
    def from_spaces(cls, obs_space: Mapping, act_space: Mapping, name: str, control_hz: float = 10.0,
                    decision_steps: int = 0) -> "AgentLayout":
        """decision_steps: the body's action_repeat (0: 4 for a drive/turn robot like the arena's, else 1)."""
        images = [k for k, v in obs_space.items() if is_image_key(k)]
        shapes = {}
        for k in images:
            s = [int(x) for x in obs_space[k]["size"]]
            if len(s) == 3 and s[0] in (1, 3, 4) and s[2] not in (1, 3, 4):
                s = [s[1], s[2], s[0]]
            shapes[k] = s
        fields = [ObsField(k, "image", image=(*shapes[k][:2], shapes[k][2] if len(shapes[k]) == 3 else 1, False))
                  for k in images]
        for k, v in obs_space.items():
            if k in images:
                continue
            if v.get("space", "box") == "discrete":
                fields.append(ObsField(k, "discrete", int(v["size"])))
            else:
                fields.append(ObsField(k, "box", int(np.prod([int(x) for x in v["size"]]))))
        mapper = SenseMapper(fields, name=name)
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
        wheeled = set(names) == set(ACTION_HEADS) and all(h.n == ACTION_HEADS[h.name] for h in heads)
        if wheeled:
            heads.sort(key=lambda h: list(ACTION_HEADS).index(h.name))  # the built-in arena's order: same brain fits
        # doing nothing: the wheeled robot's stop/straight; a continuous action's 0; a discrete action means
        # whatever the world says it means, so a world with one names no "still"
        still = tuple(h.n // 2 for h in heads) if wheeled or all(h.continuous >= 0 for h in heads) else None
        spec = BodySpec(eye_shape=mapper.eye_shape, touch_channels=mapper.touch_channels,
                        action_heads=OrderedDict((h.name, h.n) for h in heads), control_hz=control_hz, name=name,
                        still=still, action_repeat=decision_steps or (4 if wheeled else 1))
        return cls(spec, mapper, shapes, heads, action_keys)

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
