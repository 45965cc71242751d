"""Populations: agent i of a batched population is the lone `survival` rule, a death rolls back that agent only,
selection reads survival alone and logs its lineage, the worlds' process changes nothing an agent does, Ray
groups on a local cluster do what one process does, and the benchmark prints its contract."""
import copy
import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch

from edge_runtime.acting import Feeling, act_repeat
from edge_runtime.bodies import make_body
from edge_runtime.config import Config
from edge_runtime.population.rule import PopulationSurvival
from edge_runtime.population.runner import Population
from edge_runtime.population.selection import Selection, km_median
from edge_runtime.population.worlds import WorldProcess
from edge_runtime.rules import build
from edge_runtime.senses import SenseEncoder


def rel_diff(a, b) -> float:
    """Largest difference relative to the array's largest magnitude, that magnitude floored at 0.01: a bias
    that starts at zero (1e-4 after a few steps) would otherwise turn float32 rounding into a 'difference'.
    Torch tensors or numpy arrays (the numpy learner's population)."""
    a, b = (np.asarray(x.detach() if isinstance(x, torch.Tensor) else x, dtype=np.float64) for x in (a, b))
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-2))


def config(backend: str) -> Config:
    """The default config on a named learner (the default, auto, is numpy's for these)."""
    return Config.from_dict({"model": {"backend": backend}})


def test_each_agent_takes_the_lone_rules_steps_and_a_death_rolls_back_only_that_agent():
    """3 agents (seeds 10, 11, 12) in real arenas beside 3 lone rules fed the same senses and feelings; agent 1
    is also told it died at steps 50 and 97 (a strong aversive update and a rollback, for it alone), in a setback."""
    cfg = Config.from_dict({})
    n, seed, steps = 3, 10, 120
    bodies = [make_body(cfg) for _ in range(n)]
    spec = bodies[0].spec
    enc = SenseEncoder(spec, cfg.model.input_hw)
    pop = PopulationSurvival(spec, cfg.model, copy.deepcopy(cfg.rule), n, seed)
    lone = [build(spec, cfg.model, copy.deepcopy(cfg.rule), seed + i) for i in range(n)]
    lone_p = [dict(r.brain.named_parameters()) for r in lone]
    for i in range(n):
        assert all(torch.equal(lone_p[i][k], v[i]) for k, v in pop.brain.p.items()), f"agent {i} starts unlike its lone twin"
    # agent 1 has lived long lives and lately short ones: a setback (its entropy target raised, and at each death
    # both towers forget part of the way back to their birth weights), in the population as in its lone twin
    for sb in (pop.setbacks[1], lone[1].setback):
        sb.load({"life_len": 0, "lifespans": [400, 40, 40, 40, 40], "best": 400.0})

    def encode(senses):
        e = [enc(s) for s in senses]
        return torch.cat([x[0] for x in e]), torch.cat([x[1] for x in e])

    senses = [b.reset(seed=seed + i) for i, b in enumerate(bodies)]
    eyes, bv = encode(senses)
    worst = [0.0] * n
    deaths = [0] * n
    for t in range(steps):
        acts = pop.decide(eyes, bv)
        for i in range(n):
            assert lone[i].decide(eyes[i:i + 1], bv[i:i + 1]) == acts[i], f"step {t}: agent {i} acts unlike its lone twin"
        feels = []
        for i in range(n):
            senses[i], f = act_repeat(bodies[i], acts[i], senses[i], cfg.runtime.repeat_for(spec), cfg.runtime.event_threshold)
            if i == 1 and t in (50, 97):
                f = Feeling(f.d_hp - 0.5, f.d_energy, True, f.body_steps)
            feels.append(f)
        eyes, bv = encode(senses)
        ms = pop.learn(feels, eyes, bv)
        for i in range(n):
            ml = lone[i].learn(feels[i], eyes[i:i + 1], bv[i:i + 1])
            assert math.isclose(ms[i]["td_error"], ml["td_error"], rel_tol=1e-3, abs_tol=1e-5), (t, i)
            if feels[i].dead:
                deaths[i] += 1
                pop.new_life(i)
                lone[i].new_life()
                if senses[i].dead:
                    senses[i] = bodies[i].respawn()
        eyes, bv = encode(senses)
        for i in range(n):
            worst[i] = max(worst[i], max(rel_diff(v[i], lone_p[i][k]) for k, v in pop.brain.p.items()))
    assert deaths[1] >= 2
    assert max(worst) < 1e-4, worst
    assert [int(x) for x in pop.rollbacks] == [r.rollbacks for r in lone]
    assert pop.rollbacks[1] >= 2 and [int(x) for x in pop.steps] == [r.steps for r in lone]
    for i in range(n):
        np.testing.assert_allclose(pop.log_beta[i], lone[i].log_beta, rtol=1e-4)
        assert pop.setbacks[i].state() == lone[i].setback.state()
    assert pop.setbacks[1]() > 0.5 and pop.setbacks[0]() == 0.0


