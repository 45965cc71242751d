"""DocMcu: an independent virtual microcontroller written from docs/serial-protocol.md alone.

Nothing else in the project was read or imported while writing it (no host code,
no firmware, no project virtual MCU). It exists to test the host against the
*documented* contract: it speaks the protocol on a real pty, runs its own thread
like a firmware main loop, and has fault-injection hooks (duplicated, reordered
and dropped reports, line garbage, hangs, reboots, version changes).

Where the spec is silent, the choice made is marked "SPEC SILENT" in a comment.
Observability counters (boots, reports_sent, bad_frames_in, ...) are cumulative
ground truth across reboots; the board's own RAM state is reset by reboot().
"""
import binascii, os, random, select, struct, termios, threading, time, tty

HELLO, SENSOR, MOTOR, HEARTBEAT, FAULT, STOP, STATE = range(1, 8)
NAMES = dict(enumerate("HELLO SENSOR MOTOR HEARTBEAT FAULT STOP STATE".split(), 1))
F_BUMP, F_TILT, F_STALL, F_BUTTON, F_FAILSAFE, F_LOW_BATTERY, F_DEAD = (1 << i for i in range(7))
(FAULT_FAILSAFE, FAULT_BAD_FRAME, FAULT_VERSION, FAULT_STALL, FAULT_BATTERY,
 FAULT_RESET, FAULT_UNKNOWN_TYPE) = range(1, 8)
# SPEC SILENT: the values of the FAULT reset "reset cause" detail.
RESET_POWER_ON, RESET_EXTERNAL, RESET_WATCHDOG = 0, 1, 2
MAX_PAYLOAD = 64
MAX_BODY = 1 + 1 + MAX_PAYLOAD + 2            # type seq payload crc
MAX_ENCODED = MAX_BODY + 1                    # COBS adds one byte for bodies < 254
SENSOR_FIXED = 15                             # SENSOR payload without touch[]
BATTERY_CUTOFF_MV = 6400                      # SPEC SILENT: cut-off value (2S pack, 3.2 V/cell)
FW_VERSION = 1                                # SPEC SILENT: fw_version value
BOARD_NAME = b"doc_mcu"
BAD_FRAME_FAULT_GAP_S = 0.1                   # SPEC SILENT: when FAULT bad_frame is sent
# Host -> MCU frames the board accepts, with (min, max) payload length.
# SPEC SILENT: HELLO from the host uses the same layout (6 fixed bytes + 0..16 ascii);
# SENSOR/FAULT sent *to* the MCU (wrong direction) are treated as unknown types.
ACCEPTED = {HELLO: (6, 22), MOTOR: (4, 4), HEARTBEAT: (4, 4), STOP: (0, 0), STATE: (1, 1)}


def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF, no reflection, no xorout)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    out = bytearray()
    for chunk in data.split(b"\x00"):        # each chunk is followed by an implicit zero
        while len(chunk) >= 254:             # (never for bodies <= 68 bytes)
            out += b"\xff" + chunk[:254]
            chunk = chunk[254:]
        out += bytes([len(chunk) + 1]) + chunk
    return bytes(out)


def cobs_decode(enc: bytes) -> bytes | None:
    """Decode one COBS frame (without its 0x00 delimiter); None on a COBS error."""
    out, i, n = bytearray(), 0, len(enc)
    while i < n:
        code = enc[i]
        if code == 0 or i + code > n:
            return None
        out += enc[i + 1:i + code]
        i += code
        if code < 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(ftype: int, seq: int, payload: bytes = b"") -> bytes:
    assert len(payload) <= MAX_PAYLOAD
    body = bytes([ftype & 0xFF, seq & 0xFF]) + payload
    return cobs_encode(body + struct.pack("<H", crc16(body))) + b"\x00"


def decode_frame(enc: bytes):
    """(type, seq, payload) of one encoded frame without delimiter, or None if bad."""
    body = cobs_decode(enc) if len(enc) <= MAX_ENCODED else None
    if body is None or not 4 <= len(body) <= MAX_BODY:
        return None
    if crc16(body[:-2]) != struct.unpack_from("<H", body, len(body) - 2)[0]:
        return None
    return body[0], body[1], body[2:-2]


