"""The Godot RL Agents wire protocol, server side (Python listens, Godot connects).

Framing: every message is a 4-byte unsigned little-endian length, then that
many bytes of ASCII JSON. Session: handshake (no reply) -> env_info -> reset ->
action/step ... -> close; `call` asks the world for something outside a step.

Images travel in one of two ways:

* hex (the compatible path, what godot-rl's GodotEnv reads): an observation
  key containing ``2d`` holds a lowercase hex string of raw H x W x C uint8.
* binary (the fast path, negotiated): the handshake carries
  ``"edge_frames": "binary"``; a world that understands it says so in its
  env_info (``"edge": {"frames": "binary"}``) and then sends each image key as
  ``{"blob": [offset, nbytes]}`` plus a top-level ``"blob": total``; the JSON
  message is followed by one more length-prefixed message holding the raw
  bytes. A world that ignores the request keeps sending hex, which still works.

Nothing here knows about bodies; errors are raised as :class:`GodotError`
with a ``who`` prefix that names the body.
"""
from __future__ import annotations

import json
import socket
import struct
import time
from typing import Callable, Optional

import numpy as np

MAJOR_VERSION = "0"
MINOR_VERSION = "7"
DEFAULT_PORT = 11008
MAX_MESSAGE = 256 * 1024 * 1024  # a length above this is a framing error, not a message

_LEN = struct.Struct("<I")


class GodotError(ConnectionError):
    """The Godot side failed: no connection, timeout, disconnect, or a malformed message."""


def encode(obj) -> bytes:
    """One framed JSON message (ASCII-safe: json.dumps escapes non-ASCII)."""
    data = json.dumps(obj, separators=(",", ":")).encode("ascii")
    return _LEN.pack(len(data)) + data


def encode_blob(blob: bytes) -> bytes:
    return _LEN.pack(len(blob)) + bytes(blob)


def is_image_key(key: str) -> bool:
    return "2d" in key


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = bytearray(n)
    view = memoryview(buf)
    got = 0
    while got < n:
        k = sock.recv_into(view[got:], n - got)
        if k == 0:
            raise EOFError
        got += k
    return bytes(buf)


class Channel:
    """A connected socket speaking length-prefixed JSON (+ optional blob) messages.

    ``who`` names the body in every error; ``status`` is a callable returning a
    short description of the peer process (e.g. "process exited with code -9"),
    added to disconnect and timeout errors.
    """

    def __init__(self, sock: socket.socket, who: str = "godot", timeout: float = 30.0,
                 status: Optional[Callable[[], str]] = None):
        self.sock = sock
        self.who = who
        self.timeout = timeout
        self.status = status or (lambda: "")
        self.bytes_in = 0
        self.bytes_out = 0
        self.closed = False
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _fail(self, what: str) -> GodotError:
        st = self.status()
        return GodotError(f"{self.who}: {what}" + (f" ({st})" if st else ""))

    def send(self, obj) -> None:
        if self.closed:
            raise self._fail("connection is closed")
        data = encode(obj)
        try:
            self.sock.settimeout(self.timeout)
            self.sock.sendall(data)
        except socket.timeout:
            raise self._fail(f"could not send {obj.get('type', '?')!r} within {self.timeout:g}s") from None
        except OSError as e:
            raise self._fail(f"Godot closed the connection while sending {obj.get('type', '?')!r}: {e}") from None
        self.bytes_out += len(data)

    def _frame(self, waiting_for: str) -> bytes:
        try:
            self.sock.settimeout(self.timeout)
            (n,) = _LEN.unpack(_recv_exact(self.sock, 4))
            if n > MAX_MESSAGE:
                raise self._fail(f"bad frame length {n} while waiting for {waiting_for} (not the Godot RL protocol?)")
            data = _recv_exact(self.sock, n)
        except socket.timeout:
            raise self._fail(f"no reply from Godot within {self.timeout:g}s while waiting for {waiting_for}") from None
        except (EOFError, ConnectionResetError, BrokenPipeError):
            raise self._fail(f"Godot closed the connection while we waited for {waiting_for}") from None
        except OSError as e:
            raise self._fail(f"connection error while waiting for {waiting_for}: {e}") from None
        self.bytes_in += 4 + n
        return data

    def recv(self, waiting_for: str = "a reply") -> dict:
        """One JSON message; a binary-frame message gets its raw bytes under ``"_blob"``."""
        data = self._frame(waiting_for)
        try:
            msg = json.loads(data)
        except (ValueError, UnicodeDecodeError):
            raise self._fail(f"malformed JSON while waiting for {waiting_for}: {data[:80]!r}") from None
        if not isinstance(msg, dict):
            raise self._fail(f"expected a JSON object while waiting for {waiting_for}, got {type(msg).__name__}")
        nblob = msg.get("blob")
        if nblob is not None:
            blob = self._frame(f"the image blob of {waiting_for}")
            if len(blob) != int(nblob):
                raise self._fail(f"image blob has {len(blob)} bytes, metadata says {int(nblob)}")
            msg["_blob"] = blob
        return msg

    def request(self, obj, expect: str) -> dict:
        self.send(obj)
        msg = self.recv(f"{expect!r}")
        if msg.get("type") != expect:
            raise self._fail(f"expected a {expect!r} message, got {msg.get('type')!r}")
        return msg

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            try:
                self.sock.close()
            except OSError:
                pass


