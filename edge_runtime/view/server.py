"""The view's HTTP server: the page, and the newest snapshot streamed as server-sent events."""
from __future__ import annotations

import base64
import hmac
import logging
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from urllib.parse import parse_qs, urlsplit

from ..jsonout import dumps
from .png import png_rgb

log = logging.getLogger("edge_runtime.view")

DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8765
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class ViewError(ValueError):
    pass


def parse_view_address(text: str | None) -> tuple[str, int]:
    """`[HOST:]PORT` -> (host, port); None or "" -> the default (127.0.0.1, 8765). Port 0 picks a free port."""
    if not text:
        return DEFAULT_HOST, DEFAULT_PORT
    host, sep, port = text.rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_HOST
    try:
        p = int(port)
    except ValueError:
        raise ViewError(f"--view {text!r}: expected [HOST:]PORT, e.g. 8765 or 0.0.0.0:8765") from None
    if not 0 <= p <= 65535:
        raise ViewError(f"--view {text!r}: port {p} is not in 0..65535")
    return host or DEFAULT_HOST, p


def is_loopback(host: str) -> bool:
    return host in LOOPBACK or host.startswith("127.")


class ViewServer:
    """Holds the newest snapshot and serves it. publish() is what the control loop calls: it stores a reference
    and wakes the clients' threads, nothing more. Everything slow (PNG, JSON, sockets) happens in those threads."""

    def __init__(self, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, token: str | None = None,
                 max_clients: int = 4, send_timeout_s: float = 2.0, sndbuf: int = 65536):
        if not is_loopback(host) and not token:
            raise ViewError(f"--view {host}:{port} is reachable from other machines: give a --view-token "
                            "or [view] token_file (the page is then opened as http://HOST:PORT/?token=...)")
        self.token = token
        self.max_clients = max_clients
        self.send_timeout_s = send_timeout_s
        self.sndbuf = sndbuf
        self._cond = threading.Condition()
        self._snap = None
        self._seq = 0
        self._encoded: tuple[int, bytes] | None = None
        self._closing = False
        self.clients = 0  # connected event streams (the hook snapshots only while > 0)
        self.served = 0  # event streams ever opened
        self.dropped = 0  # event streams closed because the client could not keep up (or went away)
        self.refused = 0  # requests without the token, or over max_clients
        self.frames_sent = 0  # frames written to event streams, all clients together
        try:
            self.httpd = _Http((host, port), _handler(self))
        except OSError as e:
            raise ViewError(f"--view {host}:{port}: cannot listen ({e.strerror or e})") from None
        self.host, self.port = self.httpd.server_address[:2]
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="view-http", daemon=True)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/"  # (never with the token: URLs end up in logs)

    def start(self) -> "ViewServer":
        """Serve (idempotent: a benchmark or test may start it before the run's hook does)."""
        if not self._thread.is_alive() and not self._closing:
            self._thread.start()
        return self

    def close(self):
        """Stop serving (idempotent)."""
        if self._closing:
            return
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        if self._thread.is_alive():  # (shutdown() waits for serve_forever: never call it on a server not started)
            self.httpd.shutdown()
            self._thread.join(timeout=2.0)
        self.httpd.server_close()

    # -- the loop's side
    def publish(self, snap: dict):
        with self._cond:
            self._snap = snap
            self._seq += 1
            self._cond.notify_all()

    # -- the clients' side
    def wait_frame(self, after: int, timeout: float) -> tuple[int, bytes] | None:
        """The newest frame once it is newer than `after` (None on timeout or close). Frames in between are
        skipped: a client sees the present, never a backlog."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._closing or self._seq > after, timeout):
                return None
            if self._closing:
                return None
            seq, snap = self._seq, self._snap
            if self._encoded is not None and self._encoded[0] == seq:
                return self._encoded
        data = encode_frame(snap)  # outside the lock: the loop's publish() never waits for an encoding
        with self._cond:
            if self._encoded is None or self._encoded[0] < seq:
                self._encoded = (seq, data)
        return seq, data

    def frame_now(self) -> bytes | None:
        with self._cond:
            snap = self._snap
        return None if snap is None else encode_frame(snap)

    def allowed(self, query: dict) -> bool:
        if not self.token:
            return True
        given = (query.get("token") or [""])[0]
        return hmac.compare_digest(given.encode(), self.token.encode())


def encode_frame(snap: dict) -> bytes:
    """The snapshot as one JSON object: the eyes as PNG data URLs, every number as it is."""
    d = dict(snap)
    for k in ("left", "right"):
        if k in d:
            d[k] = "data:image/png;base64," + base64.b64encode(png_rgb(d[k])).decode("ascii")
    return dumps(d).encode()


class _Http(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def server_bind(self):
        if ":" in self.server_address[0]:
            self.address_family = socket.AF_INET6
            self.socket = socket.socket(self.address_family, self.socket_type)
        super().server_bind()


def _page() -> bytes:
    return resources.files(__package__).joinpath("page.html").read_bytes()


def _handler(view: ViewServer):
    class Handler(BaseHTTPRequestHandler):
        server_version = "edge-runtime-view"

        def log_message(self, fmt, *args):  # requests go to the debug log, not stderr
            log.debug("%s %s", self.address_string(), fmt % args)

        def _send(self, code: int, ctype: str, body: bytes):
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self):
            u = urlsplit(self.path)
            q = parse_qs(u.query)
            if not view.allowed(q):
                view.refused += 1
                return self._send(403, "text/plain", b"this view needs its token: open it as /?token=...\n")
            if u.path in ("/", "/index.html"):
                return self._send(200, "text/html; charset=utf-8", _page())
            if u.path == "/frame.json":
                f = view.frame_now()
                return self._send(200, "application/json", f or b"null")
            if u.path == "/events":
                return self._events()
            return self._send(404, "text/plain", b"not found\n")

        def _events(self):
            with view._cond:
                full = view.clients >= view.max_clients
                if not full:
                    view.clients += 1
                    view.served += 1
            if full:
                view.refused += 1
                return self._send(503, "text/plain", f"the view serves {view.max_clients} pages at once\n".encode())
            sock = self.connection
            try:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, view.sndbuf)
                sock.settimeout(view.send_timeout_s)  # a write that cannot finish in time drops the client
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(b"retry: 1000\n\n")
                self.wfile.flush()
                seq = 0
                while True:
                    got = view.wait_frame(seq, timeout=10.0)
                    if got is None:
                        if view._closing:
                            return
                        self.wfile.write(b": still here\n\n")  # keeps proxies and the page's connection alive
                    else:
                        seq, data = got
                        self.wfile.write(b"id: %d\ndata: " % seq + data + b"\n\n")
                        view.frames_sent += 1
                    self.wfile.flush()
            except (OSError, ValueError) as e:  # timeout (a client that stopped reading), reset, broken pipe
                view.dropped += 1
                log.info("view: client %s dropped (%s)", self.address_string(), type(e).__name__)
            finally:
                with view._cond:
                    view.clients -= 1
                self.close_connection = True

    return Handler


# the top-level fields of a frame, each documented in docs/view.md (a test holds the two together)
FRAME_FIELDS = ("t", "step", "body_step", "life", "life_steps", "steps_per_s", "learning", "left", "right", "hw",
                "body", "body_names", "heads", "loss", "lr", "thought", "metrics", "lifespans", "lives", "rollbacks",
                "faults")
