"""The robot body over the real code path: virtual MCU behind a pty + replayed stereo video; and the CLI end to end."""
import json
import subprocess
import sys
import time

import pytest

from edge_runtime.config import Config, ConfigError
from hardware.camera import CameraConfig, make_replay_videos
from hardware.robot import McuConfig, RobotBody, RobotConfig, robot_configs
from hardware.virtual_mcu import VirtualMCU, VirtualMcuConfig
from test_hardware_link import wait_for


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_replay_videos(str(tmp_path_factory.mktemp("vid")), frames=12, size=(64, 48))


@pytest.fixture
def robot(videos):
    vm = VirtualMCU(VirtualMcuConfig(seed=2, bump_rate_hz=0.0, n_touch=4))
    port = vm.start()
    body = RobotBody(RobotConfig(control_hz=50, bump_damage=0.4, regen_per_s=0.0, revive="manual"),
                     CameraConfig(backend="replay", left=videos[0], right=videos[1]), McuConfig(port=port))
    yield body, vm
    body.close()
    vm.close()


def test_spec_matches_the_arena_heads_and_the_mcu(robot):
    body, _ = robot
    from sim_bridge.arena import ACTION_HEADS

    assert list(body.spec.action_heads.items()) == list(ACTION_HEADS.items())
    assert body.spec.touch_channels == 4 and body.spec.eye_shape == (48, 64)


def test_senses_flow_commands_arrive_and_bumps_hurt(robot):
    body, vm = robot
    s = body.reset()
    assert not s.dead and s.hp == 1.0 and 0.5 < s.energy <= 1.0
    assert s.left.shape == (48, 64, 3) and s.touch.shape == (4,)
    s2 = body.act({"drive": 2, "turn": 1})  # forward
    assert s2.frame_id > s.frame_id and s2.t > s.t
    assert wait_for(lambda: vm.stats.last_motor == (600, 600))
    body.act({"drive": 1, "turn": 0})  # spin left: right wheel forward
    assert wait_for(lambda: vm.stats.last_motor == (-400, 400))
    vm.bump(channel=2)
    hps = [body.act({"drive": 1, "turn": 1}) for _ in range(10)]
    assert min(x.hp for x in hps) == pytest.approx(0.6, abs=1e-6)
    assert max(x.touch[2] for x in hps) > 0.8
    assert body.counters["bumps"] == 1


def test_death_stops_motors_and_waits_for_revival(robot):
    body, vm = robot
    body.reset()
    body.act({"drive": 2, "turn": 1})
    assert wait_for(lambda: vm.left == 600)
    for _ in range(3):
        vm.bump()
        time.sleep(0.35)  # the bump lasts 300 ms: three separate events
    s = None
    for _ in range(50):
        s = body.act({"drive": 2, "turn": 1})
        if s.dead:
            break
    assert s.dead and s.hp == 0 and s.extra["cause"] == "injury"
    assert wait_for(lambda: vm.left == 0 and vm.dead)  # stopped, and the board knows it is dead
    with pytest.raises(RuntimeError):
        body.act({"drive": 2, "turn": 1})
    import threading

    threading.Timer(0.3, body.request_revive).start()  # another thread: a request, taken by the next poll
    s = body.respawn()
    assert not s.dead and s.hp == 1.0 and body.counts["revived"] == 1
    assert wait_for(lambda: not vm.dead)


def test_battery_death_and_button_revival(videos):
    vm = VirtualMCU(VirtualMcuConfig(seed=2, bump_rate_hz=0.0, revive_after_s=0.2))
    port = vm.start()
    body = RobotBody(RobotConfig(control_hz=50, critical_hold_s=0.1, battery_filter_s=0.0, revive="button"),
                     CameraConfig(backend="replay", left=videos[0], right=videos[1]), McuConfig(port=port))
    try:
        body.reset()
        vm.soc = 0.0  # flat battery
        s = None
        for _ in range(100):
            s = body.act({"drive": 1, "turn": 1})
            if s.dead:
                break
        assert s.dead and s.extra["cause"] == "battery" and body.counts["battery_deaths"] == 1
        s = body.respawn()  # the virtual MCU's "human" swaps the battery and presses the button
        assert not s.dead and s.energy > 0.5
    finally:
        body.close()
        vm.close()


