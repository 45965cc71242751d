"""The learning harness on any body: eval and bench survival take --body; a world that changes (bench adapt)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from edge_runtime.adapt import WorldChangeHook
from edge_runtime.body import Changeable, UncertainMortality
from edge_runtime.config import Config
from edge_runtime.runtime import Runner
from sim_bridge.arena import WORLD_CHANGES, Arena, ArenaConfig
from sim_bridge.gym_body import GymBody


def run(*args, timeout=600):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr


def test_bodies_say_what_doing_nothing_is_and_how_many_steps_a_decision_holds():
    a = Arena(ArenaConfig())
    assert a.spec.still == (1, 1) and a.spec.action_repeat == 4
    cfg = Config()
    assert cfg.runtime.action_repeat == 0 and cfg.runtime.repeat_for(a.spec) == 4  # 0: the body's own
    assert Config.from_dict({"runtime": {"action_repeat": 2}}).runtime.repeat_for(a.spec) == 2
    with GymBody.make("CartPole-v1") as cart:  # left or right: every action moves the cart
        assert cart.spec.still is None and cart.spec.action_repeat == 1
    with GymBody.make("Pendulum-v1") as pend:  # a symmetric torque: zero is its middle choice
        assert pend.spec.still == (1,) and pend.spec.action_repeat == 1
    with GymBody.make("EdgeArena-v0") as ea:  # the arena's robot through gymnasium: its heads by name
        assert list(ea.spec.action_heads) == ["drive", "turn"] and ea.spec.still == (1, 1) and ea.spec.action_repeat == 4


def test_a_world_that_only_truncates_cannot_kill_and_is_refused():
    with GymBody.make("Pendulum-v1") as pend:
        assert isinstance(pend, UncertainMortality)
        why = pend.why_it_cannot_die(probe_steps=600)
        assert "only by truncation" in why and "no termination" in why
    with GymBody.make("CartPole-v1") as cart:
        assert cart.why_it_cannot_die() is None
    rc, out, err = run("eval", "--body", "gym:Pendulum-v1", "--policy", "random", "--lives", "2")
    assert rc == 2 and "cannot evaluate in GymBody(Pendulum-v1)" in err and "only by truncation" in err
    assert len(err.strip().splitlines()) == 1


def test_eval_on_a_gym_body_counts_body_steps_and_has_no_invented_stationary():
    rc, out, err = run("eval", "--body", "gym:CartPole-v1", "--policy", "random", "--lives", "5", "--seed", "3", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["action_repeat"] == 1 and r["lives"] == 5 and 5 <= r["median_lifespan"] < 200 and r["deaths"] == 5
    rc, out, err = run("eval", "--body", "gym:CartPole-v1", "--policy", "stationary", "--lives", "2")
    assert rc == 2 and "names no do-nothing action" in err


def test_bench_survival_on_a_gym_body(tmp_path):
    rc, out, err = run("bench", "survival", "--body", "gym:CartPole-v1", "--seeds", "1", "--steps", "30", "--lives", "3",
                       "--cap", "200", "--jobs", "2", "--out", str(tmp_path), "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["body"] == "gym:CartPole-v1" and r["baselines"] == ["random"] and r["action_repeat"] == 1
    assert {x["policy"] for x in r["records"]} >= {"random"} and not any(x["policy"] == "stationary" for x in r["records"])
    assert "stationary: n/a" in (tmp_path / "table.txt").read_text()
    assert all(x["action_repeat"] == 1 for x in r["records"])


@pytest.mark.parametrize("name", sorted(WORLD_CHANGES))
def test_the_arena_changes_its_world_in_place(name):
    a = Arena(ArenaConfig())
    assert isinstance(a, Changeable) and name in a.world_changes
    s = a.reset(seed=4)
    before = s.left.copy()
    a.change_world(name)
    s2 = a.reset(seed=4)  # the same world from the same seed, changed
    c0, c1 = ArenaConfig(), a.cfg
    if name == "swap-colours":
        assert (c1.food_color, c1.hazard_color) == (c0.hazard_color, c0.food_color)
        # food right in front of the robot now looks like a hazard (red), where it looked green before
        b = Arena(ArenaConfig())
        for arena in (b, a):
            arena.reset(seed=4)
            arena.food[0] = arena.pos + 0.8 * np.array([np.cos(arena.heading), np.sin(arena.heading)])
        px = [arena.render_eyes()[0][c0.eye_h // 2 + 2, c0.eye_w // 2].astype(int) for arena in (b, a)]
        assert px[0][1] > 2 * px[0][0] and px[1][0] > 2 * px[1][1]  # green before, red after
    elif name == "fast-hazards":
        p0 = a.hazards[: c1.moving_hazards].copy()
        a.act((1, 1))
        step = np.hypot(*(a.hazards[: c1.moving_hazards] - p0).T)
        assert np.all(step > 2.5 * c0.hazard_speed) and np.all(step <= 3 * c0.hazard_speed + 1e-9)
    else:  # dark: the sky (the top row, above every object) is half as bright
        assert np.allclose(s2.left[0].astype(int), (before[0].astype(int) // 2), atol=1)
    with pytest.raises(ValueError, match="no world change 'flood'"):
        a.change_world("flood")


def test_the_hook_changes_the_world_under_a_learning_brain_and_saves_brains(tmp_path):
    body = Arena(ArenaConfig())
    hook = WorldChangeHook(tmp_path, "swap-colours", change_at=6, every=3, total=12)
    runner = Runner(Config(), body, seed=1, run_dir=tmp_path / "run", progress=False, hooks=[hook])
    runner.run(12)
    assert body.cfg.food_color == ArenaConfig().hazard_color  # the same body, changed mid-run
    assert sorted(hook.saved) == [0, 3, 6] and all(Path(p).exists() for p in hook.saved.values())
    assert {Path(p).name for p in hook.saved.values()} == {f"brain-b{b}.npz" for b in (0, 3, 6)}  # the default learner


def test_bench_adapt_tiny(tmp_path):
    rc, out, err = run("bench", "adapt", "--change", "dark", "--seeds", "1", "--steps-a", "20", "--steps-b", "20",
                       "--eval-every", "10", "--lives", "2", "--cap", "200", "--jobs", "2", "--out", str(tmp_path), "--json")
    assert rc == 0, err
    r = json.loads(out)
    got = {(x["who"], x["b_steps"]) for x in r["records"]}
    assert got == {("A-brain", 0), ("continuing", 10), ("continuing", 20), ("fresh", 10), ("fresh", 20),
                   ("random", None), ("stationary", None)}
    assert all(x["world"] == "B" for x in r["records"]) and r["verdict"]["seeds"] == 1
    assert "continuing learner after 20 steps in B" in (tmp_path / "table.txt").read_text()
    rc, out, err = run("bench", "adapt", "--change", "flood", "--seeds", "1", "--steps-a", "5", "--steps-b", "5")
    assert rc == 2 and "no change 'flood'" in err


@pytest.mark.skipif(not (__import__("shutil").which("godot3-runner") and __import__("shutil").which("xvfb-run")),
                    reason="needs godot3-runner and xvfb-run (scripts/test installs them)")
def test_eval_in_the_godot_world():
    rc, out, err = run("eval", "--body", "godot", "--policy", "stationary", "--lives", "2", "--cap", "200", "--seed", "1",
                       "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["action_repeat"] == 4 and r["lives"] == 2 and r["body_steps"] == sum(r["lifespans"])