class Listener:
    """The listening side: bind 127.0.0.1:port (0 picks a free port), accept one Godot."""

    def __init__(self, port: int = DEFAULT_PORT, host: str = "127.0.0.1", who: str = "godot"):
        self.who = who
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            self.sock.bind((host, port))
        except OSError as e:
            self.sock.close()
            raise GodotError(f"{who}: cannot listen on {host}:{port}: {e.strerror or e} "
                             "(another run using this port? pick another with port=...)") from None
        self.sock.listen(1)
        self.port = self.sock.getsockname()[1]

    def accept(self, timeout: float, alive: Optional[Callable[[], Optional[str]]] = None) -> socket.socket:
        """Wait up to `timeout` s; `alive()` returns None while the peer may still come, else why it never will."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                why = alive() if alive else None
                raise GodotError(f"{self.who}: Godot did not connect to 127.0.0.1:{self.port} within {timeout:g}s"
                                 + (f" ({why})" if why else ""))
            self.sock.settimeout(min(0.2, left))
            try:
                conn, _ = self.sock.accept()
                conn.settimeout(None)
                return conn
            except socket.timeout:
                why = alive() if alive else None
                if why:
                    raise GodotError(f"{self.who}: Godot never connected to 127.0.0.1:{self.port}: {why}") from None

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def decode_image(value, shape, blob: Optional[bytes], who: str = "godot", key: str = "") -> np.ndarray:
    """An image observation (hex string or blob reference) as uint8 H x W x C.

    `shape` is the env_info size: [H, W, C], or the Godot 4 camera sensor's
    [C, H, W] whose bytes are nevertheless H x W x C interleaved.
    """
    if isinstance(value, dict) and "blob" in value:
        if blob is None:
            raise GodotError(f"{who}: {key} refers to a blob but the message carried none")
        off, n = (int(x) for x in value["blob"])
        raw = np.frombuffer(blob, np.uint8, count=n, offset=off)
    elif isinstance(value, str):
        try:
            raw = np.frombuffer(bytes.fromhex(value), np.uint8)
        except ValueError:
            raise GodotError(f"{who}: {key} is not a hex string") from None
    else:
        raise GodotError(f"{who}: {key}: expected a hex string or a blob reference, got {type(value).__name__}")
    shape = [int(s) for s in shape]
    if len(shape) == 3 and shape[0] in (1, 3, 4) and shape[2] not in (1, 3, 4):
        shape = [shape[1], shape[2], shape[0]]  # Godot 4 sensor: reported CHW, sent HWC
    if len(shape) == 2:
        shape = shape + [1]
    if raw.size != int(np.prod(shape)):
        raise GodotError(f"{who}: {key} has {raw.size} bytes, its space says {shape}")
    return raw.reshape(shape)
