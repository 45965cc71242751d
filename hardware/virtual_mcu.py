"""A virtual microcontroller behind a real pty: the firmware's behaviour, with a simulated robot around it.

    edge-runtime virtual-mcu [--link PATH] [--touch N] [--battery-s S] ...

prints the serial device path (a stable symlink to the current /dev/pts/N, the
way /dev/serial/by-id/... points at /dev/ttyACM0) and then takes commands on
stdin, one a line: every fault of a bad day, by hand (the table is COMMANDS in
hardware/virtual_mcu_cli.py, listed in docs/hardware.md).

With --events FILE it writes one JSON line per event with the machine's
monotonic clock (`t`, the same clock as the host's), so a test can check the
host against what the board really did (bumps, boots, deaths it was told of).

It speaks protocol v1 exactly like hardware/firmware (hello and reset fault on
boot, sensor reports at 50 Hz, heartbeat echo, failsafe motor stop, dead
state). What the board is wired to (battery, bump switches, button) is
hardware/virtual_wiring.py; what the line does to its frames on request
(drops, duplicates, reordering, noise) is hardware/virtual_line.py. Here: the
firmware, and the faults of the board itself: it stalls (no bytes either way
until its watchdog resets it), reboots, browns out, or is unplugged (the pty
disappears and comes back as a new one behind the same symlink).
"""
from __future__ import annotations

import json
import logging
import os
import random
import select
import threading
import time
from dataclasses import dataclass, field

from edge_runtime.config import ConfigError

from . import protocol as P
from .protocol_stream import StreamDecoder
from .pty_port import PtyPort
from .virtual_line import FaultyLine
from .virtual_wiring import VirtualWiring

log = logging.getLogger("hardware.virtual_mcu")


@dataclass
class VirtualMcuConfig:
    n_touch: int = 8
    failsafe_ms: int = 300
    report_hz: float = 50.0
    full_mv: int = 8400  # 2S Li-ion
    empty_mv: int = 6400
    low_battery_mv: int = 6000  # the board's own cut-off (it refuses to drive below)
    battery_s: float = 600.0  # seconds of life at idle current from full
    idle_ma: float = 150.0
    motor_ma: float = 900.0  # per motor at full command
    stall_ma: float = 2200.0  # per motor while pushing against something
    internal_mohm: float = 150.0  # sag: mV per A
    bump_rate_hz: float = 0.5  # bump events per second while driving at full speed
    bump_ms: float = 300.0
    noise_mv: float = 15.0
    noise_ma: float = 20.0
    noise_touch: float = 3.0
    watchdog_ms: int = 500  # a stalled board resets itself after this
    revive_after_s: float = 0.0  # > 0: a simulated human presses the button this long after the host says dead
    recharge_on_revive: bool = True  # ...and swaps the battery if it is low
    line_noise: float = 0.0  # probability per outgoing frame of a corrupted frame
    raw: bool = False  # uncalibrated readings: a Li-ion discharge curve through an ADC with gain and offset
    # error, touch channels idling at their own baseline and noise (hardware/virtual_wiring.py)
    seed: int | None = None

    def __post_init__(self):
        for name in ("report_hz", "battery_s", "failsafe_ms", "watchdog_ms"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"mcu.virtual.{name}: must be > 0")
        if not 0 <= self.n_touch <= P.MAX_TOUCH:
            raise ConfigError(f"mcu.virtual.n_touch: must be in 0..{P.MAX_TOUCH}")
        if not 0 <= self.line_noise <= 1:
            raise ConfigError("mcu.virtual.line_noise: must be in [0, 1]")
        if not self.low_battery_mv < self.empty_mv < self.full_mv:
            raise ConfigError("mcu.virtual.empty_mv: need low_battery_mv < empty_mv < full_mv")


@dataclass
class VirtualMcuStats:
    motor_commands: int = 0
    stops: int = 0  # STOP messages received
    heartbeats: int = 0
    hellos: int = 0
    failsafe_stops: int = 0
    resets: int = 0
    bumps: int = 0
    frames_sent: int = 0
    frames_corrupted: int = 0
    bad_frames_in: int = 0
    dead_states: int = 0
    board_bumps: int = 0  # bump events the board's counter registered, over every boot (the ground truth)
    boots: int = 1
    reports_dropped: int = 0
    reports_duplicated: int = 0
    reports_reordered: int = 0
    garbage_bytes: int = 0
    brownouts: int = 0
    last_motor: tuple[int, int] = (0, 0)
    motor_log: list = field(default_factory=list)  # (t, left, right) of every applied command, newest last


