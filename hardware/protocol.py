"""The serial protocol between the host and the microcontroller (version 1).

Wire format (docs/serial-protocol.md is the normative description):

    frame on the wire = COBS(body) 0x00
    body              = type:u8 seq:u8 payload:0..MAX_PAYLOAD crc:u16 (little-endian)
    crc               = CRC-16/CCITT-FALSE (poly 0x1021, init 0xFFFF) over type, seq and payload

All multi-byte fields are little-endian. Each direction keeps its own 8-bit
sequence counter; a gap tells the receiver how many frames were lost.

This module is pure (no I/O): the messages, their encoders and decoders, the
frame format. The receiving stream (bytes in, messages out, bad frames dropped
and counted, sequence order judged) is hardware/protocol_stream.py. The firmware's frame code (hardware/firmware)
implements the same thing in C++ and is checked against the same vectors file
(hardware/protocol_vectors.txt).
"""
from __future__ import annotations

import binascii
import struct
from dataclasses import dataclass
from pathlib import Path

PROTOCOL_VERSION = 1
MAX_PAYLOAD = 64
MAX_BODY = 2 + MAX_PAYLOAD + 2
MAX_TOUCH = 16
VECTORS_FILE = Path(__file__).with_name("protocol_vectors.txt")

# message types
HELLO = 0x01  # both ways: protocol version, board description
SENSOR = 0x02  # MCU -> host: touch, battery, motor currents, flags
MOTOR = 0x03  # host -> MCU: left/right motor command
HEARTBEAT = 0x04  # host -> MCU: token; MCU echoes it back (liveness and round-trip time)
FAULT = 0x05  # MCU -> host: fault code and detail
STOP = 0x06  # host -> MCU: stop the motors now
STATE = 0x07  # host -> MCU: body state (alive / dead) so the board can signal it
TYPE_NAMES = {HELLO: "hello", SENSOR: "sensor", MOTOR: "motor", HEARTBEAT: "heartbeat", FAULT: "fault",
              STOP: "stop", STATE: "state"}

# SENSOR flags
FLAG_BUMP = 1 << 0  # a bump switch is pressed now
FLAG_TILT = 1 << 1  # the body is tilted beyond the safe angle
FLAG_STALL = 1 << 2  # a motor is stalled (current high, no motion)
FLAG_BUTTON = 1 << 3  # the revive button is pressed
FLAG_FAILSAFE = 1 << 4  # motors are stopped by the command-timeout failsafe
FLAG_LOW_BATTERY = 1 << 5  # the board's own low-battery cut-off is active
FLAG_DEAD = 1 << 6  # the board is in the dead state (set by the host's STATE message)

# FAULT codes
FAULT_FAILSAFE = 1  # no motor command for failsafe_ms: motors stopped
FAULT_BAD_FRAME = 2  # the board dropped frames (detail = count so far)
FAULT_VERSION = 3  # the host's hello carries another protocol version (detail = board's version)
FAULT_STALL = 4  # motor stall detected
FAULT_BATTERY = 5  # battery below the board's cut-off
FAULT_RESET = 6  # the board restarted (detail = reset cause)
FAULT_UNKNOWN_TYPE = 7  # a frame of unknown type arrived (detail = the type)
FAULT_NAMES = {FAULT_FAILSAFE: "failsafe", FAULT_BAD_FRAME: "bad_frame", FAULT_VERSION: "version",
               FAULT_STALL: "stall", FAULT_BATTERY: "battery", FAULT_RESET: "reset",
               FAULT_UNKNOWN_TYPE: "unknown_type"}

STATE_ALIVE = 0
STATE_DEAD = 1

MOTOR_MAX = 1000  # motor commands are permille of full power, -1000..1000


class ProtocolError(ValueError):
    pass


# ------------------------------------------------------------------ framing
def crc16(data: bytes) -> int:
    """CRC-16/CCITT-FALSE: poly 0x1021, init 0xFFFF, no reflection, no final xor ("123456789" -> 0x29B1)."""
    return binascii.crc_hqx(data, 0xFFFF)


