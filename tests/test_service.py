"""The systemd side: notify protocol on a real datagram socket, the watchdog, journal levels, the unit file."""
import logging
import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from edge_runtime.config import Config
from edge_runtime.runtime import Runner
from edge_runtime.service import (JournalFormatter, Notifier, ServiceHook, find_executable, notify_address, render_unit,
                                  stderr_is_journal, watchdog_interval)
from sim_bridge.arena import Arena

ROOT = Path(__file__).resolve().parents[1]


class Listener:
    """What systemd does for a Type=notify service: a datagram socket, read at once by a thread."""

    def __init__(self, tmp_path=None, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"edge-runtime-test-{os.getpid()}-{id(self)}"
            self.sock.bind(b"\0" + name.encode())
            self.env_value = "@" + name
        else:
            path = str(tmp_path / "notify.sock")
            self.sock.bind(path)
            self.env_value = path
        self.q: queue.Queue[str] = queue.Queue()
        self.messages: list[str] = []
        self._t = threading.Thread(target=self._read, daemon=True)
        self._t.start()

    def _read(self):
        while True:
            try:
                self.q.put(self.sock.recv(4096).decode())
            except OSError:
                return

    def recv(self, timeout: float) -> str | None:
        try:
            m = self.q.get(timeout=timeout) if timeout > 0 else self.q.get_nowait()
        except queue.Empty:
            return None
        self.messages.append(m)
        return m

    def wait_for(self, needle: str, timeout: float) -> str:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            m = self.recv(max(0.01, end - time.monotonic()))
            if m is not None and needle in m.split("\n"):
                return m
        raise AssertionError(f"{needle} not received; got {self.messages[-5:]}")

    def drain(self, settle: float = 0.2):
        while self.recv(settle) is not None:
            pass

    def close(self):
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()


def small_cfg():
    return Config.from_dict({"arena": {"eye_w": 32, "eye_h": 24}})


def test_notify_address_forms():
    assert notify_address("@sys/notify") == b"\0sys/notify"
    assert notify_address("/run/systemd/notify") == "/run/systemd/notify"
    assert notify_address("") is None and notify_address(None) is None
    assert notify_address("vsock:2:1234") is None


@pytest.mark.parametrize("abstract", [False, True])
def test_notifier_sends_datagrams(tmp_path, abstract):
    lis = Listener(tmp_path, abstract=abstract)
    n = Notifier(env={"NOTIFY_SOCKET": lis.env_value})
    assert n.send("READY=1", "STATUS=hello\nworld")
    assert lis.recv(2.0) == "READY=1\nSTATUS=hello world"  # a newline inside a value cannot split an assignment
    lis.close()
    assert not n.send("WATCHDOG=1")  # nobody listening any more: dropped, no exception
    assert n.dropped == 1
    assert not Notifier(env={}).send("READY=1")  # not under systemd: a no-op


def test_watchdog_interval_from_env():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": str(os.getpid())}) == 4.0
    assert watchdog_interval({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}) is None  # for another process
    assert watchdog_interval({}) is None and watchdog_interval({"WATCHDOG_USEC": "x"}) is None


def test_ready_watchdog_status_stopping_from_the_loop(tmp_path):
    lis = Listener(tmp_path)
    env = {"NOTIFY_SOCKET": lis.env_value, "WATCHDOG_USEC": "100000"}  # ping every 50 ms
    hook = ServiceHook(env=env, status_every_s=0.05)
    cfg = small_cfg()
    with Arena(cfg.arena) as body:
        Runner(cfg, body, seed=1, progress=False, hooks=[hook]).run(40)
    lis.drain()
    msgs = lis.messages
    assert msgs[0].startswith("READY=1\nSTATUS=step 0"), msgs[0]
    assert "STOPPING=1" in msgs[-2].split("\n") and msgs[-1].startswith("STATUS=stopped after 40 steps")
    assert hook.pings >= 2 and sum("WATCHDOG=1" in m.split("\n") for m in msgs) == hook.pings
    assert any(m.startswith("STATUS=step ") and "| hp " in m for m in msgs[1:-2]) or any("\nSTATUS=step" in m for m in msgs[1:])
    lis.close()


class HangingArena(Arena):
    """An arena whose act() blocks (like a stuck serial read) once `hang` is set."""

    def __init__(self, cfg):
        super().__init__(cfg)
        self.hang = threading.Event()
        self.hung = threading.Event()
        self.release = threading.Event()

    def act(self, action):
        if self.hang.is_set():
            self.hung.set()
            self.release.wait(60)
        return super().act(action)


def test_a_hung_control_loop_stops_the_watchdog_pings(tmp_path):
    lis = Listener(tmp_path)
    env = {"NOTIFY_SOCKET": lis.env_value, "WATCHDOG_USEC": "200000"}  # ping every 100 ms
    cfg = small_cfg()
    body = HangingArena(cfg.arena)
    runner = Runner(cfg, body, seed=1, progress=False, hooks=[ServiceHook(env=env, status_every_s=1e9)])
    t = threading.Thread(target=runner.run, daemon=True)
    t.start()
    try:
        lis.wait_for("READY=1", 60)
        for _ in range(3):  # the running loop pings
            lis.wait_for("WATCHDOG=1", 30)
        body.hang.set()
        assert body.hung.wait(30)
        lis.drain()  # a ping sent just before the hang may still be queued
        quiet = []
        end = time.monotonic() + 1.0  # 10 ping intervals
        while time.monotonic() < end:
            m = lis.recv(end - time.monotonic())
            if m is not None:
                quiet.append(m)
        assert not [m for m in quiet if "WATCHDOG=1" in m.split("\n")], quiet
    finally:
        runner.request_stop()
        body.release.set()
        t.join(60)
        lis.close()
    assert not t.is_alive()


def test_journal_priorities_and_stream_detection(tmp_path):
    f = JournalFormatter("%(name)s: %(message)s")
    rec = lambda lv, msg="m": logging.LogRecord("x", lv, __file__, 1, msg, None, None)  # noqa: E731
    assert f.format(rec(logging.INFO)) == "<6>x: m"
    assert f.format(rec(logging.WARNING)) == "<4>x: m"
    assert f.format(rec(logging.ERROR)) == "<3>x: m"
    assert f.format(rec(logging.DEBUG)) == "<7>x: m"
    assert f.format(rec(logging.INFO, "a\nb")) == "<6>x: a\n<6>b"  # every line keeps its level
    with open(tmp_path / "err", "w") as s:
        st = os.fstat(s.fileno())
        assert stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}, s)
        assert not stderr_is_journal({"JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino + 1}"}, s)  # inherited, not ours
        assert not stderr_is_journal({}, s)


