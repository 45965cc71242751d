"""The robot as a service on an ordinary bad day, in one process: real virtual MCU on a pty, replayed stereo video
through OpenCV, the console on a pty, the notify protocol on a datagram socket.

A dead robot waiting for its button is not a hung service: the console answers, the watchdog is fed, STATUS says
why, a console `revive` or a stop request ends the wait.
"""
import json
import threading
import time

import pytest

from edge_runtime.config import Config, ConsoleConfig
from edge_runtime.console import Console, ConsoleHook
from edge_runtime.runtime import Runner
from edge_runtime.service import ServiceHook
from hardware.camera import CameraConfig, make_replay_videos
from hardware.robot import McuConfig, RobotBody, RobotConfig
from hardware.virtual_mcu import VirtualMCU, VirtualMcuConfig
from test_console import PROMPT, Term
from test_hardware_link import wait_for
from test_service import Listener


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_replay_videos(str(tmp_path_factory.mktemp("vid")), frames=12, size=(64, 48))


class LiveRobot:
    def __init__(self, tmp_path, videos, watchdog_s=1.0):
        self.vm = VirtualMCU(VirtualMcuConfig(seed=4, bump_rate_hz=0.0, revive_after_s=0.0, n_touch=4))
        port = self.vm.start()
        self.body = RobotBody(RobotConfig(control_hz=40, bump_damage=0.6, spike_damage_per_s=0.0, regen_per_s=0.0,
                                          revive="button"),
                              CameraConfig(backend="replay", left=videos[0], right=videos[1]), McuConfig(port=port))
        self.cfg = Config.from_dict({"runtime": {"action_repeat": 1}})
        self.term = Term()
        self.listener = Listener(tmp_path)
        env = {"NOTIFY_SOCKET": self.listener.env_value, "WATCHDOG_USEC": str(int(watchdog_s * 1e6))}
        self.service = ServiceHook(env=env, status_every_s=0.5)
        self.console = ConsoleHook(Console(self.term.path, ConsoleConfig(writable=True)))
        self.runner = Runner(self.cfg, self.body, seed=1, progress=False, hooks=[self.console, self.service],
                             run_dir=tmp_path / "run")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.summary = None

    def _run(self):
        self.summary = self.runner.run()

    def __enter__(self):
        self.thread.start()
        self.term.read_until(PROMPT)
        self.listener.wait_for("READY=1", 30)
        return self

    def kill_by_bumps(self):
        for _ in range(2):
            self.vm.bump()
            time.sleep(0.4)  # a bump lasts 300 ms: two separate events
        assert wait_for(lambda: self.body.dead, 10)

    def __exit__(self, *exc):
        self.runner.request_stop()
        self.thread.join(30)
        assert not self.thread.is_alive()
        self.term.close()
        self.body.close()
        self.vm.close()
        self.listener.close()


def pings(messages):
    return [t for t, m in messages if "WATCHDOG=1" in m.split("\n")]


def test_a_dead_robot_waiting_for_its_button_stays_a_live_service(tmp_path, videos):
    with LiveRobot(tmp_path, videos) as live:
        t, lis = live.term, live.listener
        live.kill_by_bumps()
        t0 = time.monotonic()
        seen = []
        while time.monotonic() - t0 < 3.5:  # well past the 1 s watchdog: a blocked loop would miss pings
            m = lis.recv(0.1)
            if m is not None:
                seen.append((time.monotonic(), m))
        ts = [t0] + pings(seen)
        assert len(ts) >= 6 and max(b - a for a, b in zip(ts, ts[1:])) < 1.0
        assert any(m.startswith("STATUS=dead: waiting for button or console revive") for _, m in seen)
        st = t.cmd("status")
        assert "dead: waiting for button or console revive" in st
        assert live.vm.left == 0 and live.vm.dead  # motors stopped, the board knows
        steps = live.runner.rule.steps
        assert t.cmd("revive").startswith("revived: hp 1.00 energy ")
        assert wait_for(lambda: live.runner.rule.steps > steps + 3, 10)
        assert not live.vm.dead and len(live.runner.lifespans) == 1
        # held motors: the brain still acts and learns, the wheels stay still
        assert t.cmd("motors stop").startswith("motors stopped")
        time.sleep(0.3)
        assert live.vm.left == 0 and live.vm.right == 0
        assert t.cmd("motors go") == "motors released"
        # the button revives too (the board's human); then a stop ends a wait at once
        live.kill_by_bumps()
        live.vm.press_button()
        assert wait_for(lambda: not live.body.dead, 5) and live.body.counts["revived"] == 2
        live.kill_by_bumps()
        time.sleep(0.3)
        t_stop = time.monotonic()
        live.runner.request_stop()
        m = lis.wait_for("STOPPING=1", 2)
        assert "STATUS=stopping: final save" in m.split("\n")  # at the request, not after the save
        live.thread.join(10)
        assert not live.thread.is_alive() and time.monotonic() - t_stop < 5
    s = json.loads((tmp_path / "run" / "summary.json").read_text())
    body = s["body"]
    assert body["deaths"] == 3 and body["injury_deaths"] == 3 and body["revived"] == 2
    # two bumps per kill, the second fatal: every board bump felt once, none invented
    assert body["bumps"] == body["mcu_bumps"] == live.vm.stats.board_bumps == 6
    lives = [json.loads(x) for x in (tmp_path / "run" / "lives.jsonl").read_text().splitlines()]
    assert [x["cause"] for x in lives] == ["injury"] * 3