def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the output has no 0x00 bytes (canonical form, no trailing 0x01)."""
    out = bytearray([0])
    code_i = 0
    code = 1
    n = len(data)
    for i, b in enumerate(data):
        if b == 0:
            out[code_i] = code
            code_i = len(out)
            out.append(0)
            code = 1
        else:
            out.append(b)
            code += 1
            if code == 0xFF and i + 1 < n:
                out[code_i] = code
                code_i = len(out)
                out.append(0)
                code = 1
    out[code_i] = code
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Inverse of cobs_encode (without the trailing delimiter). Raises ProtocolError on malformed input."""
    out = bytearray()
    i = 0
    n = len(data)
    while i < n:
        code = data[i]
        if code == 0:
            raise ProtocolError("COBS: zero byte inside a frame")
        end = i + code
        if end > n:
            raise ProtocolError("COBS: block runs past the end of the frame")
        block = data[i + 1:end]
        if 0 in block:
            raise ProtocolError("COBS: zero byte inside a frame")
        out += block
        i = end
        if code != 0xFF and i < n:
            out.append(0)
    return bytes(out)


def encode_frame(mtype: int, seq: int, payload: bytes = b"") -> bytes:
    """One frame ready for the wire, delimiter included."""
    if len(payload) > MAX_PAYLOAD:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD}")
    body = bytes([mtype & 0xFF, seq & 0xFF]) + payload
    body += struct.pack("<H", crc16(body))
    return cobs_encode(body) + b"\x00"


def decode_body(frame: bytes) -> tuple[int, int, bytes]:
    """COBS-decode one frame (without delimiter) and check its CRC -> (type, seq, payload)."""
    body = cobs_decode(frame)
    if len(body) < 4:
        raise ProtocolError(f"frame too short ({len(body)} bytes)")
    if len(body) > MAX_BODY:
        raise ProtocolError(f"frame too long ({len(body)} bytes)")
    (crc,) = struct.unpack("<H", body[-2:])
    if crc16(body[:-2]) != crc:
        raise ProtocolError("CRC mismatch")
    return body[0], body[1], body[2:-2]


# ------------------------------------------------------------------ messages
@dataclass
class Hello:
    version: int = PROTOCOL_VERSION
    n_touch: int = 0
    failsafe_ms: int = 0
    fw_version: int = 0
    board: str = ""

    def pack(self) -> bytes:
        name = self.board.encode("ascii", "replace")[:16]
        return struct.pack("<BBHH", self.version, self.n_touch, self.failsafe_ms, self.fw_version) + name

    @classmethod
    def unpack(cls, p: bytes) -> "Hello":
        if len(p) < 6:
            raise ProtocolError(f"hello: {len(p)} bytes, need >= 6")
        v, n, fs, fw = struct.unpack_from("<BBHH", p)
        return cls(v, n, fs, fw, p[6:22].decode("ascii", "replace"))


@dataclass
class SensorReport:
    mcu_ms: int = 0  # board clock, ms (wraps at 2^32)
    battery_mv: int = 0
    current_left_ma: int = 0
    current_right_ma: int = 0
    flags: int = 0
    bumps: int = 0  # bump events counted by the board (wraps at 256): none lost between reports
    ack_seq: int = 0  # seq of the last motor command the board applied
    touch: tuple[int, ...] = ()  # 0..255 per channel

    def pack(self) -> bytes:
        if len(self.touch) > MAX_TOUCH:
            raise ProtocolError(f"sensor: {len(self.touch)} touch channels exceed {MAX_TOUCH}")
        return struct.pack("<IHhhHBBB", self.mcu_ms & 0xFFFFFFFF, self.battery_mv, self.current_left_ma,
                           self.current_right_ma, self.flags, self.bumps & 0xFF, self.ack_seq & 0xFF,
                           len(self.touch)) + bytes(int(t) & 0xFF for t in self.touch)

    @classmethod
    def unpack(cls, p: bytes) -> "SensorReport":
        n0 = struct.calcsize("<IHhhHBBB")
        if len(p) < n0:
            raise ProtocolError(f"sensor: {len(p)} bytes, need >= {n0}")
        ms, mv, il, ir, fl, bumps, ack, n = struct.unpack_from("<IHhhHBBB", p)
        if len(p) != n0 + n or n > MAX_TOUCH:
            raise ProtocolError(f"sensor: {n} touch channels but {len(p) - n0} bytes")
        return cls(ms, mv, il, ir, fl, bumps, ack, tuple(p[n0:]))