class DocMcu:
    def __init__(self, n_touch=4, version=1, report_hz=50.0, failsafe_ms=300,
                 battery_mv=8000, seed=0):
        if not 0 <= n_touch <= MAX_PAYLOAD - SENSOR_FIXED:
            raise ValueError("n_touch does not fit in a SENSOR payload")
        self.n_touch, self.version, self.report_hz = n_touch, version & 0xFF, report_hz
        self.failsafe_ms, self.battery_mv = failsafe_ms, battery_mv
        self._rng, self._lock, self._stop = random.Random(seed), threading.RLock(), threading.Event()
        self._thread = self._master = self._slave = self.path = None
        # observability: cumulative ground truth, never reset by reboot()
        self.boots = self.total_bumps = self.reports_sent = self.bad_frames_in = 0
        self.hellos_in = self.version_faults_sent = self.stops_in = 0
        self.last_host_hello_version = None
        # test hooks and physical inputs (survive a board reset)
        self._dup, self._reorder, self._held, self._drop = False, False, None, 0
        self._hang_until = self._bump_until = self._button_until = 0.0
        self._bump_channel = 0
        self._boot_state()

    # ---- board RAM ----------------------------------------------------
    def _boot_state(self):
        now = time.monotonic()
        self._seq, self._boot_t, self._bumps, self.motor, self.dead = 0, now, 0, (0, 0), False
        # SPEC SILENT: a fresh board drives without a host hello; only a mismatching
        # hello locks it, and a reset forgets the lock (it lives in RAM).
        self._version_locked = self._failsafe = self._low = False
        # SPEC SILENT: failsafe only arms once a MOTOR frame arrived (no FAULT failsafe
        # at boot when motors never ran); it fires once per silence, then disarms.
        self._failsafe_armed, self._last_motor_t = False, now
        self._ack_seq = 0                     # SPEC SILENT: ack_seq before any MOTOR is 0
        self._bad_count = self._bad_reported = 0
        self._last_bad_fault_t = 0.0
        self._touch = [0] * self.n_touch
        self._held = None                     # a held (reordered) report dies with RAM
        self._rx, self._rx_overflow = bytearray(), False
        self._next_report = None              # first report one period after boot

    # ---- lifecycle ----------------------------------------------------
    def start(self) -> str:
        with self._lock:
            if self._thread:
                return self.path              # already running
            self._master, self._slave = os.openpty()
            tty.setraw(self._slave)
            # Non-blocking TX: like a UART without flow control, bytes nobody takes are lost.
            os.set_blocking(self._master, False)
            self.path = os.ttyname(self._slave)
            self._boot(RESET_POWER_ON)
            self._thread = threading.Thread(target=self._run, name="DocMcu", daemon=True)
            self._thread.start()
            return self.path

    def close(self):
        self._stop.set()
        t, self._thread = self._thread, None
        if t and t is not threading.current_thread():
            t.join(timeout=2)
        with self._lock:
            fds, self._master, self._slave = (self._master, self._slave), None, None
        for fd in filter(lambda f: f is not None, fds):
            os.close(fd)

    def _boot(self, cause):
        self.boots += 1
        self._boot_state()
        self._send(HELLO, self._hello_payload())
        self._send(FAULT, struct.pack("<BH", FAULT_RESET, cause))

    def reboot(self, cause=RESET_EXTERNAL):
        with self._lock: self._boot(cause)

    # ---- fault injection / physical inputs ------------------------------
    def bump(self, n=1):
        with self._lock:
            self._bumps = (self._bumps + n) & 0xFF
            self.total_bumps += n
            self._bump_until = time.monotonic() + 0.2
            if self.n_touch:
                self._touch[self._bump_channel % self.n_touch] = 255
                self._bump_channel += 1

    def press_button(self, seconds=0.3):
        with self._lock: self._button_until = time.monotonic() + seconds

    def duplicate_next_report(self):
        with self._lock: self._dup = True

    def reorder_next_reports(self):
        with self._lock: self._reorder = True

    def drop_next_reports(self, n):
        with self._lock: self._drop += n

    def garbage(self, nbytes):
        with self._lock:
            self._write(bytes(self._rng.randrange(256) for _ in range(nbytes)), raw=True)

    def silence(self, seconds):
        """Hang (send and read nothing) for `seconds`, then a watchdog reset."""
        with self._lock: self._hang_until = time.monotonic() + seconds

    def set_version(self, v):
        with self._lock: self.version = v & 0xFF

    # ---- output -------------------------------------------------------
    def _hello_payload(self):
        return struct.pack("<BBHH", self.version, self.n_touch,
                           min(self.failsafe_ms, 0xFFFF), FW_VERSION) + BOARD_NAME[:16]

    def _build(self, ftype, payload):                # every frame built consumes a seq
        wire, self._seq = encode_frame(ftype, self._seq, payload), (self._seq + 1) & 0xFF
        return wire

    def _send(self, ftype, payload):
        self._write(self._build(ftype, payload))

    def _write(self, data, raw=False):
        if self._master is None or (self._hang_until and not raw):
            return                            # a hung board sends nothing
        try:
            os.write(self._master, data)      # a partial write = a broken frame on the line
        except OSError:
            pass                              # nobody reading / buffer full: bytes lost

    def _fault(self, code, detail):
        self._send(FAULT, struct.pack("<BH", code, max(0, min(detail, 0xFFFF))))

    def _report(self, now):
        flags = ((F_BUMP if now < self._bump_until else 0)
                 | (F_BUTTON if now < self._button_until else 0)
                 | (F_FAILSAFE if self._failsafe else 0)
                 | (F_LOW_BATTERY if self._low else 0)
                 | (F_DEAD if self.dead else 0))  # TILT/STALL: no physics here, never set
        left, right = self.motor              # SPEC SILENT: current = 1 mA per permille
        payload = struct.pack("<IHhhHBBB", int((now - self._boot_t) * 1000) & 0xFFFFFFFF,
                              max(0, min(int(self.battery_mv), 0xFFFF)), left, right,
                              flags, self._bumps, self._ack_seq, self.n_touch)
        wire = self._build(SENSOR, payload + bytes(self._touch))
        if self._drop:
            self._drop -= 1
            return
        frames, self._dup = ([wire, wire] if self._dup else [wire]), False
        if self._reorder:                     # hold this one, send it after the next
            self._reorder, self._held = False, frames
            return
        held, self._held = self._held, None
        for f in frames + (held or []):
            self._write(f)
            self.reports_sent += 1

    # ---- input --------------------------------------------------------
    def _bad(self, unknown_type=None):
        self.bad_frames_in += 1
        self._bad_count = min(self._bad_count + 1, 0xFFFF)
        if unknown_type is not None:
            # SPEC SILENT: an unknown type gets FAULT unknown_type at once *and* is
            # counted, so it also shows up in the next FAULT bad_frame count.
            self._fault(FAULT_UNKNOWN_TYPE, unknown_type)

    def _feed(self, data):
        for b in data:
            if b == 0:
                if self._rx_overflow:
                    self._bad()
                elif self._rx:                # SPEC SILENT: empty frames (00 00) are ignored
                    self._handle(bytes(self._rx))
                self._rx, self._rx_overflow = bytearray(), False
            elif not self._rx_overflow:
                if len(self._rx) >= MAX_ENCODED:
                    self._rx_overflow = True  # too long: skip to the next delimiter
                else:
                    self._rx.append(b)

    def _handle(self, enc):
        frame = decode_frame(enc)
        if frame is None:
            return self._bad()
        ftype, seq, p = frame
        if ftype not in ACCEPTED:
            return self._bad(unknown_type=ftype)
        if not ACCEPTED[ftype][0] <= len(p) <= ACCEPTED[ftype][1]:
            return self._bad()
        now = time.monotonic()
        if ftype == HELLO:
            self.hellos_in += 1
            self.last_host_hello_version = p[0]
            if p[0] != self.version:          # only FAULT version, no HELLO, on a mismatch
                self._version_locked = True
                self.motor = (0, 0)           # refuses to drive: motors off
                self._fault(FAULT_VERSION, self.version)
                self.version_faults_sent += 1
            else:                             # SPEC SILENT: host hello's other fields ignored
                self._version_locked = False
                self._send(HELLO, self._hello_payload())
        elif ftype == MOTOR:
            if self._version_locked:
                return                        # SPEC SILENT: ignored: no ack, no failsafe refresh
            left, right = (max(-1000, min(1000, v)) for v in struct.unpack("<hh", p))
            self._last_motor_t, self._failsafe_armed, self._failsafe = now, True, False
            # SPEC SILENT: while dead / low battery the frame is acked and refreshes the
            # failsafe timer, but the applied output is forced to (0, 0).
            self._ack_seq = seq
            self.motor = (0, 0) if (self.dead or self._low) else (left, right)
        elif ftype == HEARTBEAT:
            self._send(HEARTBEAT, p)          # echo: same token, the board's own seq
        elif ftype == STOP:
            self.stops_in += 1                # SPEC SILENT: not a latch; next MOTOR drives
            self.motor = (0, 0)
        elif ftype == STATE:
            self.dead = p[0] != 0             # SPEC SILENT: any non-zero state means dead
            self.motor = (0, 0) if self.dead else self.motor

    # ---- main loop ----------------------------------------------------
    def _tick(self, now):
        low = self.battery_mv < BATTERY_CUTOFF_MV
        if low and not self._low:             # FAULT battery once per crossing
            self.motor = (0, 0)
            self._fault(FAULT_BATTERY, int(self.battery_mv))
        self._low = low
        # SPEC SILENT: failsafe_ms == 0 disables the failsafe.
        if (self.failsafe_ms > 0 and self._failsafe_armed
                and (now - self._last_motor_t) * 1000 >= self.failsafe_ms):
            self.motor, self._failsafe, self._failsafe_armed = (0, 0), True, False
            self._fault(FAULT_FAILSAFE, self.failsafe_ms)
        if (self._bad_count != self._bad_reported
                and now - self._last_bad_fault_t >= BAD_FRAME_FAULT_GAP_S):
            self._fault(FAULT_BAD_FRAME, self._bad_count)
            self._bad_reported, self._last_bad_fault_t = self._bad_count, now
        if now >= self._bump_until:
            self._touch = [0] * self.n_touch
        period = 1.0 / self.report_hz if self.report_hz and self.report_hz > 0 else 0.0
        if not period:
            self._next_report = None
        elif self._next_report is None or now - self._next_report > 1.0:
            self._next_report = now + period  # (re)started or far behind: resync
        elif now >= self._next_report:
            self._next_report += period
            self._report(now)

    def _run(self):
        while not self._stop.is_set():
            master = self._master
            if master is None:
                break
            data = b""
            try:
                data = os.read(master, 4096) if select.select([master], [], [], 0.002)[0] else b""
            except (OSError, ValueError):     # nothing to read after all / fd closed
                time.sleep(0.002)
            with self._lock:
                if self._stop.is_set():
                    break
                now = time.monotonic()
                if self._hang_until:
                    if now < self._hang_until:
                        continue              # hung: incoming bytes are lost (UART overrun)
                    self._hang_until = 0.0
                    self._boot(RESET_WATCHDOG)
                    continue
                self._feed(data)
                self._tick(now)


