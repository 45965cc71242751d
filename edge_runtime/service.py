"""Running as a systemd service: the notify protocol, the watchdog, journal log levels, the unit file.

The notify protocol is small enough to speak by hand: one datagram to the
AF_UNIX socket named in $NOTIFY_SOCKET (a leading '@' names a socket in the
abstract namespace), holding newline-separated VAR=VALUE assignments.

    READY=1       once the body is up and the loop is about to run
    WATCHDOG=1    from the control loop itself, every WATCHDOG_USEC/2
    STATUS=...    one line for `systemctl status`: step, life, HP, rate; or
                  "dead: waiting for ..." while a robot waits for its revive
    STOPPING=1    the moment a stop is requested (SIGTERM), with
                  STATUS=stopping: final save; then STATUS=stopped ... at the end

The watchdog pings are sent from `ServiceHook.on_step` and `on_wait`, i.e.
from the control loop's own thread and nowhere else: a loop that hangs stops
pinging and systemd restarts the service (Restart=on-failure). A dead robot
waiting for its button is not hung: the runtime polls it and calls `on_wait`
between polls, which pings.

Sending never blocks the loop: the socket is non-blocking and a datagram that
cannot be sent right now is dropped (and counted).

This module imports no torch so that `install-service` and logging set-up stay
fast; the Hook base class lives in the torch-free edge_runtime.hooks for the
same reason.
"""
from __future__ import annotations

import logging
import os
import shutil
import socket
import sys
import time
from pathlib import Path

from .hooks import Hook

log = logging.getLogger("edge_runtime.service")

UNIT_NAME = "edge-runtime.service"
DEFAULT_CONFIG = "/etc/edge-runtime/robot.toml"
DEFAULT_UNIT_DIR = "/etc/systemd/system"


# ---------------------------------------------------------------- notify protocol
def notify_address(value: str | None) -> str | bytes | None:
    """The address to send to for a $NOTIFY_SOCKET value ('@name' is abstract), or None."""
    if not value:
        return None
    if value.startswith("@"):
        return b"\0" + value[1:].encode()
    if value.startswith("/"):
        return value
    return None  # e.g. vsock:... (VMs) is not spoken here


class Notifier:
    """Sends notify datagrams to systemd (or to whatever listens on $NOTIFY_SOCKET).

    Without $NOTIFY_SOCKET every send is a no-op returning False.
    """

    def __init__(self, address: str | bytes | None = None, env: dict | None = None):
        env = os.environ if env is None else env
        if address is None:
            address = notify_address(env.get("NOTIFY_SOCKET"))
        self.address = address
        self.sent = 0
        self.dropped = 0
        self._sock = None
        if address is not None:
            self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.setblocking(False)

    @property
    def enabled(self) -> bool:
        return self._sock is not None

    def send(self, *assignments: str) -> bool:
        """Send 'VAR=VALUE' assignments in one datagram; never blocks, never raises."""
        if self._sock is None:
            return False
        msg = "\n".join(a.replace("\n", " ") for a in assignments).encode()
        try:
            self._sock.sendto(msg, self.address)
        except OSError as e:  # full queue (EAGAIN), manager gone (ECONNREFUSED/ENOENT): drop, keep running
            self.dropped += 1
            if self.dropped == 1:
                log.warning("notify socket: %s (dropping this and later failures quietly)", e)
            return False
        self.sent += 1
        return True

    def close(self):
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def watchdog_interval(env: dict | None = None) -> float | None:
    """The watchdog timeout in seconds from WATCHDOG_USEC (None: no watchdog for this process)."""
    env = os.environ if env is None else env
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid.strip() != str(os.getpid()):
        return None  # meant for another process (e.g. a parent wrapper)
    try:
        v = int(usec)
    except ValueError:
        return None
    return v / 1e6 if v > 0 else None


def status_line(runner) -> str:
    s = runner.sense
    lives = len(runner.lifespans)
    hp = f"hp {s.hp:.2f} en {s.energy:.2f}" if s is not None else "no senses yet"
    learn = "learning" if runner.rule.learning else "frozen"
    return f"step {runner.rule.steps} | life {lives + 1} ({lives} ended) | {hp} | {learn}"


