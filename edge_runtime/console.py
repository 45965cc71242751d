"""The serial debug console: a line console on a UART, a USB gadget port, any pty, or stdio.

    edge-runtime run --config robot.toml --console /dev/ttyGS0
    edge-runtime run --sim --console stdio
    picocom -b 115200 /dev/ttyUSB0          (or: edge-runtime console /dev/ttyUSB0)

Threads and the control loop
----------------------------
The console runs in its own thread: it reads the device, edits the line
(echo, backspace/DEL, CR/LF/CRLF, Ctrl-C, Ctrl-U, arrow keys ignored) and
writes replies. It never touches the runner. A command that needs the runtime
is put on a request queue; `ConsoleHook.on_step` (in the loop thread) takes
at most one request per step without blocking, runs it between two steps (so
it sees and changes a consistent state) and hands the reply text back. The
console thread waits for one reply at a time, so however fast commands arrive
the loop does at most one small piece of console work per step; `stream on`
costs the loop one formatted line per period. Output from the loop goes into
a bounded queue (oldest stream lines are dropped if the device does not
drain), so a stuck terminal or a full UART buffer can never block the loop.
If the loop does not answer within a few seconds (hung), the console says so
and stays usable.

While a dead robot waits for its revive button no steps run; the runtime
then calls `ConsoleHook.on_wait` between its polls, which serves requests the
same way, so the console keeps answering (and can revive it).

Read-only unless `[console] writable = true`: looking (help, status, senses,
learn, lr, overrides, log, stream) is always allowed; changing the runtime
(learn on|off, lr MIN MAX, overrides clear, save, rollback, motors stop|go,
log LEVEL, revive) needs writes.

`learn`, `lr` and `motors` are run-time overrides (runtime.Overrides): saved
with the checkpoints and re-applied after a restart, never written into the
config. The body capabilities decide what `motors` and `revive` do
(edge_runtime.body.MotorControl, Revivable); a body without motor control
says so.
"""
from __future__ import annotations

import collections
import errno
import logging
import math
import os
import select
import sys
import termios
import threading
import time

from .body import MotorControl, Revivable
from .config import ConfigError, ConsoleConfig
from .hooks import Hook
from .jsonout import dumps

log = logging.getLogger("edge_runtime.console")

MAX_LINE = 200
REPLY_TIMEOUT_S = 3.0
SAVE_MIN_INTERVAL_S = 1.0
CLEAR_LINE = b"\r\x1b[K"

HELP = [
    ("help", "this list", False),
    ("status", "step, rate, life, HP, learning, rollbacks, checkpoint", False),
    ("senses", "the latest sensation: hp, energy, touch, dead, frame, eyes", False),
    ("counters", "the body's event counters over the run (bumps, deaths, MCU boots, reports...), one JSON line", False),
    ("learn [on|off]", "show / switch learning (off: act frozen, no updates)", True),
    ("lr [MIN MAX]", "show the learning-rate figures / override the self-made rate's range [MIN, MAX]", True),
    ("overrides [clear]", "show / drop the console's overrides (kept across restarts until cleared)", True),
    ("save", "save now (checkpoint store if configured, else weights.pt)", True),
    ("rollback", "restore the latest rollback snapshot", True),
    ("motors stop|go", "stop the motors and hold them / let them go again", True),
    ("log [LEVEL]", "show / set the log level (DEBUG INFO WARNING ERROR)", True),
    ("stream on [SECONDS]|off", "periodic one-line telemetry on this console", False),
    ("revive", "bring the body back now (a dead one waiting, or a living one: a new life, not a death)", True),
]
WRITE_ARGS = {"learn": 1, "lr": 1, "log": 1, "overrides": 1}  # these write only when given arguments
ALWAYS_WRITE = {"save", "rollback", "motors", "revive"}


