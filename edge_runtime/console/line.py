"""Line editing the way picocom and screen expect from a serial device."""
from __future__ import annotations


MAX_LINE = 200
CLEAR_LINE = b"\r\x1b[K"


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
