"""The population on the numpy learner (model.backend = auto): agent i of the batch is the lone numpy learner,
layer by layer and step by step, a death rolls back that agent only, and the run, selection, worlds' process and
weights work as the torch population's do, with torch never loaded."""
import copy
import subprocess
import sys
import math

import numpy as np

from edge_runtime.acting import Feeling, act_repeat
from edge_runtime.bodies import make_body
from edge_runtime.config import Config
from edge_runtime.numpy_learner import NumpySenseEncoder, build
from edge_runtime.numpy_learner import layers
from edge_runtime.numpy_learner.batched import BatchedTower
from edge_runtime.numpy_learner.depthwise_rows import depthwise_bwd, depthwise_fwd
from edge_runtime.numpy_learner.tower import Tower
from edge_runtime.population.numpy_rule import NumpyPopulationSurvival


def rel_diff(a, b) -> float:
    """Largest difference relative to the array's largest magnitude, floored at 0.01 (see test_population)."""
    return float(np.abs(a - b).max() / max(float(np.abs(b).max()), 1e-2))


def test_the_populations_depthwise_kernel_computes_the_lone_learners_convolution_per_agent():
    """depthwise_rows over N agents' maps against layers.depthwise (the lone learner's) agent by agent: output,
    weight gradient and input gradient, for the trunk's shapes (3x3 stride 2, 5x5 stride 1) and odd ones."""
    rng = np.random.default_rng(3)
    for n, c, h, w, k, s, pad in [(3, 8, 12, 16, 3, 2, 1), (2, 40, 6, 8, 3, 2, 1), (4, 48, 3, 4, 5, 1, 2),
                                  (1, 5, 7, 5, 3, 1, 1), (2, 3, 9, 6, 5, 2, 2),
                                  (2, 3, 5, 7, 1, 2, 0), (1, 2, 7, 7, 2, 3, 0)]:  # pixels no window reads
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((n, c, k, k)).astype(np.float32)
        y, cache = depthwise_fwd(x, wt, k, s, pad)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        g = np.full((n, c, 1, k, k), np.nan, np.float32)  # every entry must be written
        dx = depthwise_bwd(dy, cache, g)
        assert dx.shape == x.shape
        for i in range(n):
            y_i, cols = layers.depthwise(layers.padded(x[i], pad), wt[i], k, s)
            g_i = np.matmul(dy[i].reshape(c, 1, -1), cols).reshape(c, 1, k, k)
            dx_i = layers.depthwise_input_grad(dy[i], wt[i], k, s, pad, h, w)
            assert y_i.shape == y[i].shape
            np.testing.assert_allclose(y[i], y_i, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(g[i], g_i, rtol=1e-5, atol=1e-5)
            np.testing.assert_allclose(dx[i], dx_i, rtol=1e-5, atol=1e-5)


def test_a_batched_tower_computes_each_agents_lone_tower():
    cfg = Config().model
    n = 4
    towers = []
    for i in range(n):
        t = Tower(cfg, 4, cfg.thought_size, 10)
        t.init(np.random.default_rng(i), cfg.sparse_init, True)
        towers.append(t)
    bt = BatchedTower(towers[0], n)
    for i, t in enumerate(towers):
        bt.flat[i] = t.flat
    rng = np.random.default_rng(0)
    eyes = rng.standard_normal((n, 6, *cfg.input_hw)).astype(np.float32)
    body = rng.standard_normal((n, 4)).astype(np.float32)
    thought = rng.standard_normal((n, cfg.thought_size)).astype(np.float32)
    d_out = rng.standard_normal((n, 10)).astype(np.float32)
    h, hc = bt.hidden(eyes, body, thought)
    out = bt.out(h)
    g = np.full_like(bt.flat, np.nan)  # every entry must be written
    bt.backward(d_out, h, hc, bt.views(g))
    for i, t in enumerate(towers):
        hi, hci = t.hidden(eyes[i], body[i], thought[i])
        gi = np.zeros_like(t.flat)
        t.backward(d_out[i], hi, hci, t.views(gi))
        assert rel_diff(out[i], t.out(hi)) < 1e-5, i
        assert np.isfinite(g[i]).all()
        assert rel_diff(g[i], gi) < 1e-5, i
        assert np.abs(gi).max() > 0


def test_each_agent_takes_the_lone_numpy_learners_steps_and_a_death_rolls_back_only_that_agent():
    """3 agents (seeds 10, 11, 12) in real arenas beside 3 lone numpy learners fed the same senses and feelings;
    agent 1 is also told it died at steps 50 and 97 (a rollback and an aversive replay, for it alone), in a setback."""
    cfg = Config.from_dict({})
    n, seed, steps = 3, 10, 120
    bodies = [make_body(cfg) for _ in range(n)]
    spec = bodies[0].spec
    enc = NumpySenseEncoder(spec, cfg.model.input_hw)
    pop = NumpyPopulationSurvival(spec, cfg.model, copy.deepcopy(cfg.rule), n, seed)
    lone = [build(spec, cfg.model, copy.deepcopy(cfg.rule), seed + i) for i in range(n)]
    for i in range(n):
        assert np.array_equal(pop.p_d[i], lone[i].p_d) and np.array_equal(pop.p_pi[i], lone[i].p_pi)
    for sb in (pop.setbacks[1], lone[1].setback):
        sb.load({"life_len": 0, "lifespans": [400, 40, 40, 40, 40], "best": 400.0})

    def encode(senses):
        e = [enc(s) for s in senses]
        return np.stack([x[0] for x in e]), np.stack([x[1] for x in e])

    senses = [b.reset(seed=seed + i) for i, b in enumerate(bodies)]
    eyes, bv = encode(senses)
    worst = [0.0] * n
    deaths = [0] * n
    for t in range(steps):
        acts = pop.decide(eyes, bv)
        for i in range(n):
            assert lone[i].decide(eyes[i], bv[i]) == acts[i], f"step {t}: agent {i} acts unlike its lone twin"
        feels = []
        for i in range(n):
            senses[i], f = act_repeat(bodies[i], acts[i], senses[i], cfg.runtime.repeat_for(spec), cfg.runtime.event_threshold)
            if i == 1 and t in (50, 97):
                f = Feeling(f.d_hp - 0.5, f.d_energy, True, f.body_steps)
            feels.append(f)
        eyes, bv = encode(senses)
        ms = pop.learn(feels, eyes, bv)
        for i in range(n):
            ml = lone[i].learn(feels[i], eyes[i], bv[i])
            assert set(ms[i]) == set(ml), (t, i)
            assert math.isclose(ms[i]["td_error"], ml["td_error"], rel_tol=1e-3, abs_tol=1e-5), (t, i)
            if feels[i].dead:
                deaths[i] += 1
                pop.new_life(i)
                lone[i].new_life()
                if senses[i].dead:
                    senses[i] = bodies[i].respawn()
        eyes, bv = encode(senses)
        for i in range(n):
            worst[i] = max(worst[i], rel_diff(pop.p_d[i], lone[i].p_d), rel_diff(pop.p_pi[i], lone[i].p_pi),
                           rel_diff(pop.p_lr[i], lone[i].p_lr), rel_diff(pop.z_pi[i], lone[i].z_pi))
    assert deaths[1] >= 2
    assert max(worst) < 1e-4, worst
    assert [int(x) for x in pop.rollbacks] == [r.rollbacks for r in lone]
    assert pop.rollbacks[1] >= 2 and [int(x) for x in pop.steps] == [r.steps for r in lone]
    for i in range(n):
        np.testing.assert_allclose(pop.log_beta[i], lone[i].log_beta, rtol=1e-4)
        assert pop.setbacks[i].state() == lone[i].setback.state()
        np.testing.assert_allclose(pop.brain.eye_norm.mean[i], lone[i].brain.eye_norm.mean, rtol=1e-5, atol=1e-6)
    assert pop.setbacks[1]() > 0.5 and pop.setbacks[0]() == 0.0


def test_a_population_of_the_default_config_never_imports_torch(tmp_path):
    code = ("import sys\n"
            "from edge_runtime.config import Config\n"
            "from edge_runtime.population.runner import Population\n"
            "from edge_runtime.population.selection import Selection\n"
            f"pop = Population(Config(), 3, seed=1, run_dir={str(tmp_path)!r}, selection=Selection('pbt', every=5))\n"
            "s = pop.run(12)\n"
            "pop.close(s)\n"
            "print(s['backend'], s['rounds'], 'torch' in sys.modules)\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    assert p.stdout.split() == ["numpy", "2", "False"]
    assert all((tmp_path / "agents" / f"{a:02d}" / "weights.npz").exists() for a in range(3))


def test_a_non_finite_output_acts_at_random_and_clears_that_agents_thought_only():
    cfg = Config()
    spec = make_body(cfg).spec
    pop = NumpyPopulationSurvival(spec, cfg.model, copy.deepcopy(cfg.rule), 3, 0)
    rng = np.random.default_rng(0)
    eyes = rng.uniform(-1, 1, (3, 6, *cfg.model.input_hw)).astype(np.float32)
    body = rng.uniform(-1, 1, (3, 2 + spec.touch_channels)).astype(np.float32)
    pop.act_frozen(eyes, body)
    assert np.abs(pop.thought).sum(1).min() > 0
    pop.brain.policy.p["out.bias"][1] = np.nan
    for act in (pop.act_frozen, pop.decide):
        acts = act(eyes, body)
        assert all(0 <= a < k for a_i in acts for a, k in zip(a_i, pop.heads))
        assert np.isfinite(pop.thought).all() and not pop.thought[1].any() and pop.thought[0].any()
    ms = pop.learn([Feeling(0.0, 0.0, False, 4)] * 3, eyes, body)
    assert ms[1] == {"fault": "non-finite model output"} and "fault" not in ms[0]
    assert pop.faults.tolist() == [0, 1, 0]
