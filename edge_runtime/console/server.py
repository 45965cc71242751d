"""The console's own thread: reads the device, edits lines, answers what it can, asks the loop for the rest."""
from __future__ import annotations

import collections
import errno
import logging
import math
import os
import select
import sys
import threading
import time

from ..config import ConsoleConfig
from .device import open_device
from .line import CLEAR_LINE, LineEditor

log = logging.getLogger("edge_runtime.console")


REPLY_TIMEOUT_S = 3.0

HELP = [
    ("help", "this list", False),
    ("status", "step, rate, life, HP, learning, rollbacks, checkpoint", False),
    ("senses", "the latest sensation: hp, energy, touch, dead, frame, eyes", False),
    ("counters", "the body's event counters over the run (bumps, deaths, MCU boots, reports...), one JSON line", False),
    ("learn [on|off]", "show / switch learning (off: act frozen, no updates)", True),
    ("lr [MIN MAX]", "show the learning-rate figures / override the self-made rate's range [MIN, MAX]", True),
    ("overrides [clear]", "show / drop the console's overrides (kept across restarts until cleared)", True),
    ("save", "save now (checkpoint store if configured, else weights.npz|.pt)", True),
    ("rollback", "restore the latest rollback snapshot", True),
    ("motors stop|go", "stop the motors and hold them / let them go again", True),
    ("log [LEVEL]", "show / set the log level (DEBUG INFO WARNING ERROR)", True),
    ("stream on [SECONDS]|off", "periodic one-line telemetry on this console", False),
    ("revive", "bring the body back now (a dead one waiting, or a living one: a new life, not a death)", True),
]
WRITE_ARGS = {"learn": 1, "lr": 1, "log": 1, "overrides": 1}  # these write only when given arguments
ALWAYS_WRITE = {"save", "rollback", "motors", "revive"}


# ---------------------------------------------------------------- requests to the loop
class Request:
    __slots__ = ("cmd", "args", "reply", "done", "lock", "taken", "cancelled")

    def __init__(self, cmd: str, args: list[str]):
        self.cmd, self.args = cmd, args
        self.reply: str | None = None
        self.done = threading.Event()
        self.lock = threading.Lock()
        self.taken = self.cancelled = False


class CommandError(Exception):
    """A one-line error for the console user."""


def _fmt(x, spec=".3f") -> str:
    try:
        return format(float(x), spec) if x is not None and math.isfinite(float(x)) else "-"
    except (TypeError, ValueError):
        return "-"


