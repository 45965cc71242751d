"""What a day in the life (hardware/bad_day.py) talks to from outside the runtime, each a real counterpart:
the service manager's notify socket, and the virtual board in its own process."""
from __future__ import annotations

import json
import socket
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path


class NotifyListener:
    """The service manager's end of $NOTIFY_SOCKET: (monotonic time, sender pid, message) for every datagram."""

    def __init__(self, path: str):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.path = path
        self.messages: list[tuple[float, int, str]] = []
        self._cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        creds = struct.calcsize("3i")
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(creds))
            except OSError:
                return
            pid = 0
            for level, kind, payload in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", payload[:creds])[0]
            with self._cond:
                self.messages.append((time.monotonic(), pid, data.decode(errors="replace")))
                self._cond.notify_all()

    def wait(self, pid: int, needle: str, timeout: float) -> float | None:
        """Time of the first message from pid holding the line `needle` (or starting with it, for STATUS=)."""
        end = time.monotonic() + timeout
        with self._cond:
            while True:
                for t, p, m in self.messages:
                    if p == pid and any(line == needle or line.startswith(needle) for line in m.split("\n")):
                        return t
                left = end - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)

    def of(self, pid: int) -> list[tuple[float, str]]:
        with self._cond:
            return [(t, m) for t, p, m in self.messages if p == pid]

    def close(self):
        self.sock.close()


class Board:
    """The virtual MCU process: commands on its stdin, its status JSON lines on its stderr."""

    def __init__(self, work: Path, seed: int):
        self.events = work / "board.jsonl"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime.cli", "virtual-mcu", "--link", str(work / "ttyMCU"), "--touch", "4",
             "--battery-s", "100000", "--bump-rate", "0", "--revive-after", "0", "--events", str(self.events),
             "--seed", str(seed)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.path = self.proc.stdout.readline().strip()
        if not self.path:
            raise RuntimeError(f"virtual MCU did not start: {self.proc.stderr.read()}")
        self.status: dict = {}
        self.commands = 0
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            if line.startswith("{"):
                try:
                    self.status = json.loads(line)
                except ValueError:
                    pass

    def send(self, line: str):
        self.commands += 1
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def ask_status(self, timeout: float = 2.0) -> dict:
        old = self.status
        self.send("status")
        end = time.monotonic() + timeout
        while self.status is old and time.monotonic() < end:
            time.sleep(0.02)
        return self.status

    def event_log(self) -> list[dict]:
        return [json.loads(x) for x in self.events.read_text().splitlines() if x.strip()]

    def close(self):
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.flush()
            self.proc.wait(5)
        except (OSError, subprocess.TimeoutExpired):
            self.proc.kill()