class ServiceHook(Hook):
    """Runner hook (edge_runtime.hooks.Hook) that speaks the notify protocol from the control loop."""

    def __init__(self, notifier: Notifier | None = None, watchdog_s: float | None = None, status_every_s: float = 5.0,
                 env: dict | None = None, clock=time.monotonic):
        self.notifier = notifier or Notifier(env=env)
        self.watchdog_s = watchdog_s if watchdog_s is not None else watchdog_interval(env)
        self.ping_every = self.watchdog_s / 2 if self.watchdog_s else None
        self.status_every = status_every_s
        self.clock = clock
        self.pings = 0
        self._next_ping = 0.0
        self._next_status = 0.0
        self._stopping = False
        self._waiting: str | None = None

    @classmethod
    def from_env(cls, cfg=None, env: dict | None = None) -> "ServiceHook | None":
        """A hook when this process runs under a service manager ($NOTIFY_SOCKET set), else None."""
        env = os.environ if env is None else env
        if notify_address(env.get("NOTIFY_SOCKET")) is None:
            return None
        every = 5.0
        if cfg is not None:
            every = cfg.section("service").status_every_s
        return cls(env=env, status_every_s=every)

    # -- Hook
    def on_start(self, runner) -> None:
        now = self.clock()
        self.notifier.send("READY=1", f"STATUS={status_line(runner)}")
        if self.ping_every:
            self.notifier.send("WATCHDOG=1")
            self.pings += 1
            self._next_ping = now + self.ping_every
        self._next_status = now + self.status_every
        if self.watchdog_s:
            log.info("service: ready, watchdog %.1f s (pinging every %.1f s from the control loop)", self.watchdog_s, self.ping_every)
        else:
            log.info("service: ready (no watchdog)")

    def on_step(self, runner, sense, metrics) -> None:
        self._tick(runner, None)

    def on_wait(self, runner, waiting_for: str) -> None:
        self._tick(runner, waiting_for)

    def _tick(self, runner, waiting_for: str | None) -> None:
        now = self.clock()
        msg = []
        if self.ping_every and now >= self._next_ping:
            msg.append("WATCHDOG=1")
            self.pings += 1
            self._next_ping = now + self.ping_every
        if waiting_for is not None and self._waiting is None:  # a wait begins: say it at once, then with the others
            self._next_status = now
        self._waiting = waiting_for
        if now >= self._next_status and not self._stopping:
            line = status_line(runner) if waiting_for is None else f"dead: waiting for {waiting_for} | {status_line(runner)}"
            msg.append(f"STATUS={line}")
            self._next_status = now + self.status_every
        if msg:
            self.notifier.send(*msg)

    def on_stop_requested(self, runner) -> None:
        # may run inside the SIGTERM handler: one non-blocking datagram
        if not self._stopping:
            self._stopping = True
            self.notifier.send("STOPPING=1", "STATUS=stopping: final save")

    def on_death(self, runner, lifespan: int) -> None:
        pass

    def on_stop(self, runner, summary: dict) -> None:
        self.on_stop_requested(runner)  # (the runner has announced it already; this is for direct callers)
        self.notifier.send(f"STATUS=stopped after {summary.get('steps')} steps, {summary.get('lives_completed')} lives ended; saved")


# ---------------------------------------------------------------- logging the journal understands
SYSLOG_PRIORITY = {logging.CRITICAL: 2, logging.ERROR: 3, logging.WARNING: 4, logging.INFO: 6, logging.DEBUG: 7}


def syslog_priority(levelno: int) -> int:
    """Python level -> syslog priority (crit 2, err 3, warning 4, info 6, debug 7)."""
    for lv in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= lv:
            return SYSLOG_PRIORITY[lv]
    return 7


class JournalFormatter(logging.Formatter):
    """Prefix each line with <N>, the syslog priority journald reads from a stream (sd-daemon.h style)."""

    def format(self, record):
        text = super().format(record)
        p = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(p + line for line in text.split("\n"))