class VirtualMCU:
    """Start with start(); the device path is .path. Thread-safe controls: unplug(), stall(), set_line_noise()..."""

    def __init__(self, cfg: VirtualMcuConfig | None = None, link: str | None = None, events: str | None = None):
        self.cfg = cfg or VirtualMcuConfig()
        self.version = P.PROTOCOL_VERSION  # the protocol this board's firmware speaks (`version V` changes it)
        self._events = open(events, "a", buffering=1) if events else None
        self.port = PtyPort(link)
        self.path = self.port.path
        self.rng = random.Random(self.cfg.seed)
        self.stats = VirtualMcuStats()
        self._lock = threading.RLock()
        self._thread = None
        self._stop = threading.Event()
        self._stall_until = 0.0
        self._unplug_until = 0.0
        self.wiring = VirtualWiring(self.cfg, self.rng, self.stats)  # battery, bump switches, button
        self.line = FaultyLine(self.cfg, self.rng, self.stats, self._write_raw)  # drops, dups, noise on request
        self.left = self.right = 0
        self.dead = False
        self._dead_since = 0.0
        self._boot()

    # -------------------------------------------------------------- controls
    def start(self) -> str:
        self.port.plug()
        self._thread = threading.Thread(target=self._run, name="virtual-mcu", daemon=True)
        self._thread.start()
        return self.path

    def close(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=2)
        self.port.remove()
        if self._events is not None:
            self._events.close()
            self._events = None

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def unplug(self, seconds: float):
        """The cable comes out: the pty vanishes (the host's reads fail) and returns after `seconds` as a new pty."""
        with self._lock:
            self._event("unplug", s=float(seconds))
            self._unplug_until = time.monotonic() + seconds
            self.port.unplug()
            self.left = self.right = 0  # USB power gone: the board is off
        log.info("unplugged for %.1f s", seconds)

    def stall(self, seconds: float):
        """The firmware hangs: nothing is read or sent; the watchdog resets the board after watchdog_ms."""
        with self._lock:
            self._stall_until = time.monotonic() + seconds
            self._event("stall", s=float(seconds))

    def set_line_noise(self, p: float):
        with self._lock:
            self.cfg.line_noise = float(p)
            self._event("noise", p=float(p))

    def reboot(self, cause: int = 1):
        """The board resets now: seq, clock, bump counter and the dead state start over; HELLO + FAULT reset follow."""
        with self._lock:
            self._boot(cause)

    def brownout(self):
        """The battery sags below the board's reset threshold (a motor stall on a tired pack): motors off, reset."""
        with self._lock:
            self.stats.brownouts += 1
            self._event("brownout")
            self.left = self.right = 0
            self._boot(3)

    def garbage(self, n: int):
        """n random bytes on the line (zeros included): a noisy cable, a bootloader's chatter."""
        with self._lock:
            self.line.garbage(n)
            self._event("garbage", n=int(n))

    def duplicate_reports(self, n: int = 1):
        with self._lock:
            self.line.dup_n += int(n)
            self._event("dup", n=int(n))

    def reorder_reports(self, n: int = 1):
        """The next n pairs of sensor reports go out swapped (each keeps its own seq and clock)."""
        with self._lock:
            self.line.reorder_n += int(n)
            self._event("reorder", n=int(n))

    def drop_reports(self, n: int = 1):
        """The next n sensor reports are lost on the line (their seq numbers are used up)."""
        with self._lock:
            self.line.drop_n += int(n)
            self._event("drop", n=int(n))

    def set_version(self, v: int):
        with self._lock:
            self.version = int(v) & 0xFF
            self._event("version", v=self.version)

    def press_button(self, seconds: float = 0.3):
        with self._lock:
            self.wiring.press_button(time.monotonic(), seconds)
            self._event("button")

    def bump(self, channel: int | None = None):
        with self._lock:
            self._event("bump_cmd")
            self.wiring.start_bump(time.monotonic(), channel)

    def recharge(self):
        with self._lock:
            self.wiring.soc = 1.0
            self._event("recharge")

    @property
    def soc(self) -> float:
        """The battery's state of charge (0..1); set it to simulate a swap or a flat pack."""
        return self.wiring.soc

    @soc.setter
    def soc(self, value: float):
        with self._lock:
            self.wiring.soc = float(value)

    def inject(self, data: bytes):
        """Write raw bytes to the host as they are (for tests of the host's decoder)."""
        with self._lock:
            self._write_raw(data)

    @property
    def plugged(self) -> bool:
        return self.port.plugged

    @property
    def _pty_name(self) -> str | None:
        return self.port.pty_name

    def _write_raw(self, data: bytes):
        self.port.write(data)

    def status(self) -> dict:
        with self._lock:
            return {"path": self.path, "pty": self._pty_name, "plugged": self.plugged, "soc": round(self.soc, 4),
                    "battery_mv": self.wiring.battery_mv(0.0), "motors": (self.left, self.right), "dead": self.dead,
                    "failsafe": self.failsafe, "line_noise": self.cfg.line_noise, "version": self.version,
                    **{k: v for k, v in vars(self.stats).items() if k != "motor_log"}}

    def _event(self, kind: str, **kw):
        if self._events is not None:
            self._events.write(json.dumps({"t": round(time.monotonic(), 4), "event": kind, **kw}) + "\n")

    # -------------------------------------------------------------- firmware
    def _boot(self, cause: int = 0):
        """Power-on or reset: RAM is gone (seq, clock, bump counter, dead state, version lock)."""
        if hasattr(self, "enc"):  # not the first boot
            self.stats.boots += 1
            self.stats.resets += 1
        self._event("boot", cause=cause)
        self.dead = False
        self.line.reboot()
        self.enc = P.Encoder()
        self.dec = StreamDecoder()
        self.left = self.right = 0
        self.failsafe = False
        self.version_ok = True
        self.ack_seq = 0
        self.bump_count = 0
        now = time.monotonic()
        self._boot_t = now
        self._last_cmd = now
        self._last_report = now
        self._bad_reported = 0
        self._pending_hello = True
        self._bump_prev = self.wiring.bumping(now)  # a bump under way at boot is not a new edge for this boot
        self._boot_cause = cause

    def _send(self, msg):
        frame = self.enc.frame(msg)  # a seq number is used up whatever happens on the line
        self.stats.frames_sent += 1
        self.line.send(frame, isinstance(msg, P.SensorReport))

    def _handle(self, msg, seq: int, now: float):
        if isinstance(msg, P.Hello):
            self.stats.hellos += 1
            self.version_ok = msg.version == self.version
            self._send_hello()
            if not self.version_ok:
                self.left = self.right = 0
                self._send(P.Fault(P.FAULT_VERSION, self.version))
        elif isinstance(msg, P.MotorCommand):
            self.stats.motor_commands += 1
            self.ack_seq = seq
            self._last_cmd = now
            self.failsafe = False
            if self.dead or not self.version_ok or self.wiring.battery_mv(0) < self.cfg.low_battery_mv:
                self.left = self.right = 0
            else:
                self.left, self.right = msg.left, msg.right
            self.stats.last_motor = (self.left, self.right)
            self.stats.motor_log.append((now, self.left, self.right))
            del self.stats.motor_log[:-200]
        elif isinstance(msg, P.Heartbeat):
            self.stats.heartbeats += 1
            self._send(msg)
        elif isinstance(msg, P.Stop):
            self.stats.stops += 1
            self.left = self.right = 0
            self.stats.last_motor = (0, 0)
            self.stats.motor_log.append((now, 0, 0))
        elif isinstance(msg, P.State):
            was = self.dead
            self.dead = msg.state != P.STATE_ALIVE
            if self.dead != was:
                self._event("state", dead=self.dead)
            if self.dead:
                self.left = self.right = 0
                if not was:
                    self.stats.dead_states += 1
                    self._dead_since = now
        else:
            self._send(P.Fault(P.FAULT_UNKNOWN_TYPE, P.TYPES.get(type(msg), 0)))

    def _send_hello(self):
        self._send(P.Hello(self.version, self.cfg.n_touch, self.cfg.failsafe_ms, 0x0100, "virtual-mcu"))

    # -------------------------------------------------------------- the robot around the board
    def _physics(self, now: float, dt: float):
        c = self.cfg
        w = self.wiring
        w.step(now, dt, self.left, self.right)
        # a simulated human presses the revive button a while after the host said dead (and swaps a low pack)
        if self.dead and c.revive_after_s > 0 and now - self._dead_since >= c.revive_after_s and not w.button(now):
            if c.recharge_on_revive and w.battery_mv(0) < c.empty_mv + 0.3 * (c.full_mv - c.empty_mv):
                w.soc = 1.0
            w.press_button(now, 0.3)
            self._dead_since = now + 1.0  # press again in a while if the host did not notice

    def _report(self, now: float):
        c = self.cfg
        w = self.wiring
        mv, il, ir, touch = w.readings(now, self.left, self.right)
        flags = 0
        if w.bumping(now):
            flags |= P.FLAG_BUMP
        if max(abs(il), abs(ir)) > 1800:
            flags |= P.FLAG_STALL
        if w.button(now):
            flags |= P.FLAG_BUTTON
        if self.failsafe:
            flags |= P.FLAG_FAILSAFE
        if mv < c.low_battery_mv:
            flags |= P.FLAG_LOW_BATTERY
        if self.dead:
            flags |= P.FLAG_DEAD
        self._send(P.SensorReport(int((now - self._boot_t) * 1000), mv, il, ir, flags, self.bump_count, self.ack_seq,
                                  touch))

    def _tick(self, now: float, dt: float):
        c = self.cfg
        if self._pending_hello:
            self._pending_hello = False
            self._send_hello()
            self._send(P.Fault(P.FAULT_RESET, self._boot_cause))
        self._physics(now, dt)
        if (self.left or self.right) and (now - self._last_cmd) * 1000 > c.failsafe_ms:
            self.left = self.right = 0
            self.failsafe = True
            self.stats.failsafe_stops += 1
            self.stats.motor_log.append((now, 0, 0))
            self._send(P.Fault(P.FAULT_FAILSAFE, c.failsafe_ms))
        if (self.left or self.right) and self.wiring.battery_mv(0) < c.low_battery_mv:
            self.left = self.right = 0
            self._send(P.Fault(P.FAULT_BATTERY, self.wiring.battery_mv(0)))
        if self.wiring.bumping(now) and not self._bump_prev:
            self.bump_count = (self.bump_count + 1) & 0xFF
            self.stats.board_bumps += 1
            self._event("bump", count=self.bump_count, total=self.stats.board_bumps)
        self._bump_prev = self.wiring.bumping(now)
        if self.dec.stats.bad_frames != self._bad_reported:
            self._bad_reported = self.dec.stats.bad_frames
            self.stats.bad_frames_in = self._bad_reported
            self._send(P.Fault(P.FAULT_BAD_FRAME, min(0xFFFF, self._bad_reported)))
        if now - self._last_report >= 1.0 / c.report_hz:
            self._last_report = now
            self._report(now)

    def _run(self):
        last = time.monotonic()
        stalled = False
        while not self._stop.is_set():
            now = time.monotonic()
            with self._lock:
                dt, last = now - last, now
                if not self.port.plugged:  # unplugged
                    self._physics(now, dt)
                    if now >= self._unplug_until:
                        self.port.plug()
                        self._boot(0)  # power-on
                        log.info("plugged in again at %s", self._pty_name)
                    master = None
                elif now < self._stall_until:
                    # a hung board: nothing read, nothing sent; its hardware watchdog cuts the motors
                    if not stalled:
                        stalled, self._stall_start = True, now
                    self._physics(now, dt)
                    if now - self._stall_start >= self.cfg.watchdog_ms / 1000:
                        self.left = self.right = 0
                    master = None
                else:
                    if stalled:
                        stalled = False
                        self._boot(2)  # its watchdog
                    master = self.port.master
            if master is None:
                time.sleep(0.005)
                continue
            try:
                r, _, _ = select.select([master], [], [], 0.002)
            except (OSError, ValueError):
                continue
            data = b""
            if r:
                try:
                    data = os.read(master, 4096)
                except (BlockingIOError, InterruptedError):
                    pass
                except OSError:
                    pass
            with self._lock:
                if self.port.master != master:
                    continue
                now = time.monotonic()
                for rec in self.dec.feed(data):
                    self._handle(rec.msg, rec.seq, now)
                self._tick(now, dt)