if __name__ == "__main__":
    assert crc16(b"123456789") == 0x29B1
    mcu = DocMcu()
    fd = os.open(mcu.start(), os.O_RDWR | os.O_NOCTTY)
    tty.setraw(fd, termios.TCSANOW)           # TCSAFLUSH would discard the boot frames
    os.write(fd, encode_frame(HELLO, 0, struct.pack("<BBHH", 1, 0, 0, 0) + b"selfcheck")
             + encode_frame(HEARTBEAT, 1, struct.pack("<I", 0xC0FFEE))
             + encode_frame(MOTOR, 2, struct.pack("<hh", 300, -2000))
             + b"\x05\x01\x02\x03\x00" + encode_frame(0x42, 3))   # a COBS error, an unknown type
    got, end = b"", time.monotonic() + 0.5
    while time.monotonic() < end:
        got += os.read(fd, 4096) if select.select([fd], [], [], 0.05)[0] else b""
    frames = [decode_frame(c) for c in got.split(b"\x00") if c]
    for f in frames:
        if f is None or f[0] != SENSOR:
            print("  bad frame" if f is None else f"  seq={f[1]:3d} {NAMES[f[0]]} {f[2].hex()}")
    print("types:", [NAMES[f[0]][:2] for f in frames if f])
    sensors = [struct.unpack_from("<IHhhHBBB", f[2]) for f in frames if f and f[0] == SENSOR]
    print("last SENSOR (mcu_ms, mV, iL, iR, flags, bumps, ack_seq, n_touch):", sensors[-1])
    print("motor:", mcu.motor, "bad_frames_in:", mcu.bad_frames_in, "hellos_in:", mcu.hellos_in,
          "reports_sent:", mcu.reports_sent, "SENSOR received:", len(sensors))
    mcu.close()
    mcu.close()
    os.close(fd)
