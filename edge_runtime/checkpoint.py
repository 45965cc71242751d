"""Flash checkpoint store: atomic, checksummed A/B slots with a wear budget, and resume.

A checkpoint file is a fixed 84-byte header followed by the payload:

    offset size  field
    0      8     magic b"ERCKPT\\r\\n"  (the CR LF catches text-mode mangling)
    8      2     format version (uint16, little endian; this build reads 1)
    10     2     header size (84)
    12     4     flags (0)
    16     8     sequence number (uint64; +1 on every save into the store)
    24     8     step (uint64; decisions learned from when it was taken)
    32     8     payload length in bytes (uint64)
    40     8     created (float64 unix seconds)
    48     32    SHA-256 of the payload
    80     4     CRC32 of header bytes 0..79

The payload is `torch.save` of a dict that holds only tensors and plain values
(numbers, strings, lists, dicts; config and BodySpec ride along as JSON text).
It is read back with `torch.load(weights_only=True)`, which refuses to run any
pickled code.

Two slots, ckpt-A.bin and ckpt-B.bin, live in one directory. A save writes the
slot that does *not* hold the newest valid checkpoint: into a temporary file in
the same directory, fsync, os.replace onto the slot name, fsync the directory.
A crash at any moment leaves the other slot untouched, so at start the newest
valid slot (highest sequence whose header CRC and payload SHA-256 check out and
whose payload decodes) is loaded, and any invalid slot is named in the log with
the reason.
"""
from __future__ import annotations

import dataclasses
import errno
import fcntl
import hashlib
import io
import json
import logging
import os
import signal
import struct
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .config import Config, ConfigError, build_section, check
from .runtime import Hook, Overrides

log = logging.getLogger("edge_runtime.checkpoint")

MAGIC = b"ERCKPT\r\n"
VERSION = 1
_HEAD = struct.Struct("<8sHHIQQQd32s")  # everything the CRC covers
HEADER = struct.Struct("<8sHHIQQQd32sI")
HEADER_SIZE = HEADER.size  # 84
SLOTS = ("A", "B")
LIFESPANS_KEPT = 10_000  # the runner's lifespan list is kept up to this many recent lives
# config sections that only say how this process runs, not what the agent is: they may change across a resume
OPERATIONAL_SECTIONS = ("runtime", "checkpoint", "console", "service")


class CheckpointError(Exception):
    """A checkpoint could not be written, found or used."""


class CheckpointWriteError(CheckpointError):
    pass


class NoValidCheckpoint(CheckpointError):
    pass


class CheckpointMismatch(CheckpointError):
    """The checkpoint belongs to another config or body; the message lists what differs."""


# ---------------------------------------------------------------------------- config
@dataclass
class CheckpointConfig:
    """The `[checkpoint]` section."""

    enabled: bool = True
    every_s: float = 600.0  # timer: a full checkpoint this often (0 = no timer; stop and requested saves only)
    min_interval_s: float = 60.0  # wear guard: no two timer/requested saves closer than this (the stop save is exempt)
    on_stop: bool = True  # a final checkpoint on graceful stop (SIGINT/SIGTERM, end of --steps)
    dir: str = "checkpoints"  # relative to the run directory (or absolute)
    background: bool = True  # timer/requested saves are written by a thread; the loop only serialises

    def __post_init__(self):
        w = "checkpoint"
        check(self.every_s >= 0, f"{w}.every_s", f"must be >= 0 (0 = no timer), got {self.every_s}")
        check(self.min_interval_s >= 0, f"{w}.min_interval_s", f"must be >= 0, got {self.min_interval_s}")
        check(self.every_s == 0 or self.every_s >= self.min_interval_s, f"{w}.every_s",
              f"must be >= checkpoint.min_interval_s ({self.min_interval_s}), the wear budget, got {self.every_s}")
        check(bool(self.dir), f"{w}.dir", "must not be empty")

    @classmethod
    def from_config(cls, cfg: Config) -> "CheckpointConfig":
        data = cfg.extra.get("checkpoint", {})
        if isinstance(data, CheckpointConfig):
            return data
        return build_section(cls, "checkpoint", data)


# ---------------------------------------------------------------------------- the file format
@dataclass
class SlotInfo:
    slot: str
    path: str
    valid: bool
    error: str | None = None
    sequence: int | None = None
    step: int | None = None
    bytes: int | None = None
    created: float | None = None
    version: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return f"slot {self.slot} (sequence {self.sequence}, step {self.step})"


