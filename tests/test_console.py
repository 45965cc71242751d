"""The serial debug console, over real ptys (os.openpty), against a real runtime loop."""
import os
import select
import subprocess
import sys
import threading
import time

import pytest

from edge_runtime.body import Body
from edge_runtime.config import Config, ConsoleConfig
from edge_runtime.console import Console, ConsoleHook, LineEditor, client_commands
from edge_runtime.runtime import Runner
from sim_bridge.arena import Arena

PROMPT = b"edge> "


def small_cfg():
    return Config.from_dict({"arena": {"eye_w": 32, "eye_h": 24}})


class Term:
    """The laptop end of the serial line: the pty master."""

    def __init__(self):
        self.master, self.slave = os.openpty()
        self.path = os.ttyname(self.slave)
        self.seen = b""

    def send(self, data: bytes):
        os.write(self.master, data)

    def read_until(self, end: bytes, timeout: float = 30.0) -> bytes:
        buf = b""
        t_end = time.monotonic() + timeout
        while not buf.endswith(end):
            left = t_end - time.monotonic()
            assert left > 0, f"timeout waiting for {end!r}; got {buf[-300:]!r}"
            r, _, _ = select.select([self.master], [], [], left)
            if r:
                buf += os.read(self.master, 4096)
        self.seen += buf
        return buf

    def cmd(self, line: str) -> str:
        """Type a line the way picocom sends it (CR), return the reply without echo and prompt."""
        self.send(line.encode() + b"\r")
        out = self.read_until(PROMPT).decode()
        assert out.endswith("\r\nedge> ") or out == "edge> "
        lines = out.split("\r\n")
        assert lines[0] == line  # the echo
        return "\n".join(lines[1:-1])

    def close(self):
        os.close(self.master)
        os.close(self.slave)


class Live:
    """A runner with a console hook, running in a thread until stopped."""

    def __init__(self, writable=False, body=None, run_dir=None, steps=None):
        self.cfg = small_cfg()
        self.term = Term()
        self.body = body or Arena(self.cfg.arena)
        self.console = Console(self.term.path, ConsoleConfig(writable=writable))
        self.hook = ConsoleHook(self.console)
        self.runner = Runner(self.cfg, self.body, seed=2, progress=False, hooks=[self.hook], run_dir=run_dir)
        self.summary = None
        self.thread = threading.Thread(target=self._run, args=(steps,), daemon=True)

    def _run(self, steps):
        self.summary = self.runner.run(steps)

    def __enter__(self):
        self.thread.start()
        self.term.read_until(PROMPT)  # the greeting
        return self

    def __exit__(self, *exc):
        self.runner.request_stop()
        self.thread.join(60)
        assert not self.thread.is_alive()
        self.term.close()
        self.body.close()


# ---------------------------------------------------------------- line editing
def test_line_editor_terminal_keys():
    ed = LineEditor()
    echo, lines = ed.feed(b"statx\x7fus\r\n")  # DEL, then CRLF (one line end, not two)
    assert lines == ["status"] and echo == b"statx\b \bus\r\n"
    assert ed.feed(b"help\n") == (b"help\r\n", ["help"])  # LF alone
    assert ed.feed(b"a\rb\r")[1] == ["a", "b"]  # CR alone
    assert ed.feed(b"xy\x08\x08lr\r")[1] == ["lr"]  # backspace
    assert ed.feed(b"learn\x03")[1] == [None]  # Ctrl-C cancels the line
    assert ed.feed(b"junk\x15senses\r")[1] == ["senses"]  # Ctrl-U erases it
    assert ed.feed(b"\x1b[Ast\x1b[Datus\r")[1] == ["status"]  # arrow keys are swallowed
    echo, lines = ed.feed(b"x" * 300 + b"\r")
    assert lines == ["x" * 200] and echo.count(b"\x07") == 100  # overlong: bell, not a crash
    assert LineEditor(echo=False).feed(b"help\n") == (b"", ["help"])


