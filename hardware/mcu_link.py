"""The host side of the serial link to the microcontroller.

A reader thread owns the port: it opens it (by a stable path such as
/dev/serial/by-id/...), says hello, decodes frames (bad ones are dropped and
counted), keeps the latest sensor report, sends heartbeats and measures their
round trip. A silent MCU (no frame for `silent_s`) or a failed read closes the
port; it is reopened with exponential backoff. close() sends STOP (and a zero
motor command) before letting go of the port.

What a report means is decided here, once, so that no protocol artefact can
reach the body as a feeling:

- Only the newest report is ever used. A duplicate (a seq already received
  with the same board clock) and a late report (its clock behind the newest)
  are dropped and counted.
- A board restart is told by its clock: `mcu_ms` counts from the board's boot,
  so a report whose clock is more than REBOOT_BACKSTEP_MS behind the newest one
  *and* no older than the time since that newest report (a board cannot have
  been up longer than it has been silent) is the first report of a new boot,
  even when its HELLO and FAULT `reset` were lost; an old report replayed late
  fails the second test and is dropped. A FAULT `reset` is taken the same way:
  the next report decides (its clock must be young enough for a fresh boot).
- The board's bump counter is turned into a host-side running total: each
  accepted report adds `(bumps - base) mod 256`. On a boot the base is 0 (a
  booting board counts from 0). Across a reconnect without a boot the base is
  kept (the board went on counting). A step of 128 or more is a counter that
  went back: nothing is counted, and the new value becomes the base only when
  the next report confirms it (a single bogus report cannot make later bumps
  count twice). So the host never counts more bumps than the board made.
- A protocol version mismatch, announced either way (the board's HELLO carries
  another version, or it answers FAULT `version`), is one error naming the port
  and both versions (`version_error`); start() raises it at once.
"""
from __future__ import annotations

import logging
import threading
import time
from collections import deque
from dataclasses import dataclass, field

from . import protocol as P
from .protocol_stream import Received, StreamDecoder

log = logging.getLogger("hardware.mcu_link")


class McuLinkError(ConnectionError):
    """The MCU link cannot work: no MCU answered, or it speaks another protocol version."""


class McuVersionError(McuLinkError):
    """The board speaks another protocol version: it refuses to drive; new firmware (or a new host) is needed."""


REBOOT_BACKSTEP_MS = 1000  # a board clock stepping back further than this means the board restarted...
BOOT_SLACK_MS = 250  # ...if its clock is no older than the host's time since it last heard the board, plus this


@dataclass
class LinkStats:
    connects: int = 0
    reconnects: int = 0
    open_failures: int = 0
    silent_events: int = 0
    read_errors: int = 0
    write_errors: int = 0
    dropped_writes: int = 0  # commands not sent because the link was down
    reports: int = 0
    version_mismatch: int = 0
    hello_retries: int = 0  # hellos sent again because the first (or its answer) was lost
    hellos: int = 0  # hellos received from the board (boot, or the answer to ours)
    boots: int = 0  # board (re)boots seen: FAULT reset, or its clock stepping back (REBOOT_BACKSTEP_MS)
    duplicate_reports: int = 0  # reports whose seq was already received: dropped
    late_reports: int = 0  # reports older than the newest one: dropped
    counter_restarts: int = 0  # bump counter re-based because it went back (a restart whose hello was lost)
    faults: dict = field(default_factory=dict)  # fault name -> count
    rtt_ms: deque = field(default_factory=lambda: deque(maxlen=1000))


@dataclass
class Report:
    """A sensor report and when the host received it (time.monotonic())."""

    msg: P.SensorReport
    t: float
    seq: int
    bumps_total: int = 0  # bump events the host has counted from the board since the link started
    boots: int = 0  # board boots seen so far