def pack(payload: bytes, sequence: int, step: int, created: float | None = None, version: int = VERSION,
         magic: bytes = MAGIC) -> bytes:
    """Header + payload, as written to flash."""
    created = time.time() if created is None else created
    head = _HEAD.pack(magic, version, HEADER_SIZE, 0, sequence, step, len(payload), created, hashlib.sha256(payload).digest())
    return head + struct.pack("<I", zlib.crc32(head)) + payload


def parse(data: bytes, slot: str = "?", path: str = "") -> tuple[SlotInfo, bytes | None]:
    """Check a whole file's bytes. Returns (info, payload); payload is None when invalid (info.error says why)."""
    bad = lambda why, **kw: (SlotInfo(slot, path, False, why, bytes=len(data), **kw), None)  # noqa: E731
    if len(data) == 0:
        return bad("empty file (zero length)")
    if len(data) < HEADER_SIZE:
        return bad(f"truncated header ({len(data)} of {HEADER_SIZE} bytes)")
    magic, version, hsize, _flags, seq, step, plen, created, digest, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        return bad(f"wrong magic {magic!r} (expected {MAGIC!r}): not a checkpoint")
    if version != VERSION:
        return bad(f"format version {version} not supported (this build reads version {VERSION})", version=version)
    if zlib.crc32(data[:_HEAD.size]) != crc:
        return bad("header CRC32 mismatch (corrupted header)")
    if hsize != HEADER_SIZE:
        return bad(f"header size {hsize} (expected {HEADER_SIZE})")
    kw = dict(sequence=seq, step=step, created=created, version=version)
    have = len(data) - HEADER_SIZE
    if have != plen:
        return bad(f"payload length {have} bytes, header says {plen} ({'truncated' if have < plen else 'trailing bytes'})", **kw)
    payload = data[HEADER_SIZE:]
    if hashlib.sha256(payload).digest() != digest:
        return bad("payload SHA-256 mismatch (torn or corrupted payload)", **kw)
    return SlotInfo(slot, path, True, None, bytes=len(data), **kw), payload


def encode(state: dict) -> bytes:
    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getvalue()


