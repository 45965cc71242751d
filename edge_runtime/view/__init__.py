"""The live view: `--view [HOST:]PORT` serves a page that shows what the agent lives, as it lives it.

    edge-runtime --sim --view                      http://127.0.0.1:8765/ (this machine only)
    edge-runtime run --config robot.toml --view 0.0.0.0:8765 --view-token SECRET
                                                   http://ROBOT:8765/?token=SECRET from a laptop

The control loop never waits for it: at most `hz` times a second, and only while someone watches, the loop's
hook (ViewHook) copies a small snapshot (the eyes at the model's input size, the body vector, the output
regions of the last decision, the learner's figures) into one slot. The server's threads encode it once and
stream it to each page as server-sent events; a client that cannot take a frame within `send_timeout_s` is
dropped. Only stdlib (http.server, zlib for the PNGs): a robot needs nothing more to be watched.

Endpoints (every one needs `?token=...` when the view has a token):
    /              the page
    /events        text/event-stream: one `data:` JSON frame per snapshot (fields: docs/view.md)
    /frame.json    the newest frame, once (for scripts)
"""
from .hook import ViewHook
from .server import ViewServer, parse_view_address

__all__ = ["ViewHook", "ViewServer", "parse_view_address"]
