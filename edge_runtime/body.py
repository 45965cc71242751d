"""The contract between brain and body.

Every body (the built-in arena, a Godot world, a gymnasium env, the real robot)
implements this one small interface. There is deliberately no field for a
score handed out by the world: the brain learns only from what the body feels
(HP, energy, touch, death).

What a body can do beyond the contract it declares by inheriting a capability
class below (`MotorControl`, `Revivable`); the runtime and the console ask with
isinstance(), never by guessing attribute names.
"""
from __future__ import annotations

import abc
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Mapping, Sequence, Union

import numpy as np

Action = Union[Mapping[str, int], Sequence[int]]

# The differential-drive heads every wheeled body here speaks (the arena, the robot, the bundled Godot arena), in
# this order and with these meanings, so that one brain config fits them all.
DRIVE_TURN_HEADS = OrderedDict([("drive", 3), ("turn", 3)])  # drive: back/stop/forward; turn: left/none/right
DRIVE = (-1.0, 0.0, 1.0)
TURN = (1.0, 0.0, -1.0)  # counter-clockwise positive


@dataclass(frozen=True)
class BodySpec:
    """What a body offers the brain.

    eye_shape: (H, W) of each eye image.
    touch_channels: length of the touch vector.
    action_heads: ordered name -> number of discrete choices.
    control_hz: nominal control rate (steps per second) of the real body.
    still: the action that does nothing (in head order), or None when the body names none (a gym env whose
        every action moves something): the stationary baseline exists only where this does.
    action_repeat: body steps per decision this body is made for (runtime.action_repeat = 0 uses it): a body
        that steps in small increments (the arena moves 0.2 m a step) wants several, an env whose step is
        already a decision (gymnasium, frame skipping included) wants 1.
    still and action_repeat say how to drive the body, not what the brain looks like: they stay out of
    to_dict(), which is what checkpoints and weights are matched against.
    """

    eye_shape: tuple[int, int]
    touch_channels: int
    action_heads: "OrderedDict[str, int]"
    control_hz: float = 10.0
    name: str = "body"
    still: "tuple[int, ...] | None" = None
    action_repeat: int = 1

    def __post_init__(self):
        h, w = self.eye_shape
        if h < 8 or w < 8:
            raise ValueError(f"BodySpec({self.name}): eye_shape must be at least 8x8, got {self.eye_shape}")
        if self.touch_channels < 0:
            raise ValueError(f"BodySpec({self.name}): touch_channels must be >= 0")
        if not self.action_heads:
            raise ValueError(f"BodySpec({self.name}): at least one action head is needed")
        for k, n in self.action_heads.items():
            if int(n) < 2:
                raise ValueError(f"BodySpec({self.name}): action head {k!r} needs >= 2 choices, got {n}")
        object.__setattr__(self, "action_heads", OrderedDict((str(k), int(v)) for k, v in self.action_heads.items()))
        if self.still is not None:
            object.__setattr__(self, "still", self.normalize_action(self.still))
        if int(self.action_repeat) < 1:
            raise ValueError(f"BodySpec({self.name}): action_repeat must be >= 1, got {self.action_repeat}")

    @property
    def n_action_logits(self) -> int:
        return sum(self.action_heads.values())

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "eye_shape": list(self.eye_shape),
            "touch_channels": self.touch_channels,
            "action_heads": dict(self.action_heads),
            "control_hz": self.control_hz,
        }

    def normalize_action(self, action: Action) -> tuple[int, ...]:
        """Map an action given by name (preferred) or in head order to a tuple in head order.

        Actions travel by name across bridges: a positional action is accepted
        only with exactly one value per head.
        """
        if type(action) is tuple and len(action) == len(self.action_heads) and all(
                type(v) is int and 0 <= v < n for v, n in zip(action, self.action_heads.values())):
            return action  # already in head order and in range (every step of a learning loop)
        names = list(self.action_heads)
        if isinstance(action, Mapping):
            missing = [n for n in names if n not in action]
            extra = [k for k in action if k not in self.action_heads]
            if missing or extra:
                raise ValueError(f"{self.name}: action keys {sorted(action)} do not match heads {names}")
            vals = [int(action[n]) for n in names]
        else:
            vals = [int(v) for v in action]
            if len(vals) != len(names):
                raise ValueError(f"{self.name}: action has {len(vals)} values, heads are {names}")
        for n, v in zip(names, vals):
            if not 0 <= v < self.action_heads[n]:
                raise ValueError(f"{self.name}: action {n}={v} out of range 0..{self.action_heads[n] - 1}")
        return tuple(vals)


