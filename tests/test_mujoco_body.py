"""A real MuJoCo physics world as a body (gymnasium's Hopper-v5): torques from three choices per joint, falling
over is death, the env's reward terms stay at the bridge. Needs the `mujoco` extra (scripts/test installs it)."""
import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("mujoco", reason="the mujoco extra is not installed (pip install -e '.[mujoco]')")

from sim_bridge.gym_body import GymBody  # noqa: E402


def test_hopper_body_spec_torques_and_still():
    with GymBody.make("Hopper-v5") as hop:
        spec = hop.spec
        assert list(spec.action_heads.values()) == [3, 3, 3] and spec.touch_channels == 11
        assert spec.still == (1, 1, 1) and spec.action_repeat == 1  # zero torque on every joint; a step is a decision
        s = hop.reset(seed=5)
        assert not s.left.any() and not s.right.any()  # no camera asked for: black eyes, the joints go to touch
        assert s.touch.shape == (11,) and np.isfinite(s.touch).all()
        s = hop.act((0, 1, 2))
        np.testing.assert_allclose(hop.env.unwrapped.data.ctrl, [-1.0, 0.0, 1.0])  # the joints' full range
        assert not any("reward" in k for k in s.extra)  # Hopper's info carries reward_forward/ctrl/survive
        assert "x_position" in s.extra


def test_hopper_falls_when_it_does_nothing_and_that_is_death():
    with GymBody.make("Hopper-v5") as hop:
        assert hop.why_it_cannot_die() is None
        s = hop.reset(seed=7)
        n = 0
        while not s.dead and n < 1000:
            s = hop.act(hop.spec.still)
            n += 1
        assert s.dead and 50 < n < 1000 and hop.truncations == 0  # it topples (about 140 steps), no time limit reached
        with pytest.raises(RuntimeError, match="dead body"):
            hop.act(hop.spec.still)


def test_bench_survival_on_hopper(tmp_path):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "bench", "survival", "--body", "gym:Hopper-v5",
                        "--seeds", "1", "--steps", "60", "--lives", "2", "--cap", "300", "--jobs", "2",
                        "--out", str(tmp_path), "--json"], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["body"] == "gym:Hopper-v5" and r["baselines"] == ["random", "stationary"]
    pols = {x["policy"] for x in r["records"]}
    assert {"random", "stationary"} <= pols and any(x not in ("random", "stationary") for x in pols)
    for x in r["records"]:
        assert x["lives"] == 2 and x["action_repeat"] == 1 and 0 < x["median_lifespan"] <= 300
