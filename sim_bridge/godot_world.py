"""One Godot process (launched, or the editor's Play): handshake, env_info, reset, lockstep steps, per-agent respawn."""
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
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Optional


from edge_runtime.body import Action, Sense

from .godot_layout import AgentLayout
from .godot_options import ARENA_PROJECT, GODOT_BINARIES, GodotOptions
from .godot_protocol import MAJOR_VERSION, MINOR_VERSION, Channel, GodotError, Listener, decode_image
from .obs_sense import ObservationError

if TYPE_CHECKING:
    from .godot_body import GodotBody

log = logging.getLogger("sim_bridge.godot")

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
        self.layouts = [AgentLayout.from_spaces(obs[i], act[i], self.name if n == 1 else f"{self.name}[{i}]",
                                                decision_steps=self.opts.decision_steps)
                        for i in range(n)]

    def _sense(self, i: int, obs: dict, blob, dead: bool, info) -> Sense:
        lay = self.layouts[i]
        extra = {k: v for k, v in (info or {}).items() if "reward" not in str(k).lower()}  # no score rides along
        extra["agent"] = i
        self._frames[i] += 1
        self.infos[i] = extra
        if not isinstance(obs, dict):
            raise GodotError(f"{self.name}: agent {i}'s obs is not a dict")
        try:
            return lay.mapper.sense(obs, dead, self._frames[i], extra,
                                    decode=lambda k, v: decode_image(v, lay.image_shapes[k], blob, self.name, k))
        except ObservationError as e:
            raise GodotError(str(e)) from None

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
        from .godot_body import GodotBody  # (the body module builds on this one)

        return [GodotBody.for_agent(self, i) for i in range(self.n_agents)]

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
