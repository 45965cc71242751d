"""model.backend = ort: the survival rule learning with ONNX Runtime computing the forward pass and the gradients.

These run in ONNX Runtime's training build (onnxruntime-training-cpu 1.19.2), which replaces the plain onnxruntime
package: scripts/test installs it in its own virtual environment and runs `pytest -m ort_training` there (the
main run deselects them). Everything is real: the arena, the graphs made from the torch model, ORT sessions.
"""
import json
import subprocess
import sys

import pytest
import torch

from edge_runtime.acting import act_repeat
from edge_runtime.checkpoint import CheckpointHook, CheckpointStore
from edge_runtime.config import CheckpointConfig, Config, ConfigError
from edge_runtime.net import TorchNet
from edge_runtime.rules import build
from edge_runtime.runtime import Runner
from edge_runtime.senses import SenseEncoder
from sim_bridge.arena import Arena

pytestmark = pytest.mark.ort_training


def _ort(cfg=None) -> Config:
    cfg = cfg or Config()
    return cfg.replace("model", backend="ort")


def _record(steps: int, seed: int):
    """A real torch run's senses, actions and feelings, decision by decision."""
    cfg = Config()
    with Arena(cfg.arena) as body:
        spec = body.spec
        rule = build(spec, cfg.model, cfg.rule, seed=seed)
        enc = SenseEncoder(spec, cfg.model.input_hw)
        s = body.reset(seed=seed)
        eyes, bv = enc(s)
        seq = []
        for _ in range(steps):
            a = rule.decide(eyes, bv)
            s, feel = act_repeat(body, a, s, cfg.runtime.repeat_for(spec), cfg.runtime.event_threshold)
            nxt = enc(s)
            rule.learn(feel, *nxt)
            seq.append((eyes, bv, a, feel, nxt, s.dead))
            if s.dead:
                s = body.respawn()
                rule.new_life()
                nxt = enc(s)
            eyes, bv = nxt
    return spec, seq


def _replay(spec, seq, cfg: Config, seed: int):
    """A fresh rule (same initial weights for the same seed) fed the recorded sequence, taking the recorded actions."""
    rule = build(spec, cfg.model, cfg.rule, seed=seed)
    actions = iter([x[2] for x in seq])
    rule._sample = lambda logits, greedy: next(actions)  # the recorded action, whatever the logits say
    metrics = []
    for eyes, bv, a, feel, nxt, dead in seq:
        assert rule.decide(eyes, bv) == a
        metrics.append(rule.learn(feel, *nxt))
        if dead:
            rule.new_life()
    return rule, metrics


def _rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.detach(), b.detach()
    return float((a - b).abs().max()) / max(float(b.abs().max()), 1e-12)


def test_200_learning_steps_end_within_1e4_of_the_torch_backend():
    spec, seq = _record(200, seed=5)
    assert any(x[5] for x in seq), "precondition: a death in the sequence (rollback and aversive replay exercised)"
    t, mt = _replay(spec, seq, Config(), seed=5)
    o, mo = _replay(spec, seq, _ort(), seed=5)
    assert o.net.name == "ort" and t.net.name == "torch"
    assert (o.rollbacks, o.faults, o.deaths, o.steps) == (t.rollbacks, t.faults, t.deaths, t.steps) and o.rollbacks >= 1
    pt, po = dict(t.brain.named_parameters()), dict(o.brain.named_parameters())
    worst = max(_rel(po[k], pt[k]) for k in pt)
    assert worst <= 1e-4, worst
    # the rule's own figures agree step by step (the TD error drives every update)
    assert max(abs(a["td_error"] - b["td_error"]) for a, b in zip(mo, mt)) < 1e-3
    assert o.log_beta == pytest.approx(t.log_beta, rel=1e-4)
    # and the learning did move the weights: the comparison is not of two untouched brains
    fresh = dict(build(spec, Config().model, Config().rule, seed=5).brain.named_parameters())
    assert max(_rel(pt[k], fresh[k]) for k in pt) > 1e-2