# ---------------------------------------------------------------- the console
class Console:
    """Serves the line console on `device` ('stdio' or a device path) in its own thread."""

    def __init__(self, device: str, cfg: ConsoleConfig | None = None):
        self.device = device
        self.cfg = cfg or ConsoleConfig()
        self.prompt = self.cfg.prompt.encode()
        self.stdio = device == "stdio"
        self.editor = LineEditor(echo=not self.stdio)
        self.requests: collections.deque[Request] = collections.deque()
        self.outq: collections.deque[str] = collections.deque(maxlen=32)  # stream lines from the loop
        self.stream_every: float | None = None  # set by this thread, read by the loop: a plain attribute
        self.commands = 0
        self.errors = 0
        self.dropped_lines = 0
        self.last_step_t: float | None = None  # written by the loop
        self.last_step: int | None = None
        self.nl = b"\n" if self.stdio else b"\r\n"
        self.reply_timeout = REPLY_TIMEOUT_S
        self._stop = threading.Event()
        self._closing = threading.Event()
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self._fd_in = self._fd_out = None
        self._thread: threading.Thread | None = None

    # -- lifecycle
    def start(self):
        if self._fd_in is None:
            self.open()
        self._thread = threading.Thread(target=self._serve, name="console", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 2.0):
        """Write what is queued, then stop the thread and close the device."""
        self._closing.set()
        self.wake()
        if self._thread is not None:
            self._thread.join(timeout)
        self._stop.set()
        if self._thread is not None:
            self._thread.join(0.5)
        self._close()
        for fd in (self._wake_r, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass
        self._wake_r = self._wake_w = -1

    def open(self):
        """Open the device (raises OSError naming it); the thread reopens it by itself after a loss."""
        if self.stdio:
            self._fd_in, self._fd_out = sys.stdin.fileno(), sys.stdout.fileno()
        else:
            fd = open_device(self.device, self.cfg.baud)
            self._fd_in = self._fd_out = fd

    def _close(self):
        if not self.stdio and self._fd_in is not None:
            try:
                os.close(self._fd_in)
            except OSError:
                pass
        self._fd_in = self._fd_out = None

    def wake(self):
        try:
            os.write(self._wake_w, b"x")
        except OSError:  # pipe full (already woken) or closed
            pass

    # -- called from the loop thread (must never block)
    def post_line(self, line: str):
        if len(self.outq) == self.outq.maxlen:
            self.dropped_lines += 1
        self.outq.append(line)
        self.wake()

    # -- the console thread
    def _write(self, data: bytes):
        """Write everything (waiting for the device as long as needed); give up only when stopping."""
        fd = self._fd_out
        view = memoryview(data)
        while view and not self._stop.is_set() and fd is not None:
            try:
                n = os.write(fd, view)
                view = view[n:]
            except BlockingIOError:
                select.select([], [fd], [], 0.2)
            except InterruptedError:
                continue

    def _serve(self):
        backoff = 0.0
        greeted = False
        while not self._stop.is_set():
            if self._closing.is_set():
                if self._fd_out is not None:
                    self._flush_stream()
                return
            if self._fd_in is None:
                time.sleep(backoff)
                try:
                    self.open()
                    log.info("console: %s is back", self.device)
                    greeted = False
                except OSError:
                    backoff = min(max(backoff * 2, 0.5), 5.0)
                    continue
            if not greeted:
                self._write(self.nl + b"edge-runtime console" + (b" (writable)" if self.cfg.writable else b" (read-only)")
                            + b"; type help" + self.nl + self.prompt)
                greeted = True
            try:
                r, _, _ = select.select([self._fd_in, self._wake_r], [], [], 1.0)
            except (OSError, ValueError):
                r = []
            if self._wake_r in r:
                try:
                    os.read(self._wake_r, 4096)
                except OSError:
                    pass
                self._flush_stream()
            if self._fd_in in r:
                try:
                    data = os.read(self._fd_in, 1024)
                except BlockingIOError:
                    continue
                except OSError as e:  # EIO: the other end went away (pty closed, USB unplugged)
                    data = None
                    if e.errno not in (errno.EIO, errno.ENXIO, errno.ENODEV, errno.EBADF):
                        log.warning("console: read %s: %s", self.device, e)
                if not data:
                    if self.stdio:
                        log.info("console: stdin closed; the console stops, the runtime goes on")
                        return
                    log.warning("console: %s went away; reopening", self.device)
                    self._close()
                    backoff = 0.5
                    continue
                self._handle_input(data)

    def _flush_stream(self):
        while self.outq:
            line = self.outq.popleft()
            text = line.encode("ascii", "replace") + self.nl
            self._write(text if self.stdio else CLEAR_LINE + text + self.prompt + bytes(self.editor.buf))

    def _handle_input(self, data: bytes):
        echo, lines = self.editor.feed(data)
        if echo:
            self._write(echo)
        for line in lines:
            reply = self.execute(line) if line is not None else None
            out = b""
            if reply:
                out = reply.encode("ascii", "replace").replace(b"\n", self.nl) + self.nl
            self._write(out + self.prompt)

    # -- commands (console thread)
    def execute(self, line: str) -> str | None:
        """One command line -> reply text (errors are one line starting 'error:')."""
        parts = line.split()
        if not parts:
            return None
        cmd, args = parts[0].lower(), parts[1:]
        self.commands += 1
        try:
            return self._dispatch(cmd, args)
        except CommandError as e:
            self.errors += 1
            return f"error: {e}"

    def _needs_write(self, cmd: str, args: list[str]) -> bool:
        return cmd in ALWAYS_WRITE or (cmd in WRITE_ARGS and len(args) >= WRITE_ARGS[cmd])

    def _dispatch(self, cmd: str, args: list[str]) -> str:
        known = {"help", "status", "senses", "counters", "learn", "lr", "overrides", "save", "rollback", "motors", "log", "stream",
                 "revive"}
        if cmd not in known:
            raise CommandError(f"unknown command {cmd!r} (try help)")
        self._check_args(cmd, args)
        if self._needs_write(cmd, args) and not self.cfg.writable:
            raise CommandError(f"{cmd}: read-only console (writes need [console] writable = true)")
        if cmd == "help":
            w = "enabled" if self.cfg.writable else "disabled: [console] writable = true enables them"
            rows = [f"  {c:<24} {h}{' [w]' if wr else ''}" for c, h, wr in HELP]
            return "commands ([w] = changes the runtime; writes " + w + "):\n" + "\n".join(rows)
        if cmd == "log":
            root = logging.getLogger()
            if not args:
                return f"log level {logging.getLevelName(root.getEffectiveLevel())}"
            root.setLevel(args[0].upper())
            log.warning("console: log level set to %s", args[0].upper())
            return f"log level {args[0].upper()}"
        if cmd == "stream":
            if args[0] == "off":
                self.stream_every = None
                return "stream off"
            period = float(args[1]) if len(args) > 1 else self.cfg.stream_every_s
            self.stream_every = period
            return f"stream on every {period:g} s"
        return self._ask_loop(cmd, args)

    @staticmethod
    def _check_args(cmd: str, args: list[str]):
        def bad(expect):
            raise CommandError(f"{cmd}: expected {expect}, got {' '.join(args) or 'nothing'}")

        if cmd in ("help", "status", "senses", "counters", "save", "rollback", "revive") and args:
            bad("no arguments")
        if cmd == "learn" and not (not args or (len(args) == 1 and args[0] in ("on", "off"))):
            bad("on|off")
        if cmd == "motors" and not (len(args) == 1 and args[0] in ("stop", "go")):
            bad("stop|go")
        if cmd == "overrides" and not (not args or args == ["clear"]):
            bad("nothing or clear")
        if cmd == "log" and not (not args or (len(args) == 1 and args[0].upper() in ("DEBUG", "INFO", "WARNING", "ERROR"))):
            bad("DEBUG|INFO|WARNING|ERROR")
        if cmd == "lr" and args:
            try:
                ok = len(args) == 2 and all(math.isfinite(float(a)) for a in args)
            except ValueError:
                ok = False
            if not ok:
                bad("two numbers MIN MAX")
        if cmd == "stream":
            ok = len(args) == 1 and args[0] in ("on", "off")
            if len(args) == 2 and args[0] == "on":
                try:
                    ok = 0.1 <= float(args[1]) <= 3600
                except ValueError:
                    ok = False
            if not ok:
                bad("on [SECONDS in 0.1..3600] | off")

    def _ask_loop(self, cmd: str, args: list[str]) -> str:
        req = Request(cmd, args)
        self.requests.append(req)
        if req.done.wait(self.reply_timeout):
            return req.reply
        with req.lock:
            if not req.taken:
                req.cancelled = True
        if req.cancelled:
            ago = f"{time.monotonic() - self.last_step_t:.1f} s ago" if self.last_step_t else "never"
            raise CommandError(f"{cmd}: the control loop did not answer in {self.reply_timeout:g} s "
                               f"(last step {self.last_step}, {ago}); not done")
        req.done.wait()  # it is running right now: its reply follows
        return req.reply