# ---------------------------------------------------------------- line editing
class LineEditor:
    """Turns raw terminal bytes into lines and the echo a terminal expects."""

    def __init__(self, echo: bool = True, max_len: int = MAX_LINE):
        self.echo = echo
        self.max_len = max_len
        self.buf = bytearray()
        self._cr = False  # last byte was CR: a following LF is the same line end
        self._esc = 0  # 0 none, 1 after ESC, 2 inside CSI

    def feed(self, data: bytes) -> tuple[bytes, list[str | None]]:
        """Returns (bytes to echo, completed lines); a None line means 'cancelled' (Ctrl-C)."""
        out = bytearray()
        lines: list[str | None] = []
        for b in data:
            if self._esc == 1:
                self._esc = 2 if b in (0x5B, 0x4F) else 0  # ESC [ or ESC O: a sequence follows
                continue
            if self._esc == 2:
                if 0x40 <= b <= 0x7E:
                    self._esc = 0
                continue
            was_cr, self._cr = self._cr, False
            if b == 0x0D or b == 0x0A:
                if b == 0x0A and was_cr:
                    continue
                self._cr = b == 0x0D
                lines.append(self.buf.decode("ascii"))
                self.buf.clear()
                out += b"\r\n"
            elif b in (0x08, 0x7F):
                if self.buf:
                    self.buf.pop()
                    out += b"\b \b"
            elif b == 0x03:  # Ctrl-C
                self.buf.clear()
                out += b"^C\r\n"
                lines.append(None)
            elif b == 0x15:  # Ctrl-U
                out += b"\b \b" * len(self.buf)
                self.buf.clear()
            elif b == 0x1B:
                self._esc = 1
            elif 0x20 <= b < 0x7F or b == 0x09:
                if len(self.buf) >= self.max_len:
                    out += b"\x07"
                else:
                    self.buf.append(0x20 if b == 0x09 else b)
                    out.append(0x20 if b == 0x09 else b)
        return (bytes(out) if self.echo else b""), lines


# ---------------------------------------------------------------- devices
def baud_constant(baud: int) -> int:
    c = getattr(termios, f"B{baud}", None)
    if c is None:
        raise ConfigError(f"console.baud: {baud} is not a baud rate this system knows")
    return c


def open_device(path: str, baud: int = 115200) -> int:
    """Open a serial device (or pty) read/write, non-blocking, raw 8N1, no modem control; return the fd."""
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if os.isatty(fd):
            make_raw(fd, baud)
    except BaseException:
        os.close(fd)
        raise
    return fd


