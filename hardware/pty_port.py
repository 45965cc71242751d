"""The board's end of a serial cable, simulated: a pty whose device path is a stable symlink.

The host opens `path` (a symlink to the current /dev/pts/N, the way /dev/serial/by-id/... points at
/dev/ttyACM0). Unplugging closes the pty, so the host's reads fail; plugging in again makes a new pty behind
the same path.
"""
from __future__ import annotations

import errno
import os
import tempfile
import tty


class PtyPort:
    def __init__(self, link: str | None = None, prefix: str = "edge-vmcu-", name: str = "ttyVMCU0"):
        self._tmpdir = None
        if link is None:
            self._tmpdir = tempfile.mkdtemp(prefix=prefix)
            link = os.path.join(self._tmpdir, name)
        self.path = link
        self.master: int | None = None  # the board's fd; None while unplugged
        self._slave: int | None = None
        self.pty_name: str | None = None

    @property
    def plugged(self) -> bool:
        return self.master is not None

    def plug(self):
        m, s = os.openpty()
        tty.setraw(s)  # no echo, no line editing: a byte pipe like a UART
        os.set_blocking(m, False)
        self.master, self._slave = m, s
        self.pty_name = os.ttyname(s)
        tmp = self.path + ".new"
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        os.symlink(self.pty_name, tmp)
        os.replace(tmp, self.path)

    def unplug(self):
        for fd in (self.master, self._slave):
            if fd is not None:
                try:
                    os.close(fd)
                except OSError:
                    pass
        self.master = self._slave = None
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass

    def write(self, data: bytes):
        """Send bytes to the host; when nobody reads, they are lost, like a UART's."""
        if self.master is None:
            return
        try:
            os.write(self.master, data)
        except BlockingIOError:
            pass
        except OSError as e:
            if e.errno not in (errno.EIO, errno.EAGAIN):
                raise

    def remove(self):
        """Unplug for good and remove the temporary directory, if this port made one."""
        self.unplug()
        if self._tmpdir:
            try:
                os.rmdir(self._tmpdir)
            except OSError:
                pass