class McuLink:
    def __init__(self, port: str, baud: int = 115200, silent_s: float = 0.5, heartbeat_s: float = 0.1,
                 backoff_s: float = 0.05, backoff_max_s: float = 2.0, serial_factory=None):
        self.port = port
        self.baud = baud
        self.silent_s = silent_s
        self.heartbeat_s = heartbeat_s
        self.backoff_s = backoff_s
        self.backoff_max_s = backoff_max_s
        self._factory = serial_factory
        self.dec = StreamDecoder()
        self.enc = P.Encoder()
        self.stats = LinkStats()
        self.hello: P.Hello | None = None
        self.latest: Report | None = None
        self._ser = None
        self._wlock = threading.Lock()
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._hb_sent: dict[int, float] = {}
        self._hb_token = 0
        self.connected = False
        self.last_rx = 0.0
        self._sent_t: dict[int, float] = {}  # motor command seq -> send time (command-to-ack latency)
        self.ack_ms: deque = deque(maxlen=1000)
        self.version_error: str | None = None  # set when the board speaks another protocol version
        self.bumps_total = 0
        self._bump_base: int | None = None  # the board's bump counter at the last counted report (None: not known)
        self._base_candidate: int | None = None  # a backward counter value waiting for confirmation
        self._last_ms: int | None = None  # the board clock of the newest report
        self._last_t = 0.0  # host time of the newest report
        self._reset_t: float | None = None  # host time of a FAULT reset whose boot the next report confirms
        self._report_ms: dict[int, int] = {}  # seq -> board clock of recently accepted reports (duplicate check)

    # ---------------------------------------------------------------- lifecycle
    def start(self, wait_s: float = 0.0) -> "McuLink":
        """Start the reader thread; with wait_s > 0 wait that long for the MCU's hello (McuLinkError if none)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"mcu-link {self.port}", daemon=True)
            self._thread.start()
        if wait_s > 0 and not self.wait_connected(wait_s):
            self.close()
            if self.version_error:
                raise McuVersionError(self.version_error)
            raise McuLinkError(f"MCU on {self.port}: no hello within {wait_s:.1f} s "
                               f"(open failures {self.stats.open_failures}, bad frames {self.dec.stats.bad_frames})")
        return self

    def wait_connected(self, timeout: float) -> bool:
        """True once the board said a hello in our protocol version; False on timeout or a version mismatch."""
        end = time.monotonic() + timeout
        with self._cond:
            while not (self.connected and self.hello is not None) and self.version_error is None:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return self.version_error is None

    def close(self):
        """Stop the motors and let go of the port. Idempotent."""
        if self._stop.is_set():
            return
        try:
            self.stop_motors()
        finally:
            self._stop.set()
            if self._thread is not None:
                self._thread.join(timeout=2)
            self._close_port()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()
        return False

    # ---------------------------------------------------------------- sending
    def _write(self, msg) -> bool:
        with self._wlock:
            ser = self._ser
            if ser is None or not self.connected:
                self.stats.dropped_writes += 1
                return False
            frame = self.enc.frame(msg)
            try:
                ser.write(frame)
                return True
            except Exception as e:  # SerialException, OSError, termios.error: the port is gone
                self.stats.write_errors += 1
                log.debug("write to %s failed: %s", self.port, e)
                return False

    def send_motor(self, left: int, right: int) -> bool:
        if self.version_error is not None:  # a board of another protocol version is never driven
            self.stats.dropped_writes += 1
            return False
        with self._wlock:
            seq = self.enc.seq
        ok = self._write(P.MotorCommand(left, right))
        if ok:
            self._sent_t[seq] = time.monotonic()
            if len(self._sent_t) > 256:
                self._sent_t.pop(next(iter(self._sent_t)))
        return ok

    def stop_motors(self) -> bool:
        a = self._write(P.Stop())
        b = self._write(P.MotorCommand(0, 0))
        return a and b

    def send_state(self, dead: bool) -> bool:
        return self._write(P.State(P.STATE_DEAD if dead else P.STATE_ALIVE))

    def wait_report(self, newer_than: float, timeout: float) -> Report | None:
        """The first report received after `newer_than` (monotonic), or None on timeout."""
        end = time.monotonic() + timeout
        with self._cond:
            while self.latest is None or self.latest.t <= newer_than:
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self.latest

    @property
    def alive(self) -> bool:
        return self.connected and time.monotonic() - self.last_rx < self.silent_s

    def counters(self) -> dict:
        s = self.stats
        d = {"connects": s.connects, "reconnects": s.reconnects, "silent_events": s.silent_events,
             "read_errors": s.read_errors, "write_errors": s.write_errors, "dropped_writes": s.dropped_writes,
             "reports": s.reports, "version_mismatch": s.version_mismatch, "boots": s.boots, "hellos": s.hellos,
             "duplicate_reports": s.duplicate_reports, "late_reports": s.late_reports,
             "counter_restarts": s.counter_restarts, "bumps": self.bumps_total,
             **{f"rx_{k}": v for k, v in self.dec.stats.as_dict().items()},
             **{f"fault_{k}": v for k, v in dict(s.faults).items()}}  # (copied: the reader thread adds names)
        if s.rtt_ms:
            r = sorted(s.rtt_ms)
            d["rtt_ms_median"] = round(r[len(r) // 2], 3)
            d["rtt_ms_p95"] = round(r[int(len(r) * 0.95)], 3)
        return d

    # ---------------------------------------------------------------- the reader thread
    def _open(self):
        if self._factory is not None:
            return self._factory(self.port, self.baud)
        import serial

        return serial.Serial(self.port, self.baud, timeout=0.02, write_timeout=0.2)

    def _close_port(self):
        with self._wlock:
            ser, self._ser = self._ser, None
            was = self.connected
            self.connected = False
        if ser is not None:
            try:
                ser.close()
            except Exception:
                pass
        if was:
            with self._cond:
                self._cond.notify_all()

    def _run(self):
        backoff = self.backoff_s
        first = True
        while not self._stop.is_set():
            try:
                ser = self._open()
            except Exception as e:
                self.stats.open_failures += 1
                if self.stats.open_failures == 1 or self.stats.open_failures % 20 == 0:
                    log.warning("MCU port %s: cannot open (%s); retrying", self.port, e)
                self._stop.wait(backoff)
                backoff = min(self.backoff_max_s, backoff * 2)
                continue
            try:
                ser.reset_input_buffer()
            except Exception:
                pass
            with self._wlock:
                self._ser = ser
                self.connected = True
            self.stats.connects += 1
            if not first:
                self.stats.reconnects += 1
                log.info("MCU port %s: reconnected", self.port)
            first = False
            self.dec.buf.clear()
            self.dec.reset_sequence()
            self.hello = None  # (the bump base is kept: a board that did not restart went on counting)
            self.last_rx = time.monotonic()
            self._write(P.Hello(P.PROTOCOL_VERSION, 0, 0, 0, "edge-runtime"))
            reason = self._pump(ser)
            got_hello = self.hello is not None
            self._close_port()
            if self._stop.is_set():
                break
            log.warning("MCU port %s: %s; reconnecting", self.port, reason)
            if got_hello:  # the connection worked: start the backoff afresh
                backoff = self.backoff_s
            self._stop.wait(backoff)
            backoff = min(self.backoff_max_s, backoff * 2)

    def _pump(self, ser) -> str:
        next_hb = time.monotonic()
        hello_at = time.monotonic()
        while not self._stop.is_set():
            try:
                data = ser.read(max(1, ser.in_waiting))
            except Exception as e:
                self.stats.read_errors += 1
                return f"read failed ({e})"
            now = time.monotonic()
            if data:
                for rec in self.dec.frames(data):
                    self._on_message(rec, now)
            if now - self.last_rx > self.silent_s:
                self.stats.silent_events += 1
                return "silent"
            if self.hello is None and self.version_error is None and now - hello_at > self.heartbeat_s * 5:
                # our hello or its answer was lost on a noisy line: ask again, the MCU keeps reporting meanwhile
                hello_at = now
                self.stats.hello_retries += 1
                self._write(P.Hello(P.PROTOCOL_VERSION, 0, 0, 0, "edge-runtime"))
            if now >= next_hb:
                next_hb = now + self.heartbeat_s
                self._hb_token = (self._hb_token + 1) & 0xFFFFFFFF
                self._hb_sent[self._hb_token] = time.perf_counter()
                if len(self._hb_sent) > 64:
                    self._hb_sent.pop(next(iter(self._hb_sent)))
                if not self._write(P.Heartbeat(self._hb_token)):
                    return "write failed"
        return "closed"

    def _on_message(self, rec: Received, now: float):
        self.last_rx = now
        msg = rec.msg
        if rec.order == "dup" and not isinstance(msg, P.SensorReport):
            return  # a frame we already acted on (a report is checked against its clock: a reboot reuses seqs)
        if isinstance(msg, P.SensorReport):
            self._on_report(rec, msg, now)
        elif isinstance(msg, P.Heartbeat):
            t = self._hb_sent.pop(msg.token, None)
            if t is not None:
                self.stats.rtt_ms.append((time.perf_counter() - t) * 1000)
        elif isinstance(msg, P.Hello):
            self.stats.hellos += 1
            if msg.version != P.PROTOCOL_VERSION:
                self._version_mismatch(msg.version, "its hello")
                return
            with self._cond:
                self.hello = msg
                self._cond.notify_all()
        elif isinstance(msg, P.Fault):
            self.stats.faults[msg.name] = self.stats.faults.get(msg.name, 0) + 1
            if msg.code == P.FAULT_RESET:
                self._reset_t = now  # the next report confirms the boot (or shows this reset was stale)
                if self.hello is not None:
                    # a board that rebooted behind an open port (brownout) has not heard our hello: say it again,
                    # so that its version check runs
                    self._write(P.Hello(P.PROTOCOL_VERSION, 0, 0, 0, "edge-runtime"))
            elif msg.code == P.FAULT_VERSION:
                self._version_mismatch(msg.detail, "FAULT version")
            elif msg.code not in (P.FAULT_FAILSAFE, P.FAULT_BAD_FRAME):
                log.warning("MCU on %s: fault %s (detail %d)", self.port, msg.name, msg.detail)

    def _board_booted(self, why: str):
        self.stats.boots += 1
        if self.hello is not None or self.stats.connects > 1:
            log.warning("MCU on %s restarted (%s): counters re-based", self.port, why)

    def _version_mismatch(self, board_version: int, how: str):
        self.stats.version_mismatch += 1
        if self.version_error is None:
            self.version_error = (f"MCU on {self.port} speaks serial protocol v{board_version}, this host speaks "
                                  f"v{P.PROTOCOL_VERSION} (seen in {how}): the board refuses to drive; flash firmware "
                                  f"for protocol v{P.PROTOCOL_VERSION} (hardware/firmware) or install a matching edge-runtime")
            log.error("%s", self.version_error)
        self._write(P.Stop())
        with self._cond:
            self._cond.notify_all()

    def _count_bumps(self, bumps: int):
        if self._bump_base is None:  # the first report: the base, nothing to count yet
            self._bump_base = bumps
            return
        step = (bumps - self._bump_base) & 0xFF
        if step < 128:
            self.bumps_total += step
            self._bump_base, self._base_candidate = bumps, None
            return
        # the counter went back with no other sign of a restart: count nothing; believe it when the next report agrees
        if self._base_candidate is not None and (bumps - self._base_candidate) & 0xFF < 128:
            self.stats.counter_restarts += 1
            log.warning("MCU on %s: bump counter went back from %d to %d: re-based", self.port, self._bump_base,
                        self._base_candidate)
            self.bumps_total += (bumps - self._base_candidate) & 0xFF
            self._bump_base, self._base_candidate = bumps, None
        else:
            self._base_candidate = bumps

    @staticmethod
    def _young(mcu_ms: int, since_s: float) -> bool:
        """Could a board clock reading belong to a boot that happened within the last since_s seconds?"""
        return mcu_ms <= since_s * 1000 * 1.02 + BOOT_SLACK_MS

    def _on_report(self, rec: Received, msg: P.SensorReport, now: float):
        st = self.stats
        if rec.order == "dup" and self._report_ms.get(rec.seq) == msg.mcu_ms:
            st.duplicate_reports += 1
            return
        boot = False
        if self._reset_t is not None:  # a FAULT reset came: a fresh boot only if this clock is young enough
            boot = self._young(msg.mcu_ms, now - self._reset_t)
            self._reset_t = None
            if boot:
                self._board_booted("FAULT reset")  # (the decoder restarted its seq count at the reset)
            else:
                log.info("MCU on %s: a FAULT reset not followed by a fresh clock (%d ms): ignored", self.port, msg.mcu_ms)
        if not boot and self._last_ms is not None:
            back = (self._last_ms - msg.mcu_ms) & 0xFFFFFFFF  # how far the board clock went back (wraps at 2^32)
            if 0 < back < 1 << 31 or (back == 0 and rec.order != "new"):
                if back > REBOOT_BACKSTEP_MS and self._young(msg.mcu_ms, now - self._last_t):
                    boot = True  # its hello and reset fault were lost on the line
                    self._board_booted(f"its clock went back {back} ms")
                    # the decoder judged this seq against the old count: undo that, a new count begins here
                    if rec.order == "new":
                        self.dec.stats.lost = max(0, self.dec.stats.lost - rec.gap)
                    elif rec.order == "dup":
                        self.dec.stats.duplicates -= 1
                    else:
                        self.dec.stats.late -= 1
                    self.dec.resync(rec.seq)
                else:
                    st.late_reports += 1
                    return
        if boot:
            self._report_ms.clear()
            self._bump_base, self._base_candidate = 0, None  # a booted board counts from 0
        elif rec.order != "new":  # an older seq whose clock is not behind: not a report to trust
            st.late_reports += 1
            return
        self._count_bumps(msg.bumps)
        self._last_ms, self._last_t = msg.mcu_ms, now
        self._report_ms[rec.seq] = msg.mcu_ms
        if len(self._report_ms) > 64:
            self._report_ms.pop(next(iter(self._report_ms)))
        st.reports += 1
        sent = self._sent_t.pop(msg.ack_seq, None)
        if sent is not None:
            self.ack_ms.append((now - sent) * 1000)
        with self._cond:
            self.latest = Report(msg, now, rec.seq, self.bumps_total, st.boots)
            self._cond.notify_all()
