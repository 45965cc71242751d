"""N bodies, one per agent, stepped and sensed as a batch: what the population's loop acts through.

    worlds = Worlds(cfg, n, body_name)                  n bodies of one kind, each its own world
    eyes, body = worlds.reset(seeds)                    (n, 6, h, w) and (n, 2 + touch) model inputs
    eyes, body, feels, info, fresh = worlds.step(actions)
        each action held for the body's repeat, as alone; eyes/body: what each agent sensed at the end (its
        learning step's next senses, a dead body's last view included); fresh: {row: (eyes, body)} of the
        bodies that died and were respawned at once, what those agents sense first in their next life

`WorldProcess` is the same interface with the bodies in a child process, so the worlds of one half of
the population step on the second core while the brains of the other half learn on the first.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import traceback
from multiprocessing.connection import Connection

import numpy as np

from ..acting import act_repeat, body_vector, eyes_input
from ..body import Revivable
from ..config import Config
from ..memory import vm_hwm_mb


def encode(senses, hw, touch: int) -> tuple[np.ndarray, np.ndarray]:
    """Senses -> (n, 6, h, w) float32 in [-1, 1] and (n, 2 + touch) float32, as SenseEncoder does per sense."""
    return np.stack([eyes_input(s, hw) for s in senses]), np.stack([body_vector(s, touch) for s in senses])


class Worlds:
    """The bodies in this process."""

    def __init__(self, cfg: Config, n: int, body_name: str | None = None):
        from ..bodies import make_body

        self.cfg = cfg
        self.bodies = [make_body(cfg, body_name) for _ in range(n)]
        for b in self.bodies:
            if isinstance(b, Revivable):
                raise ValueError(f"population: {type(b).__name__} waits for a person to revive it; a population "
                                 "needs bodies that respawn (the arena, godot, gym)")
        self.spec = self.bodies[0].spec
        self.hw = tuple(cfg.model.input_hw)
        self.repeat = cfg.runtime.repeat_for(self.spec)
        self.senses = [None] * n

    def reset(self, seeds: list[int]):
        self.senses = [b.reset(seed=s) for b, s in zip(self.bodies, seeds)]
        return encode(self.senses, self.hw, self.spec.touch_channels)

    def step(self, actions, rows=None):
        """Act for the agents in `rows` (all by default). Returns their next inputs, feelings and what they saw."""
        rows = range(len(self.bodies)) if rows is None else rows
        feels, info = [], []
        for i, a in zip(rows, actions):
            s, f = act_repeat(self.bodies[i], a, self.senses[i], self.repeat, self.cfg.runtime.event_threshold)
            self.senses[i] = s
            feels.append(f)
            info.append({"hp": s.hp, "energy": s.energy, "cause": s.extra.get("cause") if s.dead else None})
        eyes, body = encode([self.senses[i] for i in rows], self.hw, self.spec.touch_channels)
        fresh = {}
        for j, i in enumerate(rows):
            if feels[j].dead:
                self.senses[i] = self.bodies[i].respawn()
                e, b = encode([self.senses[i]], self.hw, self.spec.touch_channels)
                fresh[j] = (e[0], b[0])
        return eyes, body, feels, info, fresh

    def close(self):
        for b in self.bodies:
            b.close()


def _serve(conn):
    """The worlds' process: builds Worlds from the first message, then answers commands until `close`."""
    try:
        _, (cfg, n, body_name) = conn.recv()
        w = Worlds(cfg, n, body_name)
        conn.send(("ok", w.spec))
    except Exception as e:  # noqa: BLE001 - reported to the parent, which raises it
        conn.send(("error", f"{type(e).__name__}: {e}"))
        return
    commands = {"reset": w.reset, "step": w.step}
    try:
        while True:
            cmd, args = conn.recv()
            if cmd == "close":
                w.close()
                conn.send(("ok", None))
                return
            try:
                conn.send(("ok", commands[cmd](*args)))
            except Exception:  # noqa: BLE001
                conn.send(("error", traceback.format_exc(limit=3)))
    except (EOFError, KeyboardInterrupt):
        w.close()


class WorldProcess:
    """Worlds in a child process, step_async/step_wait overlapping it with work here.

    The child is a fresh interpreter (`python -m edge_runtime.population.worlds FD`) talking pickled messages
    over a socket pair: no torch state is forked, and unlike multiprocessing's spawn it never re-imports the
    parent's __main__ (a script without a main guard, or a REPL, works)."""

    def __init__(self, cfg: Config, n: int, body_name: str | None = None):
        mine, theirs = socket.socketpair()
        self.proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.population.worlds", str(theirs.fileno())],
                                     pass_fds=(theirs.fileno(),))
        theirs.close()
        self.conn = Connection(mine.detach())
        self._send("start", (cfg, n, body_name))
        self.spec = self._reply("starting")
        self.repeat = cfg.runtime.repeat_for(self.spec)
        self._pending = False

    def _reply(self, what: str):
        try:
            status, value = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"WorldProcess: the worlds' process died ({what})") from None
        if status != "ok":
            raise RuntimeError(f"WorldProcess ({what}): {value}")
        return value

    def _send(self, cmd, args):
        try:
            self.conn.send((cmd, args))
        except OSError:  # the socket's other end is gone
            raise RuntimeError(f"WorldProcess: the worlds' process died (exit {self.proc.poll()}; {cmd})") from None

    def _call(self, cmd, *args):
        self._send(cmd, args)
        return self._reply(cmd)

    def reset(self, seeds):
        return self._call("reset", list(seeds))

    def step_async(self, actions, rows=None):
        self._send("step", (actions, rows))
        self._pending = True

    def step_wait(self):
        self._pending = False
        return self._reply("step")

    def step(self, actions, rows=None):
        self.step_async(actions, rows)
        return self.step_wait()

    def peak_rss_mb(self) -> float:
        """The worlds' process's peak resident memory (VmHWM; Linux)."""
        return vm_hwm_mb(self.proc.pid)

    def close(self):
        if self.proc.poll() is None:
            try:
                if self._pending:
                    self.step_wait()
                self._call("close")
            except (RuntimeError, OSError, EOFError):
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if not self.conn.closed:
            self.conn.close()


if __name__ == "__main__":
    _serve(Connection(int(sys.argv[1])))