# ---------------------------------------------------------------- commands on a live runtime
def test_read_only_console_on_a_pty():
    with Live() as live:
        t = live.term
        help_text = t.cmd("help")
        for c in ("status", "senses", "learn", "lr", "save", "rollback", "motors", "log", "stream", "revive"):
            assert c in help_text
        st = t.cmd("status")
        assert "rule survival" in st and "learning on" in st and "st/s" in st
        se = t.cmd("senses")
        assert "hp " in se and "touch [" in se and "left 32x24" in se
        assert t.cmd("lr").startswith("self_lr ")
        assert t.cmd("learn") == "learning on"
        assert t.cmd("log").startswith("log level ")
        for line, err in [("learn off", "read-only"), ("save", "read-only"), ("rollback", "read-only"),
                          ("revive", "read-only"), ("motors stop", "read-only"), ("lr 0.2 0.5", "read-only"),
                          ("frobnicate", "unknown command 'frobnicate'"), ("learn maybe", "expected on|off"),
                          ("status now", "expected no arguments"), ("stream fast", "expected on"),
                          ("lr 1", "two numbers"), ("log LOUD", "DEBUG|INFO")]:
            reply = t.cmd(line)
            assert reply.startswith("error: ") and err in reply and "\n" not in reply, (line, reply)
        assert live.runner.rule.learning
        t.send(b"\r")  # an empty line: just a prompt
        assert t.read_until(PROMPT) == b"\r\nedge> "


def test_writable_console_changes_the_runtime(tmp_path):
    with Live(writable=True, run_dir=tmp_path / "run") as live:
        t, rule = live.term, live.runner.rule
        assert t.cmd("learn off") == "learning off" and not rule.learning
        s0 = rule.steps
        t.cmd("status"), t.cmd("status"), t.cmd("status")  # three more loop steps at least
        assert rule.steps == s0  # frozen: the loop runs, nothing is learned
        assert t.cmd("learn on") == "learning on"
        t.cmd("status"), t.cmd("status")
        assert rule.steps > s0
        assert "range [0.2, 0.9]" in t.cmd("lr 0.2 0.9") and (rule.cfg.lr_min, rule.cfg.lr_max) == (0.2, 0.9)
        assert (live.cfg.rule.lr_min, live.cfg.rule.lr_max) == (0.5, 1.0)  # an override: the run's config is untouched
        bad = t.cmd("lr 0.5 2")
        assert bad.startswith("error: lr:") and "lr_max" in bad and rule.cfg.lr_max == 0.9
        rb = rule.rollbacks
        assert t.cmd("rollback").startswith("rolled back") and rule.rollbacks == rb + 1
        assert t.cmd("save").startswith("saved ") and (tmp_path / "run" / "weights.npz").exists()
        assert t.cmd("save").startswith("error: save: the last save was")  # rate-limited
        assert t.cmd("motors stop").startswith("motors stopped") and live.body.motors_held
        assert "motors_held True" in t.cmd("overrides") and t.cmd("motors go") == "motors released"
        assert not live.body.motors_held and t.cmd("overrides") == "overrides lr_min 0.2, lr_max 0.9"
        assert t.cmd("overrides clear").startswith("overrides cleared") and t.cmd("overrides") == "overrides none"
        assert (rule.cfg.lr_min, rule.cfg.lr_max) == (live.cfg.rule.lr_min, live.cfg.rule.lr_max)
        lives = len(live.runner.lifespans)
        live.body.hp = 0.5
        assert t.cmd("revive").startswith("revived: hp 1.00")
        assert len(live.runner.lifespans) == lives  # not counted as a death
        assert t.cmd("log WARNING") == "log level WARNING"
        t.cmd("log INFO")


class PlainBody(Body):
    """A body that declares no capability (like a gym env): the arena's world behind the bare contract."""

    def __init__(self, cfg):
        self.inner = Arena(cfg)
        self.spec = self.inner.spec

    def reset(self, seed=None):
        return self.inner.reset(seed)

    def act(self, action):
        return self.inner.act(action)

    def respawn(self):
        return self.inner.respawn()


def test_motors_are_a_capability_the_body_declares():
    cfg = small_cfg()
    with Live(writable=True) as live:  # the arena declares MotorControl: held, its robot does not move
        assert live.term.cmd("motors stop").startswith("motors stopped")
        live.term.cmd("status")
        pos = live.body.pos.copy()
        for _ in range(3):
            live.term.cmd("status")
        assert (live.body.pos == pos).all()
        assert live.term.cmd("motors go") == "motors released" and not live.body.motors_held
    with Live(writable=True, body=PlainBody(cfg.arena)) as live:
        assert live.term.cmd("motors stop") == "error: motors: body 'Arena' has no motor control"


def test_stream_lines_keep_the_prompt_and_the_typed_text():
    with Live() as live:
        t = live.term
        assert t.cmd("stream on 0.2") == "stream on every 0.2 s"
        t.send(b"sta")  # half a line typed when telemetry arrives
        out = t.read_until(b"edge> sta")
        assert b"\r\x1b[K[stream] step " in out and b"st/s | life " in out
        t.send(b"tus\r")
        assert b"rule survival" in t.read_until(PROMPT)
        assert t.cmd("stream off") == "stream off"


