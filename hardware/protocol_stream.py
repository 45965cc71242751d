"""The receiving side of the serial protocol: any bytes in, good messages out, each with its place in the sequence.

Bad frames (COBS, CRC, length, payload errors, overruns, unknown types) are dropped and counted, never raised.
Sequence numbers are judged against the newest frame received (new, late, or a duplicate; gaps counted as lost),
and a sender that restarts its count (HELLO, FAULT reset) starts the judging afresh. The frame format itself,
the messages and the sending side are hardware/protocol.py; docs/serial-protocol.md is the contract of both.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from .protocol import FAULT_RESET, MAX_BODY, MESSAGES, Fault, Hello, ProtocolError, decode_body, parse


@dataclass
class Received:
    """A good frame. `order` says where its seq falls against the frames before it:

    new   the newest frame so far (a forward gap before it counted as lost frames)
    late  older than the newest: it arrived out of order (it filled a gap: one lost frame less) or too late to tell
    dup   a seq already received in the recent window: a duplicate
    """

    msg: object
    seq: int
    order: str = "new"
    gap: int = 0  # frames counted as lost just before this one


@dataclass
class DecoderStats:
    frames: int = 0  # good frames
    bad_frames: int = 0  # COBS/CRC/length/payload errors: dropped
    overruns: int = 0  # frames longer than the maximum: dropped
    unknown: int = 0  # frames of unknown type: dropped
    lost: int = 0  # frames missing according to sequence gaps (net of those that arrived late)
    late: int = 0  # frames that arrived after a newer one
    duplicates: int = 0  # frames whose seq was already received
    resyncs: int = 0  # sequence restarts: a HELLO or FAULT reset (the other side (re)booted or said hello)
    bytes: int = 0
    errors: dict = field(default_factory=dict)  # reason -> count

    def as_dict(self) -> dict:
        return {"frames": self.frames, "bad_frames": self.bad_frames, "overruns": self.overruns,
                "unknown": self.unknown, "lost": self.lost, "late": self.late, "duplicates": self.duplicates,
                "resyncs": self.resyncs, "bytes": self.bytes}


SEQ_WINDOW = 64  # how many recent sequence numbers are remembered to tell a late frame from a duplicate


class StreamDecoder:
    """Feed arbitrary bytes, get good messages; bad frames are dropped and counted, never raised.

    Sequence numbers are tracked against the newest frame: a forward gap counts
    lost frames, a seq already seen in the last SEQ_WINDOW is a duplicate, an
    older unseen one is late (and no longer lost). A HELLO or a FAULT `reset`
    starts the count afresh: the sender restarts its counter when it boots.
    """

    MAX_WIRE = MAX_BODY + MAX_BODY // 254 + 2

    def __init__(self):
        self.buf = bytearray()
        self.stats = DecoderStats()
        self._overrun = False
        self._last_seq: int | None = None
        self._seen = 0  # bit i: seq (last - i) was received
        self._span = 0  # how many seqs back from the newest the window is valid (since the last resync)

    def reset_sequence(self):
        self._last_seq = None
        self._seen = 0
        self._span = 0

    def resync(self, seq: int):
        """The sender restarted its sequence at `seq` (boot, or a frame known to start a new count)."""
        self.stats.resyncs += 1
        self._last_seq, self._seen, self._span = seq, 1, 1

    def feed(self, data: bytes) -> list[Received]:
        return list(self.frames(data))

    def frames(self, data: bytes):
        """Like feed(), one frame at a time: each frame's order is judged when it is taken, so a consumer that
        resyncs the sequence (a restart it recognised) affects the frames after it in the same chunk."""
        self.stats.bytes += len(data)
        for chunk in _split_keep(data):
            if chunk == b"\x00":
                if self._overrun:
                    self._overrun = False
                elif self.buf:
                    frame = bytes(self.buf)
                    self.buf.clear()
                    r = self._frame(frame)
                    if r is not None:
                        yield r
                self.buf.clear()
            else:
                if self._overrun:
                    continue
                self.buf += chunk
                if len(self.buf) > self.MAX_WIRE:
                    self.buf.clear()
                    self._overrun = True
                    self.stats.overruns += 1
                    self.stats.bad_frames += 1

    def _bad(self, reason: str):
        self.stats.bad_frames += 1
        self.stats.errors[reason] = self.stats.errors.get(reason, 0) + 1

    def _order(self, seq: int) -> tuple[str, int]:
        s = self.stats
        if self._last_seq is None:
            self._last_seq, self._seen, self._span = seq, 1, 1
            return "new", 0
        ahead = (seq - self._last_seq) & 0xFF
        if ahead == 0:
            s.duplicates += 1
            return "dup", 0
        if ahead < 128:
            gap = ahead - 1
            s.lost += gap
            self._seen = ((self._seen << ahead) | 1) & ((1 << SEQ_WINDOW) - 1)
            self._span = min(SEQ_WINDOW, self._span + ahead)
            self._last_seq = seq
            return "new", gap
        back = 256 - ahead  # 1..128 behind the newest
        if back < self._span:
            if self._seen >> back & 1:
                s.duplicates += 1
                return "dup", 0
            self._seen |= 1 << back
            s.lost = max(0, s.lost - 1)  # it was counted lost when the newer frame jumped over it
        s.late += 1
        return "late", 0

    def _frame(self, frame: bytes) -> Received | None:
        try:
            mtype, seq, payload = decode_body(frame)
        except ProtocolError as e:
            self._bad(str(e).split(" (")[0])
            return None
        try:
            msg = parse(mtype, payload)
        except ProtocolError as e:
            if mtype not in MESSAGES:
                self.stats.unknown += 1
            self._bad(str(e).split(":")[0])
            return None
        restart = isinstance(msg, Hello) or (isinstance(msg, Fault) and msg.code == FAULT_RESET)
        if restart and seq != self._last_seq:  # (the same seq again is a duplicate, like any frame)
            # a booting sender starts at seq 0: measuring it against the old count would invent losses
            self.resync(seq)
            self.stats.frames += 1
            return Received(msg, seq, "new", 0)
        order, gap = self._order(seq)
        self.stats.frames += 1
        return Received(msg, seq, order, gap)


def _split_keep(data: bytes):
    """Split on 0x00, yielding the non-zero runs and each zero as its own chunk."""
    start = 0
    while True:
        i = data.find(0, start)
        if i < 0:
            if start < len(data):
                yield data[start:]
            return
        if i > start:
            yield data[start:i]
        yield b"\x00"
        start = i + 1
