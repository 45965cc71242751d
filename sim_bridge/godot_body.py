"""Godot worlds as bodies, over the Godot RL Agents wire protocol.

Python listens (127.0.0.1:11008 by default) and Godot connects, either a Godot
process this module launches (``--port`` and friends; under ``xvfb-run`` when
there is no display) or the editor's Play button (``launch = false``).

* :class:`GodotWorld` is one Godot process: handshake, env_info, reset, steps
  of all its agents at once, per-agent respawn, close.
* :class:`GodotBody` is one agent of a world seen through the body contract.
  ``GodotBody.launch()`` starts a world and drives one agent (the others idle);
  ``GodotWorld.bodies()`` hands out one body per agent; bodies driven from
  several threads step the world in lockstep. One agent's death never resets
  the others: the bundled arena respawns a single robot on request
  (``{"type": "call", "method": "respawn", "agent": i}``).

Observations are mapped by key name: keys containing ``2d`` are eyes (``left``
/ ``right`` in the name, else the first two; a single image feeds both eyes),
``hp``/``health`` and ``energy``/``battery`` are the body scalars (1.0 when
absent), every other vector is concatenated (sorted by key) into the touch
vector. Actions travel by name. The world's per-step score field is dropped
here and never reaches a Sense.

Modules: `godot_options` ([godot]), `godot_layout` (observation keys -> Sense,
actions by name), `godot_world` (the process and the session), this file (one
agent as a Body), `godot_bench`, `godot_protocol` (the wire format).
"""
from __future__ import annotations

import logging

from edge_runtime.body import DRIVE_TURN_HEADS, Action, Body, MotorControl, Sense

from .godot_bench import bench_godot
from .godot_layout import AgentLayout
from .godot_options import ARENA_PROJECT, GodotOptions
from .godot_protocol import GodotError
from .godot_world import GodotWorld

log = logging.getLogger("sim_bridge.godot")

__all__ = ["ARENA_PROJECT", "AgentLayout", "GodotBody", "GodotError", "GodotOptions", "GodotWorld", "WheeledGodotBody",
           "bench_godot"]

class GodotBody(Body):
    """One agent of a Godot world, seen through the body contract."""

    def __init__(self, world: GodotWorld, agent: int = 0, owns_world: bool = False):
        if not 0 <= agent < world.n_agents:
            raise ValueError(f"{world.name}: agent {agent} out of range 0..{world.n_agents - 1}")
        self.world = world
        self.agent = agent
        self.owns_world = owns_world
        self.spec = world.layouts[agent].spec
        self._closed = False
        self._dead = False
        with world._lock:
            world._driven.add(agent)

    @classmethod
    def launch(cls, options: GodotOptions | None = None, **kw) -> "GodotBody":
        """Start (or wait for) a Godot world and drive one of its agents; closing the body closes the world."""
        world = GodotWorld(options, **kw)
        return cls.for_agent(world, world.opts.agent, owns_world=True)

    @staticmethod
    def for_agent(world: GodotWorld, agent: int, owns_world: bool = False) -> "GodotBody":
        """The body of one agent: with the drive/turn heads (the bundled arena) it can also hold its motors."""
        wheeled = world.layouts[agent].spec.action_heads == DRIVE_TURN_HEADS
        return (WheeledGodotBody if wheeled else GodotBody)(world, agent, owns_world)

    @property
    def name(self) -> str:
        return self.spec.name

    def _check(self):
        if self._closed:
            raise RuntimeError(f"{self.name}: body is closed")

    def reset(self, seed: int | None = None) -> Sense:
        """The whole world when this body drives it alone; with other driven agents only this one respawns."""
        self._check()
        w = self.world
        with w._lock:
            others = w._driven - {self.agent}
            if others and w._steps_since_reset == 0 and w.senses[self.agent] is not None:
                s = w.senses[self.agent]  # a sibling just reset the world: start from there
            elif others and w._steps_since_reset > 0:
                s = w.respawn(self.agent)
            else:
                s = w.reset(seed)[self.agent]
        self._dead = s.dead
        return s

    def act(self, action: Action) -> Sense:
        self._check()
        if self._dead:
            raise RuntimeError(f"{self.name}: act() on a dead body; call respawn() or reset()")
        s = self.world._lockstep(self.agent, action)
        self._dead = s.dead
        return s

    def respawn(self) -> Sense:
        self._check()
        s = self.world.respawn(self.agent)
        self._dead = s.dead
        return s

    @property
    def counters(self) -> dict:
        info = self.world.infos[self.agent]
        return {k: info[k] for k in ("food", "hazard_hits", "bumps") if isinstance(info.get(k), (int, float))}

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        w = self.world
        with w._lock:
            w._driven.discard(self.agent)
            w._submitted.pop(self.agent, None)
            if not w._closed and w._error is None:
                try:
                    w._maybe_step()  # siblings waiting only for this body go on
                except GodotError:
                    pass
        if self.owns_world:
            w.close()


class WheeledGodotBody(GodotBody, MotorControl):
    """A Godot agent with the drive/turn heads (the bundled arena): the console can hold it still.

    Only there does "motors stopped" have a meaning the bridge knows (drive stop, turn none); a game with other
    heads gets a plain GodotBody, and the console says it has no motor control."""

    def act(self, action: Action) -> Sense:
        return super().act({"drive": 1, "turn": 1} if self.motors_held else action)