def stderr_is_journal(env: dict | None = None, stream=None) -> bool:
    """True when stderr is the journal stream systemd set up ($JOURNAL_STREAM = device:inode of our stderr)."""
    env = os.environ if env is None else env
    js = env.get("JOURNAL_STREAM")
    if not js or ":" not in js:
        return False
    try:
        dev, ino = (int(x) for x in js.split(":", 1))
        st = os.fstat((stream or sys.stderr).fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return st.st_dev == dev and st.st_ino == ino


def setup_logging(level: str = "INFO", stream=None, env: dict | None = None) -> None:
    stream = stream or sys.stderr
    h = logging.StreamHandler(stream)
    if stderr_is_journal(env, stream):
        h.setFormatter(JournalFormatter("%(name)s: %(message)s"))  # the journal adds time and unit
    else:
        h.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    logging.basicConfig(level=getattr(logging, level), handlers=[h])


# ---------------------------------------------------------------- the unit file
def render_unit(exec_path: str = "/usr/local/bin/edge-runtime", config: str = DEFAULT_CONFIG, watchdog_s: int = 30,
                stop_timeout_s: int = 30, start_timeout_s: int = 180) -> str:
    """The systemd unit for the runtime on the robot (the file shipped in packaging/ is this, with defaults)."""
    return f"""\
# edge-runtime as a systemd service (generated by `edge-runtime install-service`).
# Install: edge-runtime install-service --config {config}
#          systemctl daemon-reload && systemctl enable --now edge-runtime
# Inspect: systemctl status edge-runtime; journalctl -u edge-runtime -f

[Unit]
Description=edge-runtime: on-device learning agent
After=local-fs.target
StartLimitIntervalSec=600
StartLimitBurst=5

[Service]
Type=notify
NotifyAccess=main
ExecStart={exec_path} run --config {config} --run-dir run --continue --no-progress
# the run (config snapshot, metrics, weights, checkpoints) lives in the state directory's run/;
# --continue picks it up from its newest valid checkpoint after a restart or a reboot
WorkingDirectory=%S/edge-runtime
StateDirectory=edge-runtime
StateDirectoryMode=0750
Environment=PYTHONUNBUFFERED=1
# READY=1 once the body is up; WATCHDOG=1 every WatchdogSec/2 from the control loop
WatchdogSec={watchdog_s}s
TimeoutStartSec={start_timeout_s}s
# SIGTERM: the loop finishes its step, saves, exits 0
TimeoutStopSec={stop_timeout_s}s
KillMode=mixed
Restart=on-failure
RestartSec=5s

DynamicUser=yes
SupplementaryGroups=dialout video
# Devices: no PrivateDevices= (it would hide the serial ports and cameras);
# a closed device policy that lets exactly these through instead.
DevicePolicy=closed
DeviceAllow=char-ttyUSB rw
DeviceAllow=char-ttyACM rw
DeviceAllow=char-ttyAMA rw
DeviceAllow=char-ttyS rw
DeviceAllow=char-ttyGS rw
DeviceAllow=char-video4linux rw

NoNewPrivileges=yes
CapabilityBoundingSet=
ProtectSystem=strict
ProtectHome=read-only
PrivateTmp=yes
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
ProtectProc=invisible
RestrictNamespaces=yes
RestrictRealtime=yes
RestrictSUIDSGID=yes
LockPersonality=yes
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6
SystemCallArchitectures=native
SystemCallFilter=@system-service
UMask=0027
# not set on purpose: MemoryDenyWriteExecute= (torch's oneDNN generates code at run time)

[Install]
WantedBy=multi-user.target
"""


def find_executable() -> str:
    """Absolute path of the `edge-runtime` script of this installation.

    The script beside this interpreter first (a venv's bin/; not resolved, so a
    venv stays a venv), else the one on PATH (which may be a shim of a version
    manager, unusable by a service user).
    """
    here = Path(sys.executable).parent / "edge-runtime"
    if here.is_file() and os.access(here, os.X_OK):
        return str(here.absolute())
    p = shutil.which("edge-runtime")
    return str(Path(p).absolute()) if p else str(here.absolute())