@dataclass
class Sense:
    """One step of sensation."""

    left: np.ndarray  # uint8 HxWx3 RGB
    right: np.ndarray  # uint8 HxWx3 RGB
    touch: np.ndarray  # float32 (touch_channels,)
    hp: float  # 0..1
    energy: float  # 0..1
    dead: bool
    t: float  # monotonic seconds
    frame_id: int
    extra: dict = field(default_factory=dict)  # body-specific diagnostics, never read by the learning rules


class Body(abc.ABC):
    """A body the brain can live in: reset, act, close."""

    spec: BodySpec

    @abc.abstractmethod
    def reset(self, seed: int | None = None) -> Sense:
        """Start afresh (the whole world, if the body owns one). Never returns a dead body, except a
        `Revivable` one (a robot switched on with a flat battery): the runtime then waits for its revive."""

    @abc.abstractmethod
    def act(self, action: Action) -> Sense:
        """Apply one action for one control step and return what the body feels."""

    def respawn(self) -> Sense:
        """Bring a dead body back. Worlds with other inhabitants keep going; default: reset."""
        return self.reset()

    def close(self) -> None:  # idempotent by contract
        pass

    @property
    def counters(self) -> dict:
        """Body-specific event counters (food eaten, hits...) for reports; never used for learning."""
        return {}

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


# ---------------------------------------------------------------- capabilities a body may declare
class MotorControl:
    """A body whose motors can be stopped and held from outside the brain (console `motors stop|go`).

    While held, act() still runs (the brain still senses and learns) but the
    body does not move: a body declaring this honours `motors_held` in act(),
    and extends stop_motors() when stopping takes more than that (the robot
    sends STOP to its board).
    """

    _held = False

    def stop_motors(self) -> None:
        """Stop now and hold still until release_motors()."""
        self._held = True

    def release_motors(self) -> None:
        """Let the brain's actions move the body again."""
        self._held = False

    @property
    def motors_held(self) -> bool:
        """True between stop_motors() and release_motors()."""
        return self._held


class Revivable(abc.ABC):
    """A body that, once dead, stays dead until something outside brings it back: a button, a timeout, a person.

    The runtime does not block in respawn() for such a body: it calls
    poll_revive() between its own chores (console requests, watchdog pings,
    a stop request), so a robot waiting for its button stays a live service.
    """

    @abc.abstractmethod
    def poll_revive(self) -> "Sense | None":
        """While dead: one short look (button, timeout, battery). The new life's first Sense once revived, else None."""

    @abc.abstractmethod
    def revive(self) -> "Sense | None":
        """Bring the body back now (dead or alive: a new life, full HP). The new life's first Sense, or None when
        it cannot come back yet; `waiting_for` then says why."""

    @property
    @abc.abstractmethod
    def waiting_for(self) -> str:
        """What a dead body waits for, in a few words (for the service status and the console)."""


class UncertainMortality(abc.ABC):
    """A body that cannot promise its lives end in death (a gymnasium env may only ever be cut by a time limit).

    A frozen evaluation measures time to death: it asks such a body first and refuses one that cannot die.
    """

    @abc.abstractmethod
    def why_it_cannot_die(self) -> "str | None":
        """None when lives in this body can end in death; else, in one sentence, why they cannot."""


class Changeable(abc.ABC):
    """A world that can change while a brain lives in it (`bench adapt`): same process, same body, other rules
    or looks. The brain is not told; it notices only through its senses."""

    @property
    @abc.abstractmethod
    def world_changes(self) -> "tuple[str, ...]":
        """The names of the changes this world can make."""

    @abc.abstractmethod
    def change_world(self, name: str) -> None:
        """Make change `name` now (it stays through reset and respawn); ValueError for an unknown name."""


class Restorable(abc.ABC):
    """A body whose world can be saved in a checkpoint and put back on resume (a simulated world, not a robot)."""

    @abc.abstractmethod
    def checkpoint_state(self) -> dict:
        """The world as plain data (numbers, strings, lists, dicts; tensors allowed): what a checkpoint stores."""

    @abc.abstractmethod
    def load_checkpoint_state(self, state: dict) -> "Sense":
        """Put the world back as checkpoint_state() described it; returns the body's current Sense."""
