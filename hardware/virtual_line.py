"""The serial line as the virtual MCU's frames meet it: the faults of a bad day, on request.

Sensor reports can be lost (`drop`), sent twice (`dup`), or sent as swapped pairs (`reorder`); any frame can be
corrupted with probability `cfg.line_noise` (flipped bits, a lost byte, or junk before it), and raw junk can be put
on the line (`garbage`). A frame's seq number is used up by the encoder whatever the line then does to it, as on
a real wire. Everything done is counted in the board's stats.
"""
from __future__ import annotations

import random
from typing import Callable


class FaultyLine:
    """Frames from the firmware to `write` (the pty), through the faults asked for."""

    def __init__(self, cfg, rng: random.Random, stats, write: Callable[[bytes], None]):
        self.cfg = cfg  # a VirtualMcuConfig: line_noise is read on every frame (the `noise P` command changes it)
        self.rng = rng
        self.stats = stats
        self.write = write
        self.dup_n = self.reorder_n = self.drop_n = 0
        self._held: bytes | None = None  # the first of a pair being reordered

    def reboot(self):
        """The board lost its RAM: a report held back for reordering is gone with it."""
        self._held = None

    def send(self, frame: bytes, is_report: bool):
        if is_report:
            if self.drop_n > 0:
                self.drop_n -= 1
                self.stats.reports_dropped += 1
                return
            if self.reorder_n > 0:
                if self._held is None:
                    self._held = frame
                    return
                self._noisy(frame)
                frame, self._held = self._held, None
                self.reorder_n -= 1
                self.stats.reports_reordered += 1
            elif self.dup_n > 0:
                self.dup_n -= 1
                self.stats.reports_duplicated += 1
                self._noisy(frame)
        self._noisy(frame)

    def garbage(self, n: int):
        """n random bytes (zeros included): a noisy cable, a bootloader's chatter."""
        self.write(bytes(self.rng.randrange(256) for _ in range(int(n))))
        self.stats.garbage_bytes += int(n)

    def _noisy(self, frame: bytes):
        if self.cfg.line_noise > 0 and self.rng.random() < self.cfg.line_noise:
            frame = self._corrupt(frame)
            self.stats.frames_corrupted += 1
        self.write(frame)

    def _corrupt(self, frame: bytes) -> bytes:
        b = bytearray(frame)
        kind = self.rng.randrange(3)
        if kind == 0:  # flipped bits inside the frame
            for _ in range(self.rng.randint(1, 3)):
                i = self.rng.randrange(len(b) - 1)
                b[i] ^= 1 << self.rng.randrange(8)
                if b[i] == 0:
                    b[i] = 0x55
        elif kind == 1:  # a dropped byte
            del b[self.rng.randrange(len(b) - 1)]
        else:  # garbage before the frame
            b[0:0] = bytes(self.rng.randrange(256) for _ in range(self.rng.randint(1, 12)))
        return bytes(b)