def test_kaplan_meier_median_counts_the_current_life_as_censored():
    assert km_median([10, 20, 30], [False] * 3) == 20
    assert km_median([10, 100], [False, True]) == 10  # half die by 10
    assert km_median([5], [True]) == 5  # never died: at least its current life
    assert km_median([10, 300, 400], [False, True, True]) == 400  # half still going: beyond the longest seen
    assert km_median([10, 20, 5], [False, False, True]) == 10  # the censored 5 leaves the risk set before 10
    sel = Selection("pbt", window=2)
    assert sel.score([1, 2, 300, 400], 50) == 300  # only the last 2 lives and the current one count


def test_selection_replaces_the_worst_with_better_agents_only():
    rng = np.random.default_rng(0)
    scores = [10.0, 500.0, 20.0, 400.0, 30.0, 300.0, 40.0, 200.0]
    for method in ("pbt", "tournament"):
        plan = Selection(method, fraction=0.25).plan(scores, rng)
        assert sorted(c for c, _ in plan) == [0, 2]  # the 2 lowest of 8
        assert all(scores[p] > scores[c] for c, p in plan)
        if method == "pbt":
            assert all(p in (1, 3) for _, p in plan)  # from the top quarter
    assert Selection("none").plan(scores, rng) == []
    assert Selection("pbt").plan([50.0, 50.0], rng) == []  # nobody worse: nobody replaced
    with pytest.raises(ValueError, match="--select"):
        Selection("evolve")


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_a_copy_takes_the_parents_state_perturbed(tmp_path, backend):
    pop = Population(config(backend), 3, seed=4, worlds="inline", selection=Selection("pbt", sigma=0.0),
                     metrics_every=0)
    try:
        assert pop.backend == backend
        pop.run(12)
        info = pop.adopt(0, pop.export_agent(2), perturb_seed=1)
        for k, v in pop.state_dict_of(2).items():
            assert np.array_equal(np.asarray(pop.state_dict_of(0)[k]), np.asarray(v)), k  # sigma 0: copied exactly
        assert info["lr_factor"] in (0.8, 1.25) and 0 < info["lr_min"] < info["lr_max"] <= 1.0
        n_params = sum(np.asarray(v).size for k, v in pop.state_dict_of(2).items() if not k.startswith("eye_norm"))
        assert info["bytes"] > 4 * 2 * n_params  # weights and traces
        pop.selection.sigma = 0.05
        pop.adopt(1, pop.export_agent(2), perturb_seed=2)
        d = [rel_diff(pop.state_dict_of(1)[k], v) for k, v in pop.state_dict_of(2).items() if np.asarray(v).size > 1]
        assert 0 < max(d) < 1.0
        pop.run(5)  # the copies keep learning
    finally:
        pop.close()