def test_shipped_unit_is_the_rendered_default_and_has_what_the_robot_needs():
    shipped = (ROOT / "packaging" / "edge-runtime.service").read_text()
    assert shipped == render_unit(), "packaging/edge-runtime.service is stale: regenerate it from service.render_unit()"
    keys = [l.split("=", 1) for l in shipped.splitlines() if "=" in l and not l.startswith("#")]
    d = {}
    for k, v in keys:
        d.setdefault(k, []).append(v)
    assert d["Type"] == ["notify"] and d["Restart"] == ["on-failure"] and d["StateDirectory"] == ["edge-runtime"]
    assert d["WatchdogSec"] and d["TimeoutStopSec"] and d["SupplementaryGroups"] == ["dialout video"]
    assert "PrivateDevices" not in d
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-video4linux rw"} <= set(d["DeviceAllow"])
    assert d["ExecStart"][0].split()[1:4] == ["run", "--config", "/etc/edge-runtime/robot.toml"]


def _verify(unit_text: str, tmp_path) -> subprocess.CompletedProcess:
    d = tmp_path / "units"
    d.mkdir(exist_ok=True)
    (d / "edge-runtime.service").write_text(unit_text)
    return subprocess.run(["systemd-analyze", "verify", "--man=no", str(d / "edge-runtime.service")],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze missing: apt-get install systemd")
def test_systemd_analyze_verify_accepts_the_unit(tmp_path):
    cfg = tmp_path / "robot.toml"
    cfg.write_text("[rule]\nname = 'survival'\n")
    # the shipped text with this machine's executable (verify checks that ExecStart exists)
    unit = render_unit(find_executable(), str(cfg))
    p = _verify(unit, tmp_path)
    assert p.returncode == 0 and not (p.stdout + p.stderr).strip(), p.stdout + p.stderr
    # the check is real: a misspelt key (only a warning for systemd) and a missing binary are caught
    p = _verify(unit.replace("WatchdogSec=", "WatchdgSec="), tmp_path)
    assert "Unknown key" in p.stderr
    p = _verify(unit.replace(find_executable(), "/nonexistent/edge-runtime"), tmp_path)
    assert p.returncode != 0 and "not executable" in p.stderr


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=120, **kw)