def decode(payload: bytes) -> dict:
    """Plain data only: torch.load(weights_only=True) refuses anything that would run code."""
    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means: not a usable checkpoint
        raise CheckpointError(f"payload is not plain tensor data ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"payload is a {type(state).__name__}, expected a dict")
    return state


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_dir(path: str | Path) -> Path:
    """A run directory (holding checkpoints/) or the checkpoint directory itself."""
    p = Path(path)
    if not any((p / f"ckpt-{s}.bin").exists() for s in SLOTS) and (p / "checkpoints").is_dir():
        return p / "checkpoints"
    return p


# ---------------------------------------------------------------------------- the store
class CheckpointStore:
    """Two slots in one directory; save() is durable and atomic, load() takes the newest valid slot."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.saves = 0
        self.bytes_written = 0
        self._lock_fd = None
        self._write_lock = threading.Lock()

    def slot_path(self, slot: str) -> Path:
        return self.dir / f"ckpt-{slot}.bin"

    # -------------------------------------------------------- reading
    def scan(self, decode_payload: bool = False) -> list[tuple[SlotInfo, bytes | None]]:
        out = []
        for s in SLOTS:
            p = self.slot_path(s)
            try:
                data = p.read_bytes()
            except FileNotFoundError:
                out.append((SlotInfo(s, str(p), False, "missing"), None))
                continue
            except OSError as e:
                out.append((SlotInfo(s, str(p), False, f"unreadable ({e.strerror})"), None))
                continue
            info, payload = parse(data, s, str(p))
            if info.valid and decode_payload:
                try:
                    decode(payload)
                except CheckpointError as e:
                    info.valid, info.error, payload = False, str(e), None
            out.append((info, payload))
        return out

    def newest(self, scanned=None) -> tuple[SlotInfo, bytes] | None:
        scanned = self.scan() if scanned is None else scanned
        valid = [(i, p) for i, p in scanned if i.valid]
        return max(valid, key=lambda ip: ip[0].sequence) if valid else None

    def load(self) -> tuple[SlotInfo, dict]:
        """The newest valid checkpoint, decoded. Invalid slots are logged with the reason; raises NoValidCheckpoint."""
        scanned = self.scan()
        cands = sorted([ip for ip in scanned if ip[0].valid], key=lambda ip: -ip[0].sequence)
        rejected = [i for i, _ in scanned if not i.valid]
        for info, payload in cands:
            try:
                state = decode(payload)
            except CheckpointError as e:
                info.valid, info.error = False, str(e)
                rejected.append(info)
                continue
            for r in rejected:
                if r.error == "missing":
                    log.info("checkpoint slot %s (%s) is missing; using %s", r.slot, r.path, info.describe())
                else:
                    log.warning("checkpoint slot %s (%s) is invalid: %s; using %s", r.slot, r.path, r.error, info.describe())
            return info, state
        why = "; ".join(f"slot {r.slot}: {r.error}" for r in rejected)
        raise NoValidCheckpoint(f"no valid checkpoint in {self.dir} ({why})")

    # -------------------------------------------------------- writing
    def lock(self):
        """Only one process may write a store: an exclusive flock on <dir>/.lock (released by the kernel on exit)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise CheckpointError(f"checkpoint directory {self.dir} is in use by another process") from None
        self._lock_fd = fd

    def unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def clean_temp(self):
        for s in SLOTS:
            t = self.dir / f"ckpt-{s}.bin.tmp"
            if t.exists():
                log.info("removing %s left by an interrupted save", t)
                t.unlink(missing_ok=True)

    def save(self, payload: bytes, step: int) -> SlotInfo:
        """Write payload durably into the slot not holding the newest valid checkpoint. Raises CheckpointWriteError."""
        with self._write_lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            newest = self.newest()
            seq = newest[0].sequence + 1 if newest else 1
            slot = "A" if newest is None or newest[0].slot == "B" else "B"
            final = self.slot_path(slot)
            tmp = self.dir / f"ckpt-{slot}.bin.tmp"
            data = pack(payload, seq, step)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                try:
                    view = memoryview(data)
                    while view:
                        n = os.write(fd, view)
                        view = view[n:]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, final)
                _fsync_dir(self.dir)
            except OSError as e:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
                kept = f"the previous checkpoint ({newest[0].describe()}) is intact" if newest else "there is no previous checkpoint"
                raise CheckpointWriteError(f"checkpoint save into {final} failed: {e.strerror or e} (errno {e.errno}"
                                           f"{', ' + errno.errorcode.get(e.errno, '') if e.errno else ''}); {kept}") from None
            self.saves += 1
            self.bytes_written += len(data)
            return SlotInfo(slot, str(final), True, None, seq, step, len(data), None, VERSION)


# ---------------------------------------------------------------------------- what a checkpoint holds
def _body_state(body) -> dict | None:
    """The world, where it can be put back: the built-in arena's layout, robot and RNG. A real body: None."""
    if hasattr(body, "checkpoint_state") and hasattr(body, "load_checkpoint_state"):
        return {"kind": "custom", "state": body.checkpoint_state()}
    need = ("rng", "pos", "heading", "food", "hazards", "hazard_vel", "obstacles", "hp", "energy", "_in_hazard", "_frame")
    if not all(hasattr(body, k) for k in need):
        return None
    t = lambda a: torch.from_numpy(np.array(a, dtype=np.float64, copy=True))  # noqa: E731
    return {
        "kind": "arena", "rng": json.dumps(body.rng.bit_generator.state), "rng_name": type(body.rng.bit_generator).__name__,
        "pos": t(body.pos), "heading": float(body.heading), "food": t(body.food), "hazards": t(body.hazards),
        "hazard_vel": t(body.hazard_vel), "obstacles": t(body.obstacles), "hp": float(body.hp), "energy": float(body.energy),
        "in_hazard": torch.from_numpy(np.array(body._in_hazard, dtype=bool)), "frame": int(body._frame),
        "counters": json.dumps(getattr(body, "_counters", {})),
    }


def _load_body_state(body, st: dict | None):
    """Put the world back; returns the body's current Sense, or None when nothing was restored."""
    if st is None:
        return None
    if st["kind"] == "custom":
        return body.load_checkpoint_state(st["state"])
    if not hasattr(body, "_sense"):
        return None
    rng_state = json.loads(st["rng"])
    if type(body.rng.bit_generator).__name__ != st["rng_name"]:
        body.rng = np.random.Generator(getattr(np.random, st["rng_name"])())
    body.rng.bit_generator.state = rng_state
    a = lambda x: x.numpy().copy()  # noqa: E731
    body.pos, body.heading, body.food, body.hazards = a(st["pos"]), st["heading"], a(st["food"]), a(st["hazards"])
    body.hazard_vel, body.obstacles, body.hp, body.energy = a(st["hazard_vel"]), a(st["obstacles"]), st["hp"], st["energy"]
    body._in_hazard, body._frame, body.dead = a(st["in_hazard"]), st["frame"], body.hp <= 0.0
    body._counters = json.loads(st["counters"])
    return body._sense()