@dataclass
class MotorCommand:
    left: int = 0  # permille, -1000..1000
    right: int = 0

    def pack(self) -> bytes:
        return struct.pack("<hh", clamp_motor(self.left), clamp_motor(self.right))

    @classmethod
    def unpack(cls, p: bytes) -> "MotorCommand":
        if len(p) != 4:
            raise ProtocolError(f"motor: {len(p)} bytes, need 4")
        left, right = struct.unpack("<hh", p)
        return cls(clamp_motor(left), clamp_motor(right))


@dataclass
class Heartbeat:
    token: int = 0

    def pack(self) -> bytes:
        return struct.pack("<I", self.token & 0xFFFFFFFF)

    @classmethod
    def unpack(cls, p: bytes) -> "Heartbeat":
        if len(p) != 4:
            raise ProtocolError(f"heartbeat: {len(p)} bytes, need 4")
        return cls(struct.unpack("<I", p)[0])


@dataclass
class Fault:
    code: int = 0
    detail: int = 0

    def pack(self) -> bytes:
        return struct.pack("<BH", self.code, self.detail & 0xFFFF)

    @classmethod
    def unpack(cls, p: bytes) -> "Fault":
        if len(p) != 3:
            raise ProtocolError(f"fault: {len(p)} bytes, need 3")
        return cls(*struct.unpack("<BH", p))

    @property
    def name(self) -> str:
        return FAULT_NAMES.get(self.code, f"fault{self.code}")


@dataclass
class Stop:
    def pack(self) -> bytes:
        return b""

    @classmethod
    def unpack(cls, p: bytes) -> "Stop":
        if p:
            raise ProtocolError(f"stop: {len(p)} bytes, need 0")
        return cls()


@dataclass
class State:
    state: int = STATE_ALIVE

    def pack(self) -> bytes:
        return bytes([self.state & 0xFF])

    @classmethod
    def unpack(cls, p: bytes) -> "State":
        if len(p) != 1:
            raise ProtocolError(f"state: {len(p)} bytes, need 1")
        return cls(p[0])


MESSAGES = {HELLO: Hello, SENSOR: SensorReport, MOTOR: MotorCommand, HEARTBEAT: Heartbeat, FAULT: Fault,
            STOP: Stop, STATE: State}
TYPES = {cls: t for t, cls in MESSAGES.items()}


def clamp_motor(v: int) -> int:
    return max(-MOTOR_MAX, min(MOTOR_MAX, int(v)))


def parse(mtype: int, payload: bytes):
    cls = MESSAGES.get(mtype)
    if cls is None:
        raise ProtocolError(f"unknown message type 0x{mtype:02x}")
    return cls.unpack(payload)


class Encoder:
    """Numbers outgoing frames with this side's sequence counter."""

    def __init__(self):
        self.seq = 0

    def frame(self, msg) -> bytes:
        f = encode_frame(TYPES[type(msg)], self.seq, msg.pack())
        self.last_seq = self.seq
        self.seq = (self.seq + 1) & 0xFF
        return f


# ------------------------------------------------------------------ shared test vectors
def load_vectors(path: Path = VECTORS_FILE) -> list[tuple[str, ...]]:
    """Lines of the vectors file: `crc DATA CRC`, `cobs RAW ENCODED`, `frame NAME BODY WIRE`, `bad NAME WIRE`."""
    rows = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            rows.append(tuple(line.split()))
    return rows
