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


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_bench_peer_runs_both_learners_and_reports_per_seed(tmp_path, backend):
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "bench", "peer", "--peer", "ppo", "--seeds", "1",
                        "--body-steps", "300", "--lives", "2", "--cap", "200", "--jobs", "2", "--ppo-n-steps", "64",
                        "--set", f"model.backend={backend}", "--out", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    learned = {x["learner"]: x for x in res["learning"]}
    # model.backend = numpy: our learner's process never loads torch (its peak RSS is numpy's and the runtime's)
    assert learned["survival"]["backend"] == backend and learned["survival"]["torch_imported"] == (backend == "torch")
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


def test_a_peer_bench_dir_has_a_report(tmp_path):
    """(edge-runtime report reads bench peer's results.json like the other benches', learning figures included)"""
    from edge_runtime.report import report

    res = {"peer": "ppo", "body": "arena", "seeds": [1], "steps": None, "body_steps": 300, "lives": 2, "cap": 200,
           "baselines": ["random"], "wall_s": 1.0,
           "verdict": {"seeds_ours_at_least_ppo": 1, "seeds_meeting_goal": 0, "seeds": 1, "per_seed": {}},
           "records": [{"seed": 1, "policy": p, "label": p, "mode": "sample", "median_lifespan": m, "p25": m, "p75": m,
                        "censored": 0, "lives": 2, "deaths_per_10k": 1.0, "lifespans": [m, m], "learn_peak_rss_mb": rss,
                        "params": 1000} for p, m, rss in (("survival", 300, 280.0), ("ppo", 200, 400.0))]}
    (tmp_path / "results.json").write_text(json.dumps(res))
    out = report(tmp_path)
    html = (tmp_path / "report.html").read_text()
    assert out["kind"] == "bench-peer" and "learning peak RSS MB" in html and "ours &gt;= PPO" in html


def test_the_learning_path_never_imports_the_peer():
    """PPO and its reward live in the benchmark: a learning run imports neither stable-baselines3 nor the peer."""
    code = ("import sys, torch; from edge_runtime.config import Config; from edge_runtime.runtime import Runner; "
            "from edge_runtime.bodies import make_body\n"
            "with make_body(Config(), 'arena') as b: Runner(Config(), b, progress=False).run(3)\n"
            "print(sorted(m for m in sys.modules if m.startswith(('stable_baselines3', 'sim_bridge.peer_bench'))))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "[]"