def capture(runner, seed: int | None = None) -> dict:
    """Everything resume needs, as plain data (tensors cloned, so a writer thread may serialise later)."""
    rule = runner.rule
    rs = rule.state_dict()
    rs = {k: ([x.clone() for x in v] if isinstance(v, list) and v and isinstance(v[0], torch.Tensor)
              else v.clone() if isinstance(v, torch.Tensor) else v) for k, v in rs.items()}
    return {
        "meta": {"format": VERSION, "step": int(rule.steps), "rule": rule.name, "towers": rule.brain.towers,
                 "seed": int(runner.seed if seed is None else seed), "created": time.time()},
        "config": json.dumps(runner.cfg.to_dict(), sort_keys=True, default=str),
        "spec": json.dumps(runner.body.spec.to_dict(), sort_keys=True),
        "model": {k: v.detach().clone() for k, v in rule.brain.state_dict().items()},
        "rule": rs,
        "runner": {"body_steps": int(runner.body_steps), "life_steps": int(runner.life_steps),
                   "lives_completed": len(runner.lifespans),
                   "lifespans": torch.tensor(runner.lifespans[-LIFESPANS_KEPT:], dtype=torch.int64)},
        "body": _body_state(runner.body),
        # console overrides are state of the run (not config): they come back on resume
        "overrides": json.dumps(runner.overrides.active(), sort_keys=True),
        # a real body's event counters (bumps, MCU boots...) over the run so far: they add up across restarts
        "body_counters": json.dumps(runner.body_counters(), sort_keys=True, default=str),
    }


def _flat(d, prefix=""):
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(_flat(v, key + "."))
        else:
            out[key] = v
    return out


def differences(state: dict, cfg: Config, spec) -> list[str]:
    """What differs between a checkpoint and the config/body it is about to be loaded into (empty: they match)."""
    diffs = []
    saved = json.loads(state["config"])
    now = json.loads(json.dumps(cfg.to_dict(), sort_keys=True, default=str))
    for s in OPERATIONAL_SECTIONS:
        saved.pop(s, None)
        now.pop(s, None)
    a, b = _flat(saved), _flat(now)
    for k in sorted(set(a) | set(b)):
        if a.get(k, "<absent>") != b.get(k, "<absent>"):
            diffs.append(f"{k}: checkpoint {a.get(k, '<absent>')!r}, now {b.get(k, '<absent>')!r}")
    sa, sb = _flat(json.loads(state["spec"])), _flat(json.loads(json.dumps(spec.to_dict(), sort_keys=True)))
    for k in sorted(set(sa) | set(sb)):
        if sa.get(k, "<absent>") != sb.get(k, "<absent>"):
            diffs.append(f"body.{k}: checkpoint {sa.get(k, '<absent>')!r}, now {sb.get(k, '<absent>')!r}")
    return diffs


def check_matches(state: dict, cfg: Config, spec, where: str = "checkpoint"):
    diffs = differences(state, cfg, spec)
    if diffs:
        more = f" (+{len(diffs) - 8} more)" if len(diffs) > 8 else ""
        raise CheckpointMismatch(f"{where} belongs to a different config/body, refusing to load it: "
                                 f"{'; '.join(diffs[:8])}{more}")


def apply(runner, state: dict):
    """Load a checkpoint into a runner whose body has just been reset (the Runner calls hooks' on_start then)."""
    rule = runner.rule
    if state["meta"]["rule"] != rule.name:
        raise CheckpointMismatch(f"checkpoint is for rule {state['meta']['rule']!r}, this run uses {rule.name!r}")
    rule.brain.load_state_dict(state["model"], strict=True)
    rule.load_state_dict(state["rule"])
    rule._cur = None
    # the RAM ring and the death-replay window are not on flash: they restart from the resumed state
    rule.ring.clear()
    if getattr(rule, "window", None) is not None:
        rule.window.clear()
    rule.take_snapshot()
    r = state["runner"]
    runner.body_steps, runner.life_steps = r["body_steps"], r["life_steps"]
    runner.lifespans = [int(x) for x in r["lifespans"].tolist()]
    sense = _load_body_state(runner.body, state["body"])
    if sense is not None:
        runner.sense = sense  # the world is back, its own counters with it
    elif "body_counters" in state:
        runner.counters_before = json.loads(state["body_counters"])
    if "overrides" in state:
        runner.overrides = Overrides.from_dict(json.loads(state["overrides"]))  # applied by the runner after on_start


