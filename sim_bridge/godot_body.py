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
"""
from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import weakref
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping, Optional

import numpy as np

from edge_runtime.body import Action, Body, BodySpec, Sense

from .arena import ACTION_HEADS
from .godot_protocol import (DEFAULT_PORT, MAJOR_VERSION, MINOR_VERSION, Channel, GodotError, Listener,
                             decode_image, is_image_key)

log = logging.getLogger("sim_bridge.godot")

ARENA_PROJECT = Path(__file__).resolve().parent / "godot_arena"
GODOT_BINARIES = ("godot3-runner", "godot3", "godot")
HP_KEYS = ("hp", "health")
ENERGY_KEYS = ("energy", "battery")
DEFAULT_EYES = (48, 64)  # eye shape of a world that sends no images (black eyes)
CONTINUOUS_CHOICES = (-1.0, 0.0, 1.0)  # a continuous action dimension becomes a 3-way head


@dataclass
class GodotOptions:
    """The ``[godot]`` config section (also what ``GodotBody.launch(**kw)`` takes)."""

    project: str = ""  # a Godot project directory ("" = the bundled sim_bridge/godot_arena) or an exported game binary
    binary: str = ""  # the Godot executable ("" = first of godot3-runner, godot3, godot on PATH)
    launch: bool = True  # false: do not start Godot, wait for the editor's Play
    port: int = DEFAULT_PORT  # 0 picks a free port (only when launching)
    xvfb: str = "auto"  # auto (xvfb-run when $DISPLAY is unset) | yes | no
    n_agents: int = 1  # robots in the bundled arena (--n_agents)
    agent: int = 0  # the agent `run --body godot` drives
    frames: str = "binary"  # binary (fast path, if the world supports it) | hex (the compatible path)
    eye_w: int = 64  # bundled arena's eye size (--eye_w/--eye_h)
    eye_h: int = 48
    action_repeat: int = 1  # world steps per action, done inside Godot (--action_repeat)
    seed: int = 0  # --env_seed
    connect_timeout: float = 60.0  # seconds for Godot to connect (waiting for the editor: make it long)
    step_timeout: float = 20.0  # seconds for any one reply
    extra_args: str = ""  # more command-line arguments for the game, space-separated

    def __post_init__(self):
        from edge_runtime.config import check

        w = "godot"
        check(0 <= self.port <= 65535, f"{w}.port", f"must be 0..65535, got {self.port}")
        check(self.launch or self.port > 0, f"{w}.port", "0 (a free port) needs launch = true")
        check(self.xvfb in ("auto", "yes", "no"), f"{w}.xvfb", f"must be auto|yes|no, got {self.xvfb!r}")
        check(self.frames in ("binary", "hex"), f"{w}.frames", f"must be binary|hex, got {self.frames!r}")
        check(self.n_agents >= 1, f"{w}.n_agents", "must be >= 1")
        check(0 <= self.agent < self.n_agents, f"{w}.agent", f"must be in 0..{self.n_agents - 1}")
        check(self.eye_w >= 8 and self.eye_h >= 8, f"{w}.eye_w", "eye_w and eye_h must be >= 8")
        check(self.action_repeat >= 1, f"{w}.action_repeat", "must be >= 1")
        check(self.connect_timeout > 0, f"{w}.connect_timeout", "must be > 0")
        check(self.step_timeout > 0, f"{w}.step_timeout", "must be > 0")

    @classmethod
    def from_config(cls, cfg, **overrides) -> "GodotOptions":
        from edge_runtime.config import build_section

        return build_section(cls, "godot", {**cfg.extra.get("godot", {}), **overrides})


# ---------------------------------------------------------------- agent layout
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


# ---------------------------------------------------------------- the world
class GodotWorld:
    """One Godot process (launched, or the editor's Play) and its agents."""

    def __init__(self, options: GodotOptions | None = None, name: str | None = None, **kw):
        self.opts = options or GodotOptions(**kw)
        if options is not None and kw:
            self.opts = GodotOptions(**{**{f: getattr(options, f) for f in options.__dataclass_fields__}, **kw})
        o = self.opts
        proj = Path(o.project) if o.project else ARENA_PROJECT
        self.name = name or f"GodotBody({proj.name})"
        self.proc: subprocess.Popen | None = None
        self.log_path: Optional[str] = None
        self.channel: Channel | None = None
        self._listener: Listener | None = None
        self._closed = False
        self._lock = threading.Condition()
        self._finalizer = None
        try:
            self._listener = Listener(o.port, who=self.name)
            self.port = self._listener.port
            if o.launch:
                self._launch(proj)
            else:
                log.info("%s: waiting for Godot on 127.0.0.1:%d: press Play in the editor (%gs)",
                         self.name, self.port, o.connect_timeout)
            sock = self._listener.accept(o.connect_timeout, self._why_not_alive)
            self._listener.close()
            self.channel = Channel(sock, who=self.name, timeout=o.step_timeout, status=self._status)
            self._handshake()
        except BaseException:
            self.close()
            raise
        self.n_agents = len(self.layouts)
        self.senses: list[Optional[Sense]] = [None] * self.n_agents
        self.infos: list[dict] = [{} for _ in range(self.n_agents)]
        self._frames = [0] * self.n_agents
        self._driven: set[int] = set()
        self._submitted: dict[int, Action] = {}
        self._gen = 0
        self._error: Optional[BaseException] = None
        self._steps_since_reset = -1  # -1: never reset
        self.steps = 0

    # ------------------------------------------------------------ process
    def _launch(self, proj: Path):
        o = self.opts
        if proj.is_file():
            cmd = [str(proj)]  # an exported game
        else:
            if not (proj / "project.godot").is_file():
                raise GodotError(f"{self.name}: {proj} is neither a Godot project directory (no project.godot) nor an exported game")
            binary = o.binary or next((b for b in GODOT_BINARIES if shutil.which(b)), None)
            if not binary or not shutil.which(binary):
                raise GodotError(f"{self.name}: no Godot executable found ({o.binary or ', '.join(GODOT_BINARIES)}); "
                                 "on Debian/Ubuntu: apt-get install godot3-runner xvfb, or set godot.binary")
            cmd = [shutil.which(binary), "--path", str(proj)]
        cmd += ["--audio-driver", "Dummy", f"--port={self.port}", f"--env_seed={o.seed}", f"--n_agents={o.n_agents}",
                f"--eye_w={o.eye_w}", f"--eye_h={o.eye_h}", f"--action_repeat={o.action_repeat}",
                f"--connect_timeout={math.ceil(o.connect_timeout)}"] + o.extra_args.split()
        if o.xvfb == "yes" or (o.xvfb == "auto" and not os.environ.get("DISPLAY")):
            if not shutil.which("xvfb-run"):
                raise GodotError(f"{self.name}: no $DISPLAY and no xvfb-run (apt-get install xvfb), or set godot.xvfb = 'no'")
            cmd = ["xvfb-run", "-a", "-s", "-screen 0 640x480x24"] + cmd
        fd, self.log_path = tempfile.mkstemp(prefix="edge-godot-", suffix=".log")
        log.info("%s: starting %s (log %s)", self.name, " ".join(cmd), self.log_path)
        with os.fdopen(fd, "w") as logf:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=logf, stderr=subprocess.STDOUT,
                                         start_new_session=True)
        self._finalizer = weakref.finalize(self, _kill_group, self.proc)

    def _log_tail(self, n=3) -> str:
        if not self.log_path:
            return ""
        try:
            lines = [ln.strip() for ln in Path(self.log_path).read_text(errors="replace").splitlines() if ln.strip()]
        except OSError:
            return ""
        return " | ".join(lines[-n:])

    def _why_not_alive(self) -> Optional[str]:
        if self.proc is None or self.proc.poll() is None:
            return None
        tail = self._log_tail()
        return f"Godot exited with code {self.proc.returncode}" + (f"; log: {tail}" if tail else "")

    def _status(self) -> str:
        if self.proc is None:
            return "Godot run from the editor" if not self.opts.launch else ""
        for _ in range(10):  # a killed process may take a moment to be reaped
            if self.proc.poll() is not None:
                break
            time.sleep(0.02)
        return self._why_not_alive() or f"Godot pid {self.proc.pid} still running"

    # ------------------------------------------------------------ protocol
    def _handshake(self):
        ch = self.channel
        ch.send({"type": "handshake", "major_version": MAJOR_VERSION, "minor_version": MINOR_VERSION,
                 "edge_frames": self.opts.frames})
        info = ch.request({"type": "env_info"}, "env_info")
        n = int(info.get("n_agents", 1))
        obs, act = info.get("observation_space"), info.get("action_space")
        if isinstance(obs, dict):
            obs = [obs] * n
        if isinstance(act, dict):
            act = [act] * n
        if not isinstance(obs, list) or not isinstance(act, list) or len(obs) != n or len(act) != n:
            raise GodotError(f"{self.name}: env_info does not describe {n} agent(s)")
        edge = info.get("edge") or {}
        self.binary = edge.get("frames") == "binary"
        self.respawn_mode = "call" if edge.get("respawn") else ("reset" if n == 1 else "world")
        self.env_info = info
        self.layouts = [AgentLayout.from_spaces(obs[i], act[i], self.name if n == 1 else f"{self.name}[{i}]")
                        for i in range(n)]

    def _sense(self, i: int, obs: dict, blob, dead: bool, info) -> Sense:
        lay = self.layouts[i]
        who = self.name
        if lay.left:
            left = decode_image(obs.get(lay.left), lay.image_shapes[lay.left], blob, who, lay.left)
            right = decode_image(obs.get(lay.right), lay.image_shapes[lay.right], blob, who, lay.right)
            left, right = _rgb(left), _rgb(right)
        else:
            left = right = np.zeros(DEFAULT_EYES + (3,), np.uint8)
        parts = []
        for k, size, kind in lay.touch:
            v = obs.get(k)
            if kind == "discrete":
                oh = np.zeros(size, np.float32)
                oh[int(np.clip(int(np.asarray(v).reshape(-1)[0]), 0, size - 1))] = 1.0
                parts.append(oh)
            else:
                a = np.asarray(v, np.float32).reshape(-1)
                if a.size != size:
                    raise GodotError(f"{who}: observation {k!r} has {a.size} values, its space says {size}")
                parts.append(a)
        touch = np.nan_to_num(np.concatenate(parts)) if parts else np.zeros(0, np.float32)
        hp = _scalar(obs.get(lay.hp)) if lay.hp else 1.0
        energy = _scalar(obs.get(lay.energy)) if lay.energy else 1.0
        extra = {k: v for k, v in (info or {}).items() if "reward" not in str(k).lower()}  # no score rides along
        extra["agent"] = i
        self._frames[i] += 1
        self.infos[i] = extra
        return Sense(left=left, right=right, touch=touch.astype(np.float32), hp=hp, energy=energy, dead=bool(dead),
                     t=time.monotonic(), frame_id=self._frames[i], extra=extra)

    def _senses(self, msg: dict, kind: str) -> list[Sense]:
        obs = msg.get("obs")
        if not isinstance(obs, list) or len(obs) != self.n_agents:
            raise GodotError(f"{self.name}: {kind} reply has no obs for {self.n_agents} agent(s)")
        done = msg.get("done") or [False] * self.n_agents
        info = msg.get("info") or [{}] * self.n_agents
        blob = msg.get("_blob")
        # msg["reward"] (the protocol's score field) is deliberately never read: the bridge drops it here.
        out = [self._sense(i, obs[i], blob, bool(done[i]), info[i] if i < len(info) else {}) for i in range(self.n_agents)]
        self.senses = out
        return out

    def _check(self):
        if self._closed:
            raise GodotError(f"{self.name}: the world is closed")
        if self._error is not None:
            raise GodotError(f"{self.name}: the world failed earlier: {self._error}")

    def _guard(self, fn, *a):
        try:
            return fn(*a)
        except GodotError as e:
            self._error = e
            raise

    # ------------------------------------------------------------ world API
    def reset(self, seed: int | None = None) -> list[Sense]:
        """Reset the whole world (every agent). The bundled arena honours `seed`."""
        with self._lock:
            self._check()
            msg = {"type": "reset"} if seed is None else {"type": "reset", "seed": int(seed)}
            senses = self._guard(lambda: self._senses(self.channel.request(msg, "reset"), "reset"))
            self._steps_since_reset = 0
            return senses

    def step(self, actions: Mapping[int, Action]) -> list[Sense]:
        """One world step; agents missing from `actions` take their idle action (middle choice of each head)."""
        with self._lock:
            self._check()
            return self._exchange(dict(actions))

    def _exchange(self, actions: dict) -> list[Sense]:
        wire = [self.layouts[i].wire_action(actions[i]) if i in actions else self.layouts[i].idle_action()
                for i in range(self.n_agents)]
        senses = self._guard(lambda: self._senses(self.channel.request({"type": "action", "action": wire}, "step"), "step"))
        self.steps += 1
        self._steps_since_reset += 1
        return senses

    def respawn(self, i: int) -> Sense:
        """Bring agent i back without touching the others (a whole reset only in a one-agent world)."""
        with self._lock:
            self._check()
            if self.respawn_mode == "call":
                def go():
                    m = self.channel.request({"type": "call", "method": "respawn", "agent": int(i)}, "call")
                    ret, info = m.get("returns") or [None], m.get("info") or [{}]
                    if not ret or not isinstance(ret[0], dict):
                        raise GodotError(f"{self.name}: respawn of agent {i} returned no observation")
                    return self._sense(i, ret[0], m.get("_blob"), False, info[0])
                s = self._guard(go)
                self.senses[i] = s
                return s
            if self.respawn_mode == "reset":
                return self._guard(lambda: self._senses(self.channel.request({"type": "reset"}, "reset"), "reset"))[i]
            # a multi-agent world without per-agent respawn restarts its own agents (as Godot RL plugin games do)
            s = self.senses[i]
            return Sense(s.left, s.right, s.touch, s.hp, s.energy, False, time.monotonic(), s.frame_id,
                         {**s.extra, "respawn": "by the world on its next step"})

    def call(self, method: str):
        """The protocol's `call`: returns the world's list of per-agent answers."""
        with self._lock:
            self._check()
            return self._guard(lambda: self.channel.request({"type": "call", "method": method}, "call")).get("returns")

    # lockstep for bodies driven from several threads
    def _lockstep(self, i: int, action: Action) -> Sense:
        with self._lock:
            self._check()
            if i in self._submitted:
                raise RuntimeError(f"{self.name}: agent {i} acted twice in one step")
            self.layouts[i].spec.normalize_action(action)  # a bad action fails in its own thread
            self._submitted[i] = action
            gen = self._gen
            self._maybe_step()
            deadline = time.monotonic() + self.opts.step_timeout * 3
            while self._gen == gen and self._error is None and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    self._submitted.pop(i, None)
                    missing = sorted(self._driven - set(self._submitted))
                    raise GodotError(f"{self.name}: agent {i} waited {self.opts.step_timeout * 3:g}s for agents {missing} to act")
                self._lock.wait(left)
            self._check()
            return self.senses[i]

    def _maybe_step(self):  # with the lock held
        if self._submitted and self._driven <= set(self._submitted):
            try:
                self._exchange(self._submitted)
            finally:
                self._submitted = {}
                self._gen += 1
                self._lock.notify_all()

    def bodies(self) -> list["GodotBody"]:
        """One body per agent; they step the world together (each act() waits for the others)."""
        return [GodotBody(self, i) for i in range(self.n_agents)]

    @property
    def bytes_in(self) -> int:
        return self.channel.bytes_in if self.channel else 0

    def close(self) -> None:
        """Say goodbye, wait for Godot to quit, and make sure it is gone (idempotent)."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._lock.notify_all()
        if self.channel is not None:
            if not self.channel.closed and self._error is None:
                try:
                    self.channel.timeout = 2.0
                    self.channel.send({"type": "close"})
                except GodotError:
                    pass
            self.channel.close()
        if self._listener is not None:
            self._listener.close()
        if self.proc is not None:
            try:
                self.proc.wait(timeout=5.0)
            except subprocess.TimeoutExpired:
                log.warning("%s: Godot did not quit after close; terminating it", self.name)
            _kill_group(self.proc)
            if self._finalizer is not None:
                self._finalizer.detach()
        if self.log_path:
            try:
                os.unlink(self.log_path)
            except OSError:
                pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _kill_group(proc: subprocess.Popen):
    """End a launched Godot (and xvfb-run/Xvfb around it): SIGTERM its process group, then SIGKILL."""
    if proc.poll() is None:
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            try:
                os.killpg(proc.pid, sig)
            except (ProcessLookupError, PermissionError):
                break
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
    else:
        try:  # the leader is gone; sweep what it left in its group (Xvfb)
            os.killpg(proc.pid, signal.SIGTERM)
        except (ProcessLookupError, PermissionError):
            pass


def _rgb(img: np.ndarray) -> np.ndarray:
    if img.shape[2] == 1:
        return np.repeat(img, 3, axis=2)
    return np.ascontiguousarray(img[:, :, :3])


def _scalar(v) -> float:
    a = np.asarray(v, np.float64).reshape(-1)
    return float(np.clip(a[0], 0.0, 1.0)) if a.size else 1.0


# ---------------------------------------------------------------- the body
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
        return cls(world, world.opts.agent, owns_world=True)

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


# ---------------------------------------------------------------- bench
def bench_godot(options: GodotOptions | None = None, steps: int = 300, warmup: int = 20, frames=("hex", "binary"),
                seed: int = 0) -> dict:
    """Godot steps/s and bytes received per step, for each frame format, with random actions."""
    opts = options or GodotOptions()
    res = {"eye": [opts.eye_h, opts.eye_w], "n_agents": opts.n_agents, "steps": steps}
    rng = np.random.default_rng(seed)
    for fmt in frames:
        kw = {f: getattr(opts, f) for f in opts.__dataclass_fields__}
        kw.update(frames=fmt, port=0 if opts.launch else opts.port)
        t_start = time.perf_counter()
        with GodotWorld(GodotOptions(**kw)) as w:
            t_conn = time.perf_counter() - t_start
            w.reset(seed)
            heads = w.layouts[0].spec.action_heads

            def acts():
                return {i: [int(rng.integers(n)) for n in heads.values()] for i in range(w.n_agents)}
            for _ in range(warmup):
                w.step(acts())
            b0 = w.bytes_in
            t0 = time.perf_counter()
            for _ in range(steps):
                w.step(acts())
            dt = time.perf_counter() - t0
            res[fmt] = {"frames": "binary" if w.binary else "hex", "steps_per_s": round(steps / dt, 1),
                        "bytes_per_step": round((w.bytes_in - b0) / steps), "startup_s": round(t_conn, 2)}
    return res