def run_cli(*args):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=900)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.parametrize("backend", ["auto", "torch"])
def test_population_command_writes_lives_lineage_and_weights_an_eval_reads(tmp_path, backend):
    d = tmp_path / "pop"
    rc, out, err = run_cli("population", "--size", "4", "--steps", "130", "--seed", "0", "--select", "pbt",
                           "--select-every", "10", "--worlds", "process", "--run-dir", str(d), "--json",
                           "--set", f"model.backend={backend}")
    assert rc == 0, err
    s = json.loads(out.strip().splitlines()[-1])
    assert s["backend"] == {"auto": "numpy", "torch": "torch"}[backend]
    ext = {"numpy": "npz", "torch": "pt"}[s["backend"]]
    assert all((d / "agents" / f"{a:02d}" / f"weights.{ext}").exists() for a in range(4))
    assert s["size"] == 4 and s["steps"] == 130 and s["agent_decisions"] == 520 and s["worlds"] == "process"
    assert s["rounds"] == 13 and len(s["agents"]) == 4 and s["agent_decisions_per_s"] > 0
    for f in ("config.toml", "body_spec.json", "run.json", "lives.jsonl", "metrics.jsonl", "lineage.jsonl", "summary.json"):
        assert (d / f).exists(), f
    lives = [json.loads(x) for x in (d / "lives.jsonl").read_text().splitlines()]
    assert lives and {"agent", "life", "length", "step", "body_step"} <= set(lives[0])
    assert sum(a["lives_completed"] for a in s["agents"]) == len(lives) == s["lives_completed"]
    lineage = [json.loads(x) for x in (d / "lineage.jsonl").read_text().splitlines()]
    assert len(lineage) == s["replacements"] >= 1
    for rec in lineage:
        assert rec["child"] != rec["parent"] and "recent survival" in rec["why"]
        assert rec["parent_score"] > rec["child_score"]
    metrics = [json.loads(x) for x in (d / "metrics.jsonl").read_text().splitlines()]
    assert {m["agent"] for m in metrics} == {0, 1, 2, 3} and "td_error" in metrics[0]
    rc, out, err = run_cli("eval", "--policy", str(d / "agents" / f"{s['best_agent']:02d}"), "--lives", "2",
                           "--cap", "300", "--seed", "5", "--json")
    assert rc == 0, err
    assert "median" in out


def test_population_command_refuses_bad_arguments():
    rc, _, err = run_cli("population", "--size", "0", "--steps", "5")
    assert rc == 2 and "--size" in err
    rc, _, err = run_cli("population", "--size", "2", "--steps", "5", "--select-fraction", "0.9")
    assert rc == 2 and "--select-fraction" in err
    rc, _, err = run_cli("population", "--size", "2", "--steps", "5", "--ray", "local", "--groups", "3")
    assert rc == 2 and "--groups" in err
    rc, _, err = run_cli("population", "--size", "2", "--steps", "5", "--set", "model.towers=shared")
    assert rc == 2 and "model.towers = shared" in err


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_the_worlds_process_changes_nothing_an_agent_does(tmp_path, backend):
    """Pipelined halves with the worlds in their own process, against one batch with the worlds inline."""
    out = {}
    for worlds in ("process", "inline"):
        pop = Population(config(backend), 4, seed=2, worlds=worlds, run_dir=tmp_path / worlds, metrics_every=0)
        try:
            pop.run(50)
            out[worlds] = ([pop.state_dict_of(a) for a in range(4)], [list(lv) for lv in pop.lives],
                           pop.body_steps.tolist())
        finally:
            pop.close()
    assert out["process"][1:] == out["inline"][1:]
    for a in range(4):
        for k, v in out["inline"][0][a].items():
            assert rel_diff(out["process"][0][a][k], v) < 1e-4, (a, k)