def ring_cost(rule) -> tuple[int, int]:
    """(bytes per RAM rollback snapshot, bytes when the ring is full)."""
    per = sum(t.numel() * t.element_size() for ts in rule.snapshot_tensors().values() for t in ts)
    return per, per * rule.ring.depth


def budget(bytes_per_save: int, c: CheckpointConfig) -> dict:
    """The wear budget: bytes written per day by the timer, and the worst case with back-to-back requests."""
    timer = 86400.0 / c.every_s * bytes_per_save if c.every_s > 0 else 0.0
    worst = 86400.0 / c.min_interval_s * bytes_per_save if c.min_interval_s > 0 else float("inf")
    return {"bytes_per_save": bytes_per_save, "every_s": c.every_s, "min_interval_s": c.min_interval_s,
            "bytes_per_day_timer": int(timer), "bytes_per_day_max": worst if worst == float("inf") else int(worst)}


def _mb(n) -> str:
    return "unbounded" if n == float("inf") else f"{n / 1e6:.1f} MB"


# ---------------------------------------------------------------------------- the hook
class CheckpointHook(Hook):
    """Saves on a timer, on request (request_save(), from any thread) and on graceful stop; resumes on start.

    The state is captured in the loop thread between steps (so it is
    consistent); with background=True the write + fsync happens in a thread.
    """

    def __init__(self, store: CheckpointStore, cfg: CheckpointConfig, resume_state: dict | None = None,
                 clock=time.monotonic, handle_sigint: bool = True):
        self.store = store
        self.cfg = cfg
        self.resume_state = resume_state
        self.clock = clock
        self.handle_sigint = handle_sigint
        self._requested = threading.Event()
        self._writer: threading.Thread | None = None
        self._last_save_t = None
        self._last_saved_step = None
        self._prev_sigint = None
        self.last: SlotInfo | None = None
        self.last_error: str | None = None
        self.bytes_per_save = None
        self.runner = None

    # -------------------------------------------------------- hook
    def on_start(self, runner):
        self.runner = runner
        self.store.lock()
        self.store.clean_temp()
        if self.resume_state is not None:
            apply(runner, self.resume_state)
            self._last_saved_step = runner.rule.steps
            log.info("resumed from checkpoint: step %d, %d lives so far, body step %d", runner.rule.steps,
                     len(runner.lifespans), runner.body_steps)
            self.resume_state = None
        self.bytes_per_save = HEADER_SIZE + len(encode(capture(runner)))
        b = budget(self.bytes_per_save, self.cfg)
        per, full = ring_cost(runner.rule)
        log.info("rollback ring: depth %d, a snapshot every %d decisions, %.2f MB each, %.2f MB of RAM when full",
                 runner.rule.ring.depth, runner.rule.cfg.rollback_every, per / 2**20, full / 2**20)
        log.info("checkpoints: %s, %s per save, timer every %s, min interval %.0f s; wear ~%s/day from the timer "
                 "(at most %s/day with back-to-back requests) + one per stop", self.store.dir, _mb(self.bytes_per_save),
                 f"{self.cfg.every_s:.0f} s" if self.cfg.every_s else "off", self.cfg.min_interval_s,
                 _mb(b["bytes_per_day_timer"]), _mb(b["bytes_per_day_max"]))
        self._last_save_t = self.clock()
        if self.handle_sigint and threading.current_thread() is threading.main_thread():
            # first Ctrl-C: finish this step, then stop with a final checkpoint; a second one interrupts at once
            def on_int(signum, frame):
                if runner.stop_requested:
                    raise KeyboardInterrupt
                log.info("SIGINT: stopping after this step (Ctrl-C again to interrupt at once)")
                runner.request_stop()
            self._prev_sigint = signal.signal(signal.SIGINT, on_int)

    def on_step(self, runner, sense, metrics):
        if sense.dead or self._busy():
            return  # a dead body is respawned right after this; save from a living one
        now = self.clock()
        since = now - self._last_save_t
        due = self.cfg.every_s > 0 and since >= self.cfg.every_s
        if self._requested.is_set() and since >= self.cfg.min_interval_s:
            due = True
        if due:
            self._requested.clear()
            self._save(runner, "requested" if not (self.cfg.every_s > 0 and since >= self.cfg.every_s) else "timer",
                       background=self.cfg.background)

    def on_stop(self, runner, summary):
        try:
            self.join()
            if self.cfg.on_stop and runner.rule.steps != self._last_saved_step and not self._body_dead(runner):
                self._save(runner, "stop", background=False)
        finally:
            if self._prev_sigint is not None:
                try:
                    signal.signal(signal.SIGINT, self._prev_sigint)
                except ValueError:
                    pass
                self._prev_sigint = None
            self.store.unlock()

    # -------------------------------------------------------- on request
    def request_save(self):
        """Ask for a checkpoint at the next step (thread-safe; honours min_interval_s)."""
        self._requested.set()

    def save_now(self, reason: str = "requested") -> SlotInfo | None:
        """Save synchronously, now (call from the loop thread, e.g. a hook). Ignores the wear interval."""
        self.join()
        return self._save(self.runner, reason, background=False)

    def join(self):
        if self._writer is not None:
            self._writer.join()
            self._writer = None

    def status(self) -> dict:
        b = budget(self.bytes_per_save, self.cfg) if self.bytes_per_save else {}
        return {"dir": str(self.store.dir), "saves": self.store.saves, "bytes_written": self.store.bytes_written,
                "last": self.last.to_dict() if self.last else None, "last_error": self.last_error,
                "save_pending": self._requested.is_set() or self._busy(), **b}

    # -------------------------------------------------------- internals
    def _busy(self) -> bool:
        return self._writer is not None and self._writer.is_alive()

    @staticmethod
    def _body_dead(runner) -> bool:
        """A dead world must not be saved as where to resume; a dead robot may (it comes back by reset anyway)."""
        from .body import Revivable

        return runner.sense is not None and runner.sense.dead and not isinstance(runner.body, Revivable)

    def _save(self, runner, reason: str, background: bool) -> SlotInfo | None:
        t0 = time.perf_counter()
        state = capture(runner)
        step = state["meta"]["step"]
        self._last_save_t = self.clock()
        self._last_saved_step = step

        def write():
            try:
                payload = encode(state)
                info = self.store.save(payload, step)
            except CheckpointError as e:
                self.last_error = str(e)
                self._last_saved_step = None  # nothing new on flash: the stop save must still happen
                log.error("%s", e)
                return None
            self.last, self.last_error = info, None
            log.info("checkpoint (%s): step %d -> slot %s, sequence %d, %s in %.0f ms", reason, step, info.slot,
                     info.sequence, _mb(info.bytes), (time.perf_counter() - t0) * 1e3)
            return info

        if background:
            self._writer = threading.Thread(target=write, name="checkpoint-writer", daemon=True)
            self._writer.start()
            return None
        return write()