def test_install_service_dry_run_and_write(tmp_path):
    cfg = tmp_path / "robot.toml"
    cfg.write_text("[arena]\nn_food = 3\n")
    p = run_cli("install-service", "--dry-run", "--config", str(cfg))
    assert p.returncode == 0, p.stderr
    assert f"run --config {cfg.resolve()} --run-dir run --continue --no-progress" in p.stdout and "Type=notify" in p.stdout
    p = run_cli("install-service", "--config", str(cfg), "--unit-dir", str(tmp_path / "sys"), "--watchdog", "12")
    assert p.returncode == 0, p.stderr
    assert "WatchdogSec=12s" in (tmp_path / "sys" / "edge-runtime.service").read_text()
    cfg.write_text("[arena]\nn_fod = 3\n")
    p = run_cli("install-service", "--dry-run", "--config", str(cfg))
    assert p.returncode == 2 and "arena.n_fod" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_sigterm_notifies_stopping_saves_and_exits_0(tmp_path):
    lis = Listener(tmp_path)
    run_dir = tmp_path / "run"
    err = open(tmp_path / "stderr", "w")
    st = os.fstat(err.fileno())
    env = {**os.environ, "NOTIFY_SOCKET": lis.env_value, "WATCHDOG_USEC": "2000000",
           "JOURNAL_STREAM": f"{st.st_dev}:{st.st_ino}"}
    p = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "run", "--sim", "--no-progress", "--run-dir", str(run_dir),
                          "--set", "arena.eye_w=32", "--set", "arena.eye_h=24"], env=env, stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        lis.wait_for("READY=1", 120)
        lis.wait_for("WATCHDOG=1", 30)
        t0 = time.monotonic()
        p.send_signal(signal.SIGTERM)
        out, _ = p.communicate(timeout=30)  # the unit's TimeoutStopSec
        took = time.monotonic() - t0
    finally:
        if p.poll() is None:
            p.kill()
        err.close()
    lis.drain()
    assert p.returncode == 0, (tmp_path / "stderr").read_text()
    assert any("STOPPING=1" in m.split("\n") for m in lis.messages)
    assert (run_dir / "weights.npz").exists() and (run_dir / "summary.json").exists()
    if "edge_runtime.checkpoint" in (tmp_path / "stderr").read_text():  # the flash store is in use: its stop save
        assert list((run_dir / "checkpoints").glob("ckpt-*.bin")), sorted(p.name for p in run_dir.rglob("*"))
    assert '"steps"' in out
    log_lines = [l for l in (tmp_path / "stderr").read_text().splitlines() if l]
    assert log_lines and all(l[:3] in ("<6>", "<4>", "<3>", "<7>", "<2>") for l in log_lines), log_lines[:5]
    assert took < 30
    lis.close()


def test_stopping_goes_out_at_the_request_not_after_the_final_save(tmp_path):
    """A slow final save (an SD card, a big model) must not delay STOPPING=1: systemd learns at once."""
    from edge_runtime.runtime import Hook

    class Slow(Hook):  # a step that takes a second (a serial read waiting for a link), and a slow final save
        def on_step(self, runner, sense, metrics):
            time.sleep(1.0)

        def on_stop(self, runner, summary):
            time.sleep(1.0)

    lis = Listener(tmp_path)
    try:
        with Arena(small_cfg().arena) as body:
            hook = ServiceHook(env={"NOTIFY_SOCKET": lis.env_value}, status_every_s=60)
            runner = Runner(small_cfg(), body, seed=0, progress=False, hooks=[Slow(), hook])
            t = threading.Thread(target=runner.run, daemon=True)
            t.start()
            lis.wait_for("READY=1", 30)
            time.sleep(0.3)  # inside the first slow step
            runner.request_stop()
            t_req = time.monotonic()
            m = lis.wait_for("STOPPING=1", 5)
            t_stopping = time.monotonic()
            assert "STATUS=stopping: final save" in m.split("\n")
            t.join(30)
            t_end = time.monotonic()
        # STOPPING at once, while the step is still running; then the rest of the step and the slow save
        assert t_stopping - t_req < 0.3 and t_end - t_stopping > 1.2
    finally:
        lis.close()
