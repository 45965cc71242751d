"""Serial devices and ptys for the console: open raw, 8N1, no modem control."""
from __future__ import annotations

import os
import termios

from ..config import ConfigError


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