# ---------------------------------------------------------------------------- wiring for the CLI / service
def checkpoint_hooks(cfg: Config, spec, run_dir: str | Path, resume: str = "no", seed: int = 0) -> tuple[list[Hook], int]:
    """The hooks a run needs for checkpoints, and the seed to run with.

    resume: "no" (fresh start), "yes" (the newest valid checkpoint must exist and match),
    "auto" (resume if there is a valid checkpoint, else start fresh; for the service).
    Raises CheckpointError (NoValidCheckpoint, CheckpointMismatch) and ConfigError.
    """
    c = CheckpointConfig.from_config(cfg)
    d = store_dir(cfg, run_dir)
    store = CheckpointStore(d)
    state = None
    if resume in ("yes", "auto"):
        try:
            info, state = store.load()
        except NoValidCheckpoint:
            if resume == "yes":
                raise
            bad = sorted(d.glob("ckpt-*.bin")) if d.is_dir() else []
            if bad:
                # none of them loads: keep them for a post-mortem, out of the new run's way
                stamp = time.strftime("%Y%m%d-%H%M%S")
                for f in bad:
                    f.rename(f.with_name(f"{f.name}.corrupt-{stamp}"))
                log.warning("%s: %d checkpoint file(s), none valid: kept as *.corrupt-%s, starting fresh",
                            d, len(bad), stamp)
            else:
                log.info("no checkpoint in %s: starting fresh", d)
        if state is not None:
            check_matches(state, cfg, spec, where=f"checkpoint {info.path} (step {info.step})")
            seed = int(state["meta"]["seed"])
            log.info("resuming from %s, sequence %d, step %d", info.path, info.sequence, info.step)
    if not c.enabled:
        if state is not None:
            raise ConfigError("checkpoint.enabled: resuming needs checkpoints enabled")
        return [], seed
    return [CheckpointHook(store, c, resume_state=state)], seed


