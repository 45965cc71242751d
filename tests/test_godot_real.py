"""The bundled Godot arena, run for real: Debian's godot3-runner under xvfb-run (llvmpipe renders the eyes).

Skipped only when godot3-runner or xvfb-run is missing (apt-get install -y godot3-runner xvfb).
Each test starts its own short-lived Godot (about a second) and stays well under the file's 90 s budget.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import time

import numpy as np
import pytest

from sim_bridge.godot_body import ARENA_PROJECT, GodotBody, GodotError, GodotWorld

pytestmark = pytest.mark.skipif(
    not (shutil.which("godot3-runner") and shutil.which("xvfb-run")),
    reason="needs Godot 3 and a virtual display: apt-get install -y godot3-runner xvfb")

FWD_LEFT = {"drive": 2, "turn": 0}
STILL = {"drive": 1, "turn": 1}


def diff(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_frames_are_real_change_with_motion_and_are_never_stale():
    with GodotBody.launch(port=0, seed=5) as b:
        s = b.reset(seed=5)
        assert s.left.shape == (48, 64, 3) and s.left.dtype == np.uint8
        assert s.left.std() > 10 and len(np.unique(s.left.reshape(-1, 3), axis=0)) > 8  # a rendered scene
        assert (s.left[0].mean(0) > s.left[-1].mean(0)).all()  # sky above, floor below: upright images
        assert diff(s.left, s.right) > 0  # two viewpoints a baseline apart
        prev, pos0 = s, s.extra["pos"]
        for _ in range(6):
            moved = b.act(FWD_LEFT)
            assert diff(prev.left, moved.left) > 1.0, "the eyes did not change while the robot turned"
            assert moved.frame_id == prev.frame_id + 1
            # staying still right after a move: a stale (one step late) frame would show the move only now
            still = b.act(STILL)
            assert diff(moved.left, still.left) < 0.25 * diff(prev.left, moved.left)
            prev = still
        assert prev.extra["pos"] != pos0 and prev.extra["action"] == STILL
        assert moved.extra["action"] == FWD_LEFT  # the scene echoes the action it received, by name
        assert not hasattr(prev, "reward") and "reward" not in prev.extra


def test_hex_and_binary_frames_carry_the_same_pixels():
    imgs, nbytes = {}, {}
    for fmt in ("hex", "binary"):
        with GodotWorld(port=0, seed=2, frames=fmt) as w:
            assert w.binary == (fmt == "binary")
            w.reset(seed=2)
            b0 = w.bytes_in
            imgs[fmt] = w.step({0: FWD_LEFT})[0]
            nbytes[fmt] = w.bytes_in - b0
    assert np.array_equal(imgs["hex"].left, imgs["binary"].left)
    assert np.array_equal(imgs["hex"].right, imgs["binary"].right)
    assert nbytes["binary"] < 0.6 * nbytes["hex"]


def test_two_agents_respawn_alone():
    with GodotWorld(port=0, n_agents=2, seed=1) as w:
        b0, b1 = w.bodies()
        s0 = b0.reset(seed=1)
        b1.reset()
        before = w.call("state")
        assert len(before) == 2 and before[0]["life"] == before[1]["life"] == 1
        r = b1.respawn()
        after = w.call("state")
        assert after[1]["life"] == 2 and after[0] == before[0]  # agent 0 untouched
        assert r.extra["agent"] == 1 and not r.dead
        s = w.step({0: FWD_LEFT, 1: {"drive": 0, "turn": 2}})
        assert s[0].extra["action"] == FWD_LEFT and s[1].extra["action"] == {"drive": 0, "turn": 2}
        assert diff(s0.left, s[0].left) > 1.0


def test_killed_godot_is_reported():
    b = GodotBody.launch(port=0)
    try:
        b.reset()
        b.act(FWD_LEFT)
        os.killpg(b.world.proc.pid, signal.SIGKILL)
        t0 = time.monotonic()
        with pytest.raises(GodotError, match=r"GodotBody\(godot_arena\): Godot closed the connection.*exited with code -9"):
            b.act(FWD_LEFT)
        assert time.monotonic() - t0 < 10
    finally:
        b.close()
    assert b.world.proc.poll() is not None


def test_cli_learns_against_godot_and_stops_it(tmp_path):
    from edge_runtime.cli import main

    run = tmp_path / "run"
    assert main(["run", "--body", "godot", "--godot-project", str(ARENA_PROJECT), "--steps", "25", "--no-progress",
                 "--run-dir", str(run), "--set", "godot.port=0", "--set", "runtime.action_repeat=2"]) == 0
    spec = json.loads((run / "body_spec.json").read_text())
    assert spec["action_heads"] == {"drive": 3, "turn": 3} and spec["eye_shape"] == [48, 64]
    rows = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 25 and rows[-1]["body_step"] >= 25


def test_runner_stops_godot_cleanly():
    from edge_runtime.config import Config
    from edge_runtime.runtime import Runner

    b = GodotBody.launch(port=0)
    with b:
        summary = Runner(Config(), b, seed=0, progress=False).run(5)
    assert summary["steps"] == 5
    assert b.world.proc.wait(5) == 0  # Godot quit on the close message, not killed


def test_godot_rl_client_drives_the_arena():
    """godot-rl 0.8.2's own GodotEnv (pip install --no-deps godot-rl==0.8.2) as an independent client."""
    godot_env = pytest.importorskip("godot_rl.core.godot_env", reason="pip install --no-deps godot-rl==0.8.2")
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    cmd = ["xvfb-run", "-a", "-s", "-screen 0 640x480x24", shutil.which("godot3-runner"), "--path", str(ARENA_PROJECT),
           "--audio-driver", "Dummy", f"--port={port}", "--connect_timeout=30"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        env = godot_env.GodotEnv(port=port)  # listens, as when pressing Play in the editor
        assert env.num_envs == 1 and set(env.observation_space.spaces) >= {"camera_2d_left", "camera_2d_right", "touch"}
        obs, _ = env.reset()
        a0 = obs[0]["camera_2d_left"]
        assert a0.shape == (48, 64, 3) and a0.std() > 10
        obs, _score, done, _, info = env.step([np.array([2]), np.array([0])])  # drive=2, turn=0 by head name
        assert info[0]["action"] == {"drive": 2, "turn": 0} and done == [False]
        assert diff(a0, obs[0]["camera_2d_left"]) > 1.0
        env.close()
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def test_the_bundled_arena_robot_can_hold_its_motors():
    from edge_runtime.body import MotorControl

    with GodotBody.launch(port=0, seed=5) as b:
        assert isinstance(b, MotorControl)  # drive/turn heads: the bridge knows what "still" is
        b.reset(seed=5)
        b.stop_motors()
        s0 = b.act(FWD_LEFT)
        held = [b.act(FWD_LEFT) for _ in range(4)]
        assert all(s.extra["action"] == STILL and s.extra["pos"] == s0.extra["pos"] for s in held)
        b.release_motors()
        moved = [b.act(FWD_LEFT) for _ in range(3)]
        assert moved[-1].extra["action"] == FWD_LEFT and moved[-1].extra["pos"] != s0.extra["pos"]