def test_the_worlds_process_reports_a_bad_body_and_a_death_of_its_own():
    with pytest.raises(RuntimeError, match="nonexistent"):
        WorldProcess(Config(), 2, "nonexistent")
    w = WorldProcess(Config(), 2)
    w.reset([0, 1])
    w.proc.kill()
    w.proc.wait()
    with pytest.raises(RuntimeError, match="died"):
        w.step([(1, 1), (1, 1)])
    w.close()


def test_ray_groups_on_a_local_cluster_select_across_groups_as_one_process_does(tmp_path):
    """2 Ray actors (ray.init with 2 CPUs) and the driver's selection give what one process gives: the same lineage,
    lives and weights, the copies having moved actor to actor through the object store."""
    from edge_runtime.population.ray_groups import run_on_ray

    sel = dict(method="pbt", every=10)
    s = run_on_ray(Config(), 4, 40, 0, None, tmp_path / "ray", Selection(**sel), address="local", groups=2,
                   worlds="inline", metrics_every=0)
    pop = Population(Config(), 4, 0, run_dir=tmp_path / "one", selection=Selection(**sel), worlds="inline",
                     metrics_every=0)
    try:
        one = pop.run(40)
    finally:
        pop.close(one)
    assert s["groups"] == 2 and s["rounds"] == one["rounds"] == 4
    assert s["backend"] == one["backend"] == "numpy"
    assert s["replacements"] == one["replacements"] >= 1
    assert s["bytes_per_copy"] > 1_000_000 and s["bytes_per_round_max"] >= s["bytes_per_copy"]
    assert (tmp_path / "ray" / "lineage.jsonl").read_text() == (tmp_path / "one" / "lineage.jsonl").read_text()
    assert [a["lives_completed"] for a in s["agents"]] == [a["lives_completed"] for a in one["agents"]]
    for a in range(4):  # the numpy learner's (the default config's) weights.npz
        w_ray = np.load(tmp_path / "ray" / "agents" / f"{a:02d}" / "weights.npz")
        w_one = np.load(tmp_path / "one" / "agents" / f"{a:02d}" / "weights.npz")
        assert max(rel_diff(w_ray[k], w_one[k]) for k in w_one.files if k != "__meta__") < 1e-4


def test_bench_population_prints_its_contract():
    rc, out, err = run_cli("bench", "population", "--sizes", "1,2", "--steps", "10", "--warmup", "2",
                           "--ray-size", "2", "--select-every", "5", "--json")
    assert rc == 0, err
    recs = json.loads(out)
    assert [r["size"] for r in recs] == [1, 2]
    for r in recs:
        for k in ("agent_decisions_per_s", "lone_agent_decisions_per_s", "peak_rss_mb", "rss_per_agent_mb"):
            assert r[k] > 0, k
        assert r["rss_per_agent_mb"] == pytest.approx(r["peak_rss_mb"] / r["size"], abs=0.1)
    assert recs[1]["ray_selection_round_ms"] > 0 and recs[1]["ray_rounds"] >= 1


def test_bench_selection_compares_both_methods_frozen_beside_the_baselines(tmp_path):
    rc, out, err = run_cli("bench", "selection", "--size", "2", "--steps", "120", "--seeds", "1", "--select-every",
                           "40", "--lives", "1", "--cap", "60", "--take-off", "10", "--out", str(tmp_path), "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert [(r["method"], r["agent_steps"]) for r in res["runs"]] == [("none", 240), ("pbt", 240)]
    assert all(r["take_off_step"] == 100 for r in res["runs"])  # lives of 60+ body steps by the first scores line
    got = {(r["method"], r["role"], r["mode"]) for r in res["evaluations"]}
    for m in ("none", "pbt"):
        assert {(m, "best", "sample"), (m, "best", "greedy"), (m, "median", "sample"), (m, "median", "greedy")} <= got
    assert {("random", "baseline", "sample"), ("stationary", "baseline", "sample")} <= got
    assert (tmp_path / "table.txt").exists()