def store_dir(cfg: Config, run_dir: str | Path) -> Path:
    """Where a run's checkpoints live: checkpoint.dir, relative to the run directory unless absolute."""
    c = CheckpointConfig.from_config(cfg)
    return Path(c.dir) if Path(c.dir).is_absolute() else Path(run_dir) / c.dir


RUN_FILES = ("config.toml", "weights.pt", "metrics.jsonl", "lives.jsonl", "summary.json")


def run_dir_holds_a_run(cfg: Config, run_dir: str | Path) -> str | None:
    """None when run_dir is free to start in; else what it holds, starting "a checkpoint" when one is valid
    and "no valid checkpoint" otherwise."""
    d = Path(run_dir)
    files = [f for f in RUN_FILES if (d / f).exists()]
    sd = store_dir(cfg, run_dir)
    slots = sorted(sd.glob("ckpt-*.bin*")) if sd.is_dir() else []
    if not files and not slots:
        return None
    store = CheckpointStore(sd)
    best = store.newest(store.scan(decode_payload=True))  # (quietly: load() would log each slot)
    if best is not None:
        return f"a checkpoint at step {best[0].step}, sequence {best[0].sequence}"
    return f"no valid checkpoint; {', '.join(files + [p.name for p in slots][:2])}"


def set_run_aside(cfg: Config, run_dir: str | Path) -> Path:
    """Rename run_dir (and an absolute checkpoint.dir outside it) to <name>.old-<time>; nothing is deleted."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    d = Path(run_dir)
    sd = store_dir(cfg, run_dir)
    moved = []
    outside = sd.is_dir() and sd.resolve() != d.resolve() and d.resolve() not in sd.resolve().parents
    for src in ([d] if d.exists() else []) + ([sd] if outside else []):
        dest = src.with_name(f"{src.name}.old-{stamp}")
        n = 1
        while dest.exists():
            dest = src.with_name(f"{src.name}.old-{stamp}-{n}")
            n += 1
        src.rename(dest)
        moved.append(dest)
    return moved[0] if moved else d


def verify(path: str | Path) -> dict:
    """What `edge-runtime checkpoints verify DIR --json` prints."""
    store = CheckpointStore(resolve_dir(path))
    scanned = store.scan(decode_payload=True)
    best = store.newest(scanned)
    out = {"valid": best is not None, "dir": str(store.dir), "slot": None, "sequence": None, "step": None,
           "slots": [i.to_dict() for i, _ in scanned]}
    if best is not None:
        info, payload = best
        state = decode(payload)
        meta = state.get("meta", {}) if isinstance(state.get("meta"), dict) else {}
        out.update(slot=info.slot, sequence=info.sequence, step=info.step, rule=meta.get("rule"),
                   seed=meta.get("seed"), created=info.created, bytes=info.bytes)
        try:
            c = CheckpointConfig.from_config(Config.from_dict(json.loads(state["config"])))
            out["wear"] = budget(info.bytes, c)
        except (ConfigError, KeyError, TypeError, ValueError):
            pass
    return out


def format_verify(res: dict) -> str:
    lines = [f"{res['dir']}: {'valid' if res['valid'] else 'NO VALID CHECKPOINT'}"
             + (f" - newest is slot {res['slot']}, sequence {res['sequence']}, step {res['step']}" if res["valid"] else "")]
    for s in res["slots"]:
        lines.append(f"  slot {s['slot']}: " + (f"ok, sequence {s['sequence']}, step {s['step']}, {s['bytes']} bytes"
                                                if s["valid"] else f"invalid: {s['error']}"))
    if "wear" in res:
        w = res["wear"]
        lines.append(f"  wear budget: {_mb(w['bytes_per_day_timer'])}/day from the timer (every {w['every_s']:.0f} s)")
    return "\n".join(lines)