def make_raw(fd: int, baud: int | None = None) -> list:
    """Raw mode (no kernel echo, no line editing, no CR/NL mapping, no signals); returns the old attributes."""
    old = termios.tcgetattr(fd)
    a = list(old)
    a[0] &= ~(termios.IGNBRK | termios.BRKINT | termios.PARMRK | termios.ISTRIP | termios.INLCR | termios.IGNCR
              | termios.ICRNL | termios.IXON | termios.IXOFF)
    a[1] &= ~termios.OPOST
    a[2] &= ~(termios.CSIZE | termios.PARENB | termios.CSTOPB | getattr(termios, "CRTSCTS", 0))
    a[2] |= termios.CS8 | termios.CREAD | termios.CLOCAL
    a[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    if baud is not None:
        a[4] = a[5] = baud_constant(baud)
    a[6] = list(a[6])
    a[6][termios.VMIN] = 1
    a[6][termios.VTIME] = 0
    termios.tcsetattr(fd, termios.TCSANOW, a)
    return old


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


class ConsoleHook(Hook):
    """Runner hook (edge_runtime.hooks.Hook): serves console requests and stream lines from the loop thread."""

    def __init__(self, console: Console):
        self.console = console
        self.max_requests_per_step = 0  # observed (for tests and the benchmark): never above 1
        self._next_stream = 0.0
        self._rate = None
        self._rate_t = None
        self._rate_n = 0
        self._last_save = -1e9
        self._t0 = time.monotonic()
        self.runner = None
        self.waiting_for: str | None = None  # set while the runtime waits for a dead body's revive

    @classmethod
    def from_config(cls, device: str, cfg) -> "ConsoleHook":
        """The hook for `run --console DEVICE`; opens the device now so a wrong path fails before the run."""
        c = Console(device, ConsoleConfig.from_config(cfg))
        c.open()
        return cls(c)

    # -- Hook
    def on_start(self, runner):
        self.runner = runner
        self._rate_t = time.monotonic()
        self.console.start()
        log.info("console on %s (%s)", self.console.device, "writable" if self.console.cfg.writable else "read-only")

    def on_step(self, runner, sense, metrics):
        self.waiting_for = None
        self._rate_n += 1  # (decisions per second: waits are not steps)
        self._serve(runner, sense, metrics)

    def on_wait(self, runner, waiting_for):
        """A dead body is waiting to be revived: no steps run, the console still answers."""
        self.waiting_for = waiting_for
        try:
            self._serve(runner, runner.sense, runner.last)
        finally:
            self.waiting_for = None

    def on_stop_requested(self, runner):
        pass

    def _serve(self, runner, sense, metrics):
        c = self.console
        now = time.monotonic()
        c.last_step_t, c.last_step = now, runner.rule.steps
        if now - self._rate_t >= 2.0:
            self._rate = self._rate_n / (now - self._rate_t)
            self._rate_t, self._rate_n = now, 0
        n = 0
        if c.requests:
            req = c.requests.popleft()
            with req.lock:
                go = not req.cancelled
                req.taken = go
            if go:
                n = 1
                try:
                    req.reply = self.run_command(runner, sense, metrics, req.cmd, req.args)
                except CommandError as e:
                    req.reply = f"error: {e}"
                except Exception as e:  # a console command must never take the loop down
                    log.exception("console: %s failed", req.cmd)
                    req.reply = f"error: {req.cmd}: {type(e).__name__}: {e}"
                req.done.set()
        self.max_requests_per_step = max(self.max_requests_per_step, n)
        every = c.stream_every
        if every is not None and now >= self._next_stream:
            self._next_stream = now + every
            c.post_line(self.stream_line(runner, sense, metrics))

    def on_death(self, runner, lifespan):
        pass

    def on_stop(self, runner, summary):
        c = self.console
        c.post_line(f"runtime stopped after {summary.get('steps')} steps")
        # answer whatever is still waiting so the console thread is not left hanging
        while c.requests:
            req = c.requests.popleft()
            req.reply = "error: the runtime stopped"
            req.done.set()
        c.stop()

    # -- the commands that need the runtime (loop thread)
    def stream_line(self, runner, sense, m) -> str:
        r = runner.rule
        if self.waiting_for is not None:
            return f"[stream] step {r.steps} | life {len(runner.lifespans) + 1} | dead: waiting for {self.waiting_for}"
        return (f"[stream] step {r.steps} | {_fmt(self._rate, '.1f')} st/s | life {len(runner.lifespans) + 1} | "
                f"hp {sense.hp:.2f} en {sense.energy:.2f} | loss {_fmt(m.get('self_loss'), '+.3f')} | "
                f"lr {_fmt(m.get('self_lr'))} | H {_fmt(m.get('entropy'), '.2f')} | rb {r.rollbacks} | faults {r.faults}")

    @staticmethod
    def _checkpoint_hook(runner):
        return next((h for h in runner.hooks if hasattr(h, "request_save") and hasattr(h, "status")), None)

    def run_command(self, runner, sense, m, cmd: str, args: list[str]) -> str:
        rule, body = runner.rule, runner.body
        if cmd == "status":
            lives = runner.lifespans
            med = sorted(lives)[len(lives) // 2] if lives else None
            up = time.monotonic() - self._t0
            lines = [
                f"body {body.spec.name} | rule {rule.name} | learning {'on' if rule.learning else 'off'} | up {up:.0f} s",
                f"step {rule.steps} | body step {runner.body_steps} | {_fmt(self._rate, '.1f')} st/s",
                f"life {len(lives) + 1} ({runner.life_steps} body steps) | lives ended {len(lives)} | "
                f"median life {med if med is not None else '-'}",
                f"hp {sense.hp:.2f} | energy {sense.energy:.2f} | rollbacks {rule.rollbacks} | faults {rule.faults}",
                f"overrides {runner.overrides.describe()}",
            ]
            if self.waiting_for is not None:
                lines.insert(1, f"dead: waiting for {self.waiting_for}")
            ck = self._checkpoint_hook(runner)
            if ck is not None:
                st = ck.status()
                last = st.get("last") or {}
                lines.append(f"checkpoints {st.get('dir')} | saves {st.get('saves')} | last step {last.get('step', '-')}"
                             f"{' | save pending' if st.get('save_pending') else ''}")
            return "\n".join(lines)
        if cmd == "senses":
            touch = " ".join(f"{float(t):.2f}" for t in sense.touch) or "-"
            eyes = []
            for name in ("left", "right"):
                img = getattr(sense, name)
                eyes.append(f"{name} {img.shape[1]}x{img.shape[0]} mean {float(img.mean()):.0f}" if img is not None else f"{name} -")
            return (f"hp {sense.hp:.3f} | energy {sense.energy:.3f} | dead {'yes' if sense.dead else 'no'} | "
                    f"frame {sense.frame_id} | t {sense.t:.3f}\ntouch [{touch}]\neyes {' | '.join(eyes)}")
        if cmd == "counters":
            return dumps(runner.body_counters(), sort_keys=True)
        ov = runner.overrides
        if cmd == "learn":
            if args:
                ov.learning = None if args[0] == "on" else False  # on is the default: no override left
                ov.apply(runner)
                log.warning("console: learning %s (an override, kept across restarts until `overrides clear`)", args[0])
            return f"learning {'on' if rule.learning else 'off'}"
        if cmd == "lr":
            c = rule.cfg
            if args:
                lo, hi = float(args[0]), float(args[1])
                old = (ov.lr_min, ov.lr_max)
                ov.lr_min, ov.lr_max = lo, hi
                try:
                    ov.apply(runner)
                except ConfigError as e:
                    ov.lr_min, ov.lr_max = old
                    raise CommandError(f"lr: {e}") from None
                log.warning("console: lr range set to [%g, %g] (an override, kept across restarts)", lo, hi)
            return (f"self_lr {_fmt(m.get('self_lr'))} | lr_eff {_fmt(m.get('lr_eff'), '.2e')} | "
                    f"range [{c.lr_min:g}, {c.lr_max:g}]")
        if cmd == "overrides":
            if args:
                was = ov.describe()
                runner.overrides = type(ov)()
                runner.overrides.apply(runner)
                log.warning("console: overrides cleared (were: %s)", was)
                return f"overrides cleared (were: {was})"
            return f"overrides {ov.describe()}"
        if cmd == "save":
            ck = self._checkpoint_hook(runner)
            if ck is not None:
                ck.request_save()
                gap = getattr(getattr(ck, "cfg", None), "min_interval_s", 0)
                return (f"checkpoint requested: written at the next living step at least {gap:g} s after the last one "
                        "(wear guard; see status)")
            now = time.monotonic()
            if now - self._last_save < SAVE_MIN_INTERVAL_S:
                raise CommandError(f"save: the last save was {now - self._last_save:.1f} s ago (at most one per {SAVE_MIN_INTERVAL_S:g} s)")
            path = runner.save_weights()
            self._last_save = now
            if path is None:
                raise CommandError("save: this run has no run directory to save into")
            log.info("console: saved %s", path)
            return f"saved {path} at step {rule.steps}"
        if cmd == "rollback":
            if not rule.rollback("console"):
                raise CommandError("rollback: no snapshot to roll back to")
            return f"rolled back to the latest snapshot (rollbacks {rule.rollbacks})"
        if cmd == "motors":
            if not isinstance(body, MotorControl):
                raise CommandError(f"motors: body {body.spec.name!r} has no motor control")
            ov.motors_held = True if args[0] == "stop" else None
            ov.apply(runner)
            log.warning("console: motors %s", args[0])
            return "motors stopped (held until: motors go)" if args[0] == "stop" else "motors released"
        if cmd == "revive":
            if isinstance(body, Revivable):
                new = body.revive()
                if new is None:
                    raise CommandError(f"revive: the body cannot come back yet: waiting for {body.waiting_for}")
            elif sense.dead:
                raise CommandError("revive: the body died this step; the loop is bringing it back")
            else:
                new = body.respawn()
            runner.begin_life(new)
            log.warning("console: revived (life %d ends without a death)", len(runner.lifespans) + 1)
            return f"revived: hp {new.hp:.2f} energy {new.energy:.2f}"
        raise CommandError(f"unknown command {cmd!r} (try help)")


# ---------------------------------------------------------------- the laptop side
class ConsoleClient:
    """The laptop end of the console on an open fd (a serial port, a pty master): one command, one reply."""

    def __init__(self, fd: int, prompt: str = "edge> ", timeout: float = 10.0):
        self.fd, self.prompt, self.timeout = fd, prompt.encode(), timeout

    def sync(self, timeout: float | None = None):
        """Wake the console up and let whatever was pending (greeting, old prompts, stream lines) pass."""
        os.write(self.fd, b"\r")
        _read(self.fd, timeout or self.timeout, lambda buf: buf.endswith(self.prompt))
        while _read(self.fd, 0.3, lambda buf: False, quiet_ok=True):
            pass

    def command(self, line: str) -> str:
        """The reply: the text between the echoed line and the next prompt."""
        p, echo = self.prompt, line.encode() + b"\r\n"
        os.write(self.fd, line.encode() + b"\r")
        buf = _read(self.fd, self.timeout,
                    lambda b: echo in b and b.endswith(p) and b.rindex(echo) + len(echo) <= len(b) - len(p))
        body = buf[buf.rindex(echo) + len(echo):-len(p)]
        return body.decode("ascii", "replace").replace("\r\n", "\n").rstrip("\n")


def client_commands(device: str, commands: list[str], prompt: str = "edge> ", timeout: float = 10.0,
                    baud: int = 115200) -> list[str]:
    """Send commands one by one; return each reply (the text between the echoed line and the next prompt)."""
    fd = open_device(device, baud)
    try:
        c = ConsoleClient(fd, prompt, timeout)
        c.sync()
        return [c.command(line) for line in commands]
    finally:
        os.close(fd)


def _read(fd: int, timeout: float, done, quiet_ok: bool = False) -> bytes:
    """Read until done(buffer); on timeout raise, or (quiet_ok) return what came."""
    buf = b""
    end = time.monotonic() + timeout
    while not done(buf):
        left = end - time.monotonic()
        if left <= 0:
            if quiet_ok:
                return buf
            raise TimeoutError(f"no reply from the console within {timeout:g} s (got {buf[-200:]!r})")
        r, _, _ = select.select([fd], [], [], left)
        if r:
            try:
                chunk = os.read(fd, 4096)
            except BlockingIOError:
                continue
            if not chunk:
                raise EOFError("the console closed the line")
            buf += chunk
    return buf


def terminal(device: str, baud: int = 115200, escape: int = 0x1D) -> int:
    """A minimal picocom: this terminal <-> device, raw, until Ctrl-] . Returns an exit code."""
    fd = open_device(device, baud)
    tty_in = sys.stdin.fileno()
    old = make_raw(tty_in) if os.isatty(tty_in) else None
    try:
        os.write(sys.stdout.fileno(), f"connected to {device} (Ctrl-] quits)\r\n".encode())
        os.write(fd, b"\r")
        while True:
            r, _, _ = select.select([tty_in, fd], [], [])
            if tty_in in r:
                data = os.read(tty_in, 1024)
                if not data or bytes([escape]) in data:
                    data = data.split(bytes([escape]))[0]
                    if data:
                        os.write(fd, data)
                    return 0
                os.write(fd, data)
            if fd in r:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    data = b""
                if not data:
                    os.write(sys.stdout.fileno(), b"\r\n[the device went away]\r\n")
                    return 1
                os.write(sys.stdout.fileno(), data)
    finally:
        if old is not None:
            termios.tcsetattr(tty_in, termios.TCSADRAIN, old)
        os.close(fd)


# ---------------------------------------------------------------- benchmark: the loop's rate with a busy console
FLOOD_CLIENT = r"""
import os, select, sys
fd = int(sys.argv[1])
os.set_blocking(fd, False)
cmds = b"status\rsenses\rlr\rhelp\rlearn\rbogus\rlr x\rstream on 0.1\r"
while True:
    r, w, _ = select.select([fd], [fd], [], 1.0)
    try:
        if r and not os.read(fd, 65536):
            break
        if w:
            os.write(fd, cmds)
    except BlockingIOError:
        pass
    except OSError:
        break
"""


def bench_console(cfg, steps: int = 400, repeats: int = 3, seed: int = 0) -> dict:
    """Decisions/s over `steps` decisions in pairs of runs: no console, then a console on a pty flooded by another
    process (read-only commands as fast as it answers, plus `stream on 0.1`). Same seed: both do identical work.
    Also the loop thread's own CPU time per decision (time.thread_time), which other processes on a shared
    machine disturb less than the wall-clock rate."""
    import subprocess

    from sim_bridge.arena import Arena

    from .runtime import Runner

    rates: dict[str, list[float]] = {"off": [], "busy": []}
    cpu_ms: dict[str, list[float]] = {"off": [], "busy": []}
    answered, per_step = [], 0
    for _ in range(repeats):
        for mode in ("off", "busy"):
            hooks, proc, fds, hook = [], None, (), None
            if mode == "busy":
                master, slave = os.openpty()
                fds = (master, slave)
                hook = ConsoleHook(Console(os.ttyname(slave), ConsoleConfig()))
                hook.console.open()
                hooks.append(hook)
                proc = subprocess.Popen([sys.executable, "-c", FLOOD_CLIENT, str(master)], pass_fds=(master,))
            try:
                with Arena(cfg.arena) as body:
                    runner = Runner(cfg, body, seed=seed, progress=False, hooks=hooks)
                    c0 = time.thread_time()
                    s = runner.run(steps)
                    cpu_ms[mode].append(round((time.thread_time() - c0) / steps * 1e3, 3))
                rates[mode].append(s["steps_per_s"])
                if hook is not None:
                    answered.append(hook.console.commands / s["wall_s"])
                    per_step = max(per_step, hook.max_requests_per_step)
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
                for fd in fds:
                    os.close(fd)

    def med(xs):
        return sorted(xs)[len(xs) // 2]

    ratios = [b / a for a, b in zip(rates["off"], rates["busy"])]
    return {
        "steps": steps, "repeats": repeats,
        "rate_off": rates["off"], "rate_busy": rates["busy"],
        "median_rate_off": med(rates["off"]), "median_rate_busy": med(rates["busy"]),
        "median_pair_ratio_busy_vs_off": round(med(ratios), 3),
        "loop_cpu_ms_per_step_off": med(cpu_ms["off"]), "loop_cpu_ms_per_step_busy": med(cpu_ms["busy"]),
        "console_commands_per_s": round(med(answered), 1),
        "max_console_requests_per_step": per_step,
    }
