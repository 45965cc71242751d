"""`bench peer --peer ppo`: stable-baselines3 PPO beside our rule, for a few hundred body steps (the figures of
the README come from the full command)."""
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import sim_bridge  # noqa: F401  (registers EdgeArena-v0)
from edge_runtime.config import Config
from sim_bridge.arena import ArenaConfig
from sim_bridge.peer_bench import survival_wrapper

pytest.importorskip("stable_baselines3", reason="pip install -e '.[peers]'")


def test_the_survival_reward_pays_each_body_step_alive_and_repeats_as_we_do():
    cfg = Config()
    env = survival_wrapper(gym.make("EdgeArena-v0", config=ArenaConfig(n_hazards=8, hazard_damage=0.4)), 4,
                           cfg.runtime.event_threshold)
    env.reset(seed=3)
    total, rewards, died = 0, [], False
    for _ in range(3000):
        before = env.body_steps
        obs, r, term, trunc, info = env.step(np.array([2, 1]))  # full speed ahead: it will hit things and die
        n = env.body_steps - before
        assert 1 <= n <= 4 and r == (n - 1 if term else n)
        rewards.append(r)
        total += n
        if term:
            died = True
            break
    assert died and env.deaths == 1 and total == env.body_steps


def test_bench_peer_runs_both_learners_and_reports_per_seed(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "bench", "peer", "--peer", "ppo", "--seeds", "1",
                        "--body-steps", "300", "--lives", "2", "--cap", "200", "--jobs", "2", "--ppo-n-steps", "64",
                        "--out", str(tmp_path), "--json"], capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    learned = {x["learner"]: x for x in res["learning"]}
    for who in ("survival", "ppo"):  # the same body-step budget, counted, each learner in its own process
        assert 300 <= learned[who]["learn_body_steps"] <= 303
        assert learned[who]["learn_peak_rss_mb"] > 50 and learned[who]["params"] > 10_000
    assert learned["ppo"]["ppo"] == {"n_steps": 64, "learning_rate": 3e-4, "ent_coef": 0.0}
    got = {(x["policy"], x["mode"]) for x in res["records"]}
    assert got == {("survival", "sample"), ("survival", "greedy"), ("ppo", "sample"), ("ppo", "greedy"),
                   ("random", "sample"), ("stationary", "sample")}
    assert all(x["eval_seed"] == 11000 for x in res["records"])  # bench survival's evaluation worlds for seed 1
    v = res["verdict"]["per_seed"]["1"]
    assert v["rss_ratio"] == pytest.approx(v["survival_peak_rss_mb"] / v["ppo_peak_rss_mb"], abs=1e-3)
    assert (tmp_path / "table.txt").is_file() and (tmp_path / "ppo-s1.zip").is_file()


def test_only_peer_needs_a_budget(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "bench", "peer", "--only-peer", "--seeds", "1",
                        "--out", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--body-steps" in r.stderr
