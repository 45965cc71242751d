"""The laptop's side: one command, one reply; and a minimal picocom."""
from __future__ import annotations

import os
import select
import sys
import termios
import time

from .device import make_raw, open_device


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