def test_a_hung_loop_does_not_hang_the_console():
    term = Term()
    c = Console(term.path, ConsoleConfig())
    c.reply_timeout = 0.3
    c.start()  # no hook: nobody serves the loop's side, as if the loop were stuck
    try:
        term.read_until(PROMPT)
        term.send(b"status\r")
        out = term.read_until(PROMPT).decode()
        assert "error: status: the control loop did not answer" in out
        assert not c.requests or c.requests[0].cancelled  # it will not run later by surprise
        term.send(b"help\r")
        assert "commands" in term.read_until(PROMPT).decode()  # still usable
    finally:
        c.stop()
        term.close()


# ---------------------------------------------------------------- it never blocks or slows the loop
def test_flood_of_commands_and_stream_while_the_loop_runs():
    live = Live(steps=150)
    t = live.term
    stop = threading.Event()
    got = bytearray()

    def flood():
        os.set_blocking(t.master, False)
        cmds = b"status\rsenses\rlr\rbogus\rlearn\rstream on 0.1\r"
        while not stop.is_set():
            r, w, _ = select.select([t.master], [t.master], [], 0.05)
            try:
                if r:
                    got.extend(os.read(t.master, 65536))
                if w:
                    os.write(t.master, cmds)
            except BlockingIOError:
                pass

    f = threading.Thread(target=flood, daemon=True)
    live.thread.start()
    f.start()
    live.thread.join(120)
    stop.set()
    f.join(5)
    assert not live.thread.is_alive() and live.summary["steps"] == 150
    c = live.console
    assert c.commands > 100  # it was really busy
    assert live.hook.max_requests_per_step == 1  # at most one piece of console work per loop step
    text = bytes(got).decode("ascii", "replace")
    assert text.count("rule survival") > 20 and "[stream] step" in text and "error: unknown command 'bogus'" in text
    assert text.count("edge> ") >= c.commands  # every reply ended with a prompt
    t.close()


def test_a_terminal_that_never_reads_cannot_block_the_loop():
    live = Live(steps=120)
    live.console.outq = type(live.console.outq)(maxlen=4)
    t = live.term
    live.thread.start()
    t.read_until(PROMPT)
    t.send(b"stream on 0.1\r" + b"help\r" * 300)  # ~300 kB of replies nobody reads: the console thread blocks
    live.thread.join(120)
    assert not live.thread.is_alive() and live.summary["steps"] == 120
    assert live.console.dropped_lines > 0  # stream lines were dropped, not waited for
    t.close()


# ---------------------------------------------------------------- the laptop client and the CLI
def null_modem():
    """Two ptys joined back to back (like `socat pty pty`): the runtime opens one slave, the client the other."""
    a, b = Term(), Term()
    stop = threading.Event()

    def pump():
        while not stop.is_set():
            r, _, _ = select.select([a.master, b.master], [], [], 0.1)
            for src, dst in ((a.master, b.master), (b.master, a.master)):
                if src in r:
                    try:
                        os.write(dst, os.read(src, 4096))
                    except OSError:
                        return

    th = threading.Thread(target=pump, daemon=True)
    th.start()

    def close():
        stop.set()
        th.join(2)
        a.close()
        b.close()

    return a.path, b.path, close


def test_cli_run_with_console_and_the_console_client(tmp_path):
    side_a, side_b, close = null_modem()
    p = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "run", "--sim", "--no-progress", "--console", side_a,
                          "--run-dir", str(tmp_path / "run"), "--set", "arena.eye_w=32", "--set", "arena.eye_h=24"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        replies = client_commands(side_b, ["status", "learn off", "nope"], timeout=120)
        assert "rule survival" in replies[0]
        assert replies[1].startswith("error: learn: read-only") and replies[2].startswith("error: unknown command")
        c = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "console", side_b, "--cmd", "senses"],
                           capture_output=True, text=True, timeout=60)
        assert c.returncode == 0 and c.stdout.startswith("hp "), c.stderr
    finally:
        p.terminate()
        out, err = p.communicate(timeout=60)
        close()
    assert p.returncode == 0, err


def test_cli_console_errors_are_one_line():
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "run", "--sim", "--console", "/dev/nonexistent-tty"],
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "--console /dev/nonexistent-tty" in p.stderr and len(p.stderr.strip().splitlines()) == 1
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "console", "/dev/nonexistent-tty", "--cmd", "status"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1


def test_console_config_is_validated():
    from edge_runtime.config import ConfigError

    with pytest.raises(ConfigError, match="console.writeable"):
        Config.from_dict({"console": {"writeable": True}})
    with pytest.raises(ConfigError, match="console.stream_every_s"):
        Config.from_dict({"console": {"stream_every_s": 0.0}})
    assert Config.from_dict({"console": {"writable": True}}).console.writable