def test_unplugged_cable_during_steps(robot):
    body, vm = robot
    body.reset()
    vm.unplug(0.3)
    senses = [body.act({"drive": 2, "turn": 1}) for _ in range(40)]
    assert body.link.stats.reconnects >= 1
    assert senses[-1].extra["link"] is True
    body.act({"drive": 2, "turn": 1})
    assert wait_for(lambda: vm.left == 600)


def test_config_sections_validated_naming_the_field():
    with pytest.raises(ConfigError, match="robot.bump_damage"):
        RobotConfig(bump_damage=2)
    with pytest.raises(ConfigError, match="robot.revive"):
        RobotConfig(revive="prayer")
    with pytest.raises(ConfigError, match="mcu.heartbeat_s"):
        McuConfig(port="virtual", heartbeat_s=1.0, silent_s=0.5)
    with pytest.raises(ConfigError, match="mcu.port: required"):
        McuConfig()
    with pytest.raises(ConfigError, match="robot.critcal_mv"):
        robot_configs(Config.from_dict({"robot": {"critcal_mv": 1}, "camera": {"left": "a", "right": "b"}}))
    with pytest.raises(ConfigError, match="camera"):
        robot_configs(Config.from_dict({"robot": {}}))
    # a robot config without [mcu] never falls back to the virtual board: it says what is missing
    with pytest.raises(ConfigError, match=r"mcu: section needed .*port = .virtual."):
        robot_configs(Config.from_dict({"robot": {}, "camera": {"left": "a", "right": "b"}}))


def run_cli(*args, timeout=240):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_cli_runs_the_virtual_robot_end_to_end(tmp_path):
    d = tmp_path / "run"
    rc, out, err = run_cli("run", "--config", "examples/virtual-robot.toml", "--steps", "12", "--run-dir", str(d),
                           "--no-progress", "--set", "robot.control_hz=0")
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 12
    spec = json.loads((d / "body_spec.json").read_text())
    assert spec["name"] == "Robot" and spec["touch_channels"] == 8
    lines = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 12 and "self_loss" in lines[-1]


def test_cli_virtual_mcu_prints_its_device_path():
    p = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "virtual-mcu", "--seed", "1"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        path = p.stdout.readline().strip()
        from hardware.mcu_link import McuLink

        with McuLink(path).start(wait_s=5) as link:
            assert link.hello.board == "virtual-mcu"
        p.stdin.write("unplug 0.1\nquit\n")
        p.stdin.flush()
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()


def test_closing_the_body_commands_stop(robot):
    body, vm = robot
    body.reset()
    body.act({"drive": 2, "turn": 1})
    assert wait_for(lambda: vm.left == 600)
    stops = vm.stats.stops
    body.close()
    assert wait_for(lambda: vm.stats.stops == stops + 1)
    assert vm.left == 0 and not vm.failsafe  # stopped by the host on exit, before the failsafe would


def test_a_stop_request_ends_the_wait_for_a_revive(robot):
    """systemctl stop of a dead robot must not hang until the stop timeout."""
    import threading

    body, vm = robot
    body.reset()
    for _ in range(3):
        vm.bump()
        time.sleep(0.35)
    s = None
    for _ in range(50):
        s = body.act({"drive": 1, "turn": 1})
        if s.dead:
            break
    assert s.dead
    threading.Timer(0.3, body.interrupt).start()
    t = time.monotonic()
    s = body.respawn()
    assert s.dead and body.counts["revived"] == 0  # still dead, motors stay stopped
    assert time.monotonic() - t < 5
    assert vm.left == 0 and vm.right == 0