def test_each_gradient_the_rule_asks_for_matches_autograd():
    cfg = _ort()
    with Arena(cfg.arena) as body:
        spec = body.spec
    rule = build(spec, cfg.model, cfg.rule, seed=2)
    torch_net = TorchNet(rule.brain)
    h, w = cfg.model.input_hw
    g = torch.Generator().manual_seed(0)
    eyes = torch.rand(1, 6, h, w, generator=g) * 2 - 1
    bv, th = torch.rand(1, rule.brain.body_dim, generator=g), torch.randn(1, cfg.model.thought_size, generator=g)
    rule.brain.observe(eyes)
    rule.brain.observe(eyes * 0.5)  # eye statistics in use: both backends must read them
    a, k = rule.brain.regions.actions, rule.k_fc
    asks = {
        "D and the policy objective": (lambda o: [rule._main(o[:, a:a + 8]), torch.log_softmax(o[:, :3], 1)[0, 2]
                                                  + 0.3 * rule.head_entropies(rule.brain.head_logits(o[:, :a])).sum()],
                                       rule.p_d + rule.p_pi),
        "forecasts": (lambda o: (o[:, a:a + k] * torch.linspace(-1, 1, k)).sum(), rule.p_d),
        "learning-rate head": (lambda o: (torch.sigmoid(o[:, a + 8:a + 16].mean()) - 0.7) ** 2, rule.p_lr),
    }
    for what, (objective, params) in asks.items():
        go = rule.net.grad(objective(rule.net.forward(eyes, bv, th)), params)
        gt = torch_net.grad(objective(torch_net.forward(eyes, bv, th)), params)
        gt = [torch.zeros_like(p) if x is None else x for p, x in zip(params, gt)]
        assert max(float(x.abs().max()) for x in gt) > 0, what
        worst = max(float((x - y).abs().max()) / max(float(y.abs().max()), 1e-6) for x, y in zip(go, gt))
        assert worst < 1e-4, (what, worst)
    with torch.no_grad():
        want = rule.brain(eyes, bv, th)
        assert float((rule.net.forward(eyes, bv, th) - want).abs().max()) < 1e-5
        assert float((rule.net.discomfort_estimate(eyes, bv, th) - rule.brain.discomfort_estimate(eyes, bv, th)).abs().max()) < 1e-5


@pytest.mark.parametrize("first,then", [("ort", "torch"), ("torch", "ort")])
def test_a_checkpoint_written_by_one_backend_resumes_on_the_other(tmp_path, first, then):
    base = Config().replace("arena", energy_drain=0.05)  # short lives: deaths, rollbacks from the RAM ring
    mk = lambda: CheckpointHook(CheckpointStore(tmp_path), CheckpointConfig(every_s=0, min_interval_s=0),  # noqa: E731
                                handle_sigint=False)
    a = Runner(base.replace("model", backend=first), Arena(base.arena), seed=1, progress=False, hooks=[mk()])
    a.run(60)
    assert a.rule.net.name == first and a.lifespans and a.rule.rollbacks >= 1
    _, state = CheckpointStore(tmp_path).load()
    h = mk()
    h.resume_state = state
    b = Runner(base.replace("model", backend=then), Arena(base.arena), seed=1, progress=False, hooks=[h])
    b.run(20)
    assert b.rule.net.name == then
    assert b.lifespans[: len(a.lifespans)] == a.lifespans and b.rule.steps == a.rule.steps + 20
    assert b.rule.faults == 0


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=600)


def test_export_training_graphs_then_learn_from_them_and_refuse_others(tmp_path):
    d = tmp_path / "graphs"
    p = _cli("export", "--training", str(d), "--json")
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout)
    assert res["graphs"] == ["forward", "discomfort", "vjp_discomfort", "vjp_policy", "vjp_lr"]
    assert sorted(x.name for x in d.iterdir()) == sorted([f"{n}.onnx" for n in res["graphs"]] + ["manifest.json"])
    run = tmp_path / "run"
    p = _cli("--sim", "--steps", "30", "--seed", "2", "--run-dir", str(run), "--no-progress",
             "--set", "model.backend=ort", "--set", f"model.ort_artifacts={d}")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["steps"] == 30
    # graphs made for another model are refused, naming the key and saying what to do
    p = _cli("--sim", "--steps", "3", "--no-progress", "--set", "model.backend=ort", "--set",
             f"model.ort_artifacts={d}", "--set", "model.hidden=64")
    assert p.returncode == 2 and "model.ort_artifacts" in p.stderr and "export --training" in p.stderr
    (d / "manifest.json").write_text("{not json")
    p = _cli("--sim", "--steps", "3", "--no-progress", "--set", "model.backend=ort", "--set", f"model.ort_artifacts={d}")
    assert p.returncode == 2 and "manifest.json" in p.stderr
    # the graphs of a run's own model
    p = _cli("export", str(run), "--training", str(tmp_path / "from-run"), "--json")
    assert p.returncode == 0, p.stderr
    p = _cli("export", "--out", str(tmp_path / "x.onnx"), "--training", str(d))
    assert p.returncode == 2 and "one of the two" in p.stderr


def test_bench_step_prints_ort_beside_torch():
    p = _cli("bench", "step", "--backend", "ort", "--steps", "20", "--warmup", "5", "--json")
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["backend"] == "ort" and r["rule"] == "survival"
    for k in ("forward_ms", "learn_ms", "peak_rss_mb"):
        assert r[k] > 0 and r["torch"][k] > 0
    assert r["learn_ms_vs_torch"] == pytest.approx(r["learn_ms"] / r["torch"]["learn_ms"], abs=2e-3)


def test_the_seed_rule_and_populations_say_ort_is_not_theirs(tmp_path):
    cfg = _ort()
    with Arena(cfg.arena) as body:
        with pytest.raises(ConfigError, match="model.backend = ort.*seed-v1"):
            build(body.spec, cfg.model, cfg.replace("rule", name="seed-v1").rule)
    p = _cli("population", "--size", "2", "--steps", "3", "--run-dir", str(tmp_path / "pop"), "--set", "model.backend=ort")
    assert p.returncode == 2 and "model.backend = ort" in p.stderr
