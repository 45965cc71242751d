"""model.backend = numpy: the brain by hand in numpy against torch's, and the rule against the torch rule.

- The numpy brain has torch Brain's parameter names and shapes, and from the same weights the same output
  and the same gradients as torch autograd (float32 rounding apart: relative 1e-4).
- A run of the survival rule on both backends from the same weights, senses and actions (ten decisions with
  food, a hit and a death, so the rollback and the aversive replay run) ends with the same weights.
- A learning process on this backend never imports torch, and its weights.npz is read by evaluation.
"""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edge_runtime.acting import Feeling
from edge_runtime.bench import probe_body
from edge_runtime.config import Config, ConfigError, ModelConfig, RuleConfig
from edge_runtime.model import Brain
from edge_runtime.numpy_learner import NumpyBrain, NumpySurvival
from edge_runtime.numpy_learner import build as build_numpy
from edge_runtime.rules import build

SPEC = probe_body(Config(), "arena")
VARIANTS = {
    "default": {},
    "small-residual": {"preset": "small", "width": 0.35, "input_hw": (32, 32)},
    "plain": {"norm": "none", "eye_skip": (0, 0), "head_reads_senses": False, "actor_reads_critic": False,
              "thought_feedback": False, "eye_norm": False},
    "odd-pool": {"input_hw": (20, 30), "eye_skip": (3, 7)},
}


def randomised(cfg: ModelConfig, seed: int = 0) -> tuple[NumpyBrain, Brain]:
    """A numpy brain with dense random weights and some eye statistics, and a torch Brain loaded from it."""
    rng = np.random.default_rng(seed)
    nb = NumpyBrain(SPEC, cfg, seed=seed)
    for f in nb.flats():
        f[...] = rng.normal(0.0, 0.2, f.shape)
    for _ in range(4):
        nb.observe(rng.uniform(-1, 1, (6, *cfg.input_hw)).astype(np.float32))
    tb = Brain(SPEC, cfg, towers="split")
    tb.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in nb.state_dict().items()})
    return nb, tb


def inputs(cfg: ModelConfig, nb: NumpyBrain, seed: int = 1):
    rng = np.random.default_rng(seed)
    return (rng.uniform(-1, 1, (6, *cfg.input_hw)).astype(np.float32), rng.uniform(0, 1, nb.body_dim).astype(np.float32),
            rng.uniform(-1, 1, cfg.thought_size).astype(np.float32))


def close(a, b, what: str, tol: float = 1e-4):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    scale = max(np.abs(b).max(), 1e-6)
    assert np.abs(a - b).max() <= tol * scale, f"{what}: max difference {np.abs(a - b).max():.3g} at scale {scale:.3g}"


def test_parameter_names_and_shapes_are_torch_brains():
    nb = NumpyBrain(SPEC, ModelConfig(), seed=0)
    tsd = Brain(SPEC, ModelConfig(), towers="split").state_dict()
    nsd = nb.state_dict()
    assert list(nsd) != [] and set(nsd) == set(tsd)
    assert {k: tuple(v.shape) for k, v in nsd.items()} == {k: tuple(v.shape) for k, v in tsd.items()}
    assert nb.n_params() == sum(v.numel() for k, v in tsd.items() if not k.startswith("eye_norm"))


def test_initialisation_follows_the_sparse_lecun_scheme():
    """Same scheme as model.sparse_init_: LeCun-uniform bounds, 90% of each fc/out row zeroed, thought weights 0."""
    cfg = ModelConfig()
    nb = NumpyBrain(SPEC, cfg, seed=5)
    fc = nb.policy.p["fc.weight"]
    fan_in = fc.shape[1]
    assert np.abs(fc).max() <= (1.0 / fan_in) ** 0.5
    assert (fc[:, -cfg.thought_size:] == 0).all()
    nonzero = (nb.policy.p["out.weight"] != 0).sum(1)
    assert (nonzero == nb.policy.p["out.weight"].shape[1] - int(0.9 * nb.policy.p["out.weight"].shape[1])).all()
    assert (nb.policy.p["fc.bias"] == 0).all()
    assert (NumpyBrain(SPEC, cfg, seed=5).policy.flat == nb.policy.flat).all()
    assert (NumpyBrain(SPEC, cfg, seed=6).policy.flat != nb.policy.flat).any()


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_forward_and_gradients_match_torch_autograd(variant):
    cfg = ModelConfig(**VARIANTS[variant])
    nb, tb = randomised(cfg)
    eyes, body, thought = inputs(cfg, nb)
    out, cache = nb.forward(eyes, body, thought)
    tout = tb(torch.from_numpy(eyes)[None], torch.from_numpy(body)[None], torch.from_numpy(thought)[None])
    close(out, tout.detach().numpy()[0], "output")
    close(nb.discomfort_estimate(eyes, body, thought), tb.split(tout)["loss"].detach().numpy()[0], "discomfort estimate")

    rng = np.random.default_rng(2)
    r = tb.split(tout)
    cases = [("discomfort", tb.discomfort, "loss", nb.grad_discomfort), ("policy", tb.policy, "actions", nb.grad_policy),
             ("lr_head", tb.lr_head, "lr", nb.grad_lr_head)]
    for name, module, region, grad in cases:
        v = rng.normal(size=r[region].shape[1]).astype(np.float32)
        params = list(module.parameters())
        g = torch.autograd.grad((r[region][0] * torch.from_numpy(v)).sum(), params, retain_graph=True, allow_unused=True)
        want = torch.cat([(torch.zeros_like(p) if x is None else x).reshape(-1) for p, x in zip(params, g)]).numpy()
        got = grad(cache, v)
        assert got.shape == want.shape
        if name == "lr_head":
            close(got, want, f"{variant}: d {region} / d {name}")
            continue
        tower = nb.discomfort if name == "discomfort" else nb.policy
        views = tower.views(got)
        for (pname, _), x in zip(module.named_parameters(), g):
            ref = np.zeros(views[pname].shape, np.float32) if x is None else x.numpy()
            close(views[pname], ref, f"{variant}: d {region} / d {name}.{pname}")


def twins(seed: int = 3):
    """A torch survival rule and a numpy one holding the same weights, birth weights and eye statistics."""
    mcfg, rcfg = ModelConfig(), RuleConfig(rollback_every=4)
    tr = build(SPEC, mcfg, rcfg, seed)
    nr = build_numpy(SPEC, mcfg, RuleConfig(rollback_every=4), seed)
    nr.brain.load_state_dict({k: v.numpy().copy() for k, v in tr.brain.state_dict().items()})
    nr.birth = [nr.p_d.copy(), nr.p_pi.copy()]
    nr.ring.clear()
    nr.take_snapshot()
    return tr, nr


def test_the_rule_on_both_backends_ends_with_the_same_weights():
    """Ten decisions with the same senses and actions: food, a hazard hit and a death (rollback to the oldest
    snapshot, aversive replay, setback bookkeeping), then the weights of every tower compared."""
    tr, nr = twins()
    rng = np.random.default_rng(4)
    feels = [Feeling(0.0, -0.001, False), Feeling(0.0, 0.3, False), Feeling(-0.2, -0.001, False)] + \
            [Feeling(0.0, -0.001, False)] * 6 + [Feeling(-0.5, -0.001, True)]
    senses = [(rng.uniform(-1, 1, (6, 24, 32)).astype(np.float32), rng.uniform(0, 1, nr.brain.body_dim).astype(np.float32))
              for _ in range(len(feels) + 1)]
    actions = [tuple(int(x) for x in rng.integers(0, 3, 2)) for _ in feels]
    for i, feel in enumerate(feels):
        tr._sample = nr._sample = lambda logits, greedy, a=actions[i]: a
        eyes, body = senses[i]
        assert tr.decide(torch.from_numpy(eyes)[None], torch.from_numpy(body)[None]) == nr.decide(eyes, body)
        nxt = senses[i + 1]
        mt = tr.learn(feel, torch.from_numpy(nxt[0])[None], torch.from_numpy(nxt[1])[None])
        mn = nr.learn(feel, *nxt)
        assert "fault" not in mt and "fault" not in mn
        for k in ("self_loss", "td_error", "self_lr", "entropy"):
            assert mn[k] == pytest.approx(mt[k], rel=1e-3, abs=1e-5), f"decision {i}: {k}"
        if feel.dead:
            assert mt["rollback"] and mn["rollback"]
            tr.new_life()
            nr.new_life()
    assert (tr.rollbacks, tr.deaths, tr.steps) == (nr.rollbacks, nr.deaths, nr.steps) == (1, 1, 10)
    tsd = {k: v.numpy() for k, v in tr.brain.state_dict().items()}
    for k, v in nr.brain.state_dict().items():
        close(v, tsd[k], f"after ten decisions: {k}", tol=1e-3)
    close(nr.z_d, torch.cat([z.reshape(-1) for z in tr.z_d]).numpy(), "discomfort trace")
    assert nr.log_beta == pytest.approx(tr.log_beta, rel=1e-5)


def test_a_fault_rolls_back_and_nothing_reaches_the_weights():
    _, nr = twins()
    eyes, body = np.zeros((6, 24, 32), np.float32), np.ones(nr.brain.body_dim, np.float32)
    nr.decide(eyes, body)
    before = [f.copy() for f in nr.brain.flats()]
    m = nr.learn(Feeling(float("nan"), 0.0, False), eyes, body)
    assert "fault" in m and nr.faults == 1
    assert all((a == b).all() for a, b in zip(before, nr.brain.flats()))


def test_config_names_what_the_numpy_backend_cannot_run():
    with pytest.raises(ConfigError, match="model.head"):
        ModelConfig(backend="numpy", head="avg")
    with pytest.raises(ConfigError, match="rule.name"):
        build_numpy(SPEC, ModelConfig(backend="numpy"), RuleConfig(name="seed-v1"))
    with pytest.raises(ConfigError, match="model.towers"):
        build_numpy(SPEC, ModelConfig(backend="numpy", towers="shared"), RuleConfig())


LEARN_WITHOUT_TORCH = """
import json, sys
sys.modules["torch"] = None  # as on a robot without torch installed: any import of it raises
from edge_runtime.bodies import make_body
from edge_runtime.config import Config
from edge_runtime.runtime import Runner
cfg = Config.from_dict({"model": {"backend": "numpy"}})
with make_body(cfg, "arena") as body:
    r = Runner(cfg, body, seed=2, run_dir=sys.argv[1], progress=False)
    s = r.run(300)
    r.save_weights()
print(json.dumps({"torch": sys.modules["torch"] is not None, "steps": s["steps"], "backend": s["backend"],
                  "faults": r.rule.faults}))
"""


def test_a_learning_process_never_imports_torch_and_its_weights_evaluate(tmp_path):
    out = subprocess.run([sys.executable, "-c", LEARN_WITHOUT_TORCH, str(tmp_path)], capture_output=True, text=True,
                         timeout=300, check=True)
    rec = json.loads(out.stdout.strip().splitlines()[-1])
    assert rec == {"torch": False, "steps": 300, "backend": "numpy", "faults": 0}
    assert (tmp_path / "weights.npz").exists() and not (tmp_path / "weights.pt").exists()
    from edge_runtime.evaluate import evaluate, make_policy
    from edge_runtime.bodies import make_body

    pol = make_policy(str(tmp_path), SPEC)
    r = evaluate(pol, lambda: make_body(Config(), "arena"), Config(), 2, seed=1000, cap=200)
    assert r["lives"] == 2 and r["median_lifespan"] > 0
    # the torch brain evaluation loads acts as the numpy brain that learned
    nr = NumpySurvival(NumpyBrain(SPEC, ModelConfig(), 0), RuleConfig())
    with np.load(tmp_path / "weights.npz") as z:
        nr.brain.load_state_dict({k: z[k] for k in z.files if k != "__meta__"})
    eyes, body = np.zeros((6, 24, 32), np.float32), np.full(nr.brain.body_dim, 0.5, np.float32)
    out_np, _ = nr.brain.forward(eyes, body, nr.brain.zero_thought())
    out_t = pol.rule.brain(torch.from_numpy(eyes)[None], torch.from_numpy(body)[None], pol.rule.brain.zero_thought())
    close(out_np, out_t.detach().numpy()[0], "a saved brain in torch")


def test_the_cli_runs_resumes_and_evaluates_it_without_torch(tmp_path):
    """edge-runtime --sim at the default config (model.backend = auto: the numpy learner): checkpoints (a numpy
    payload), --resume, and eval of the run directory by the torch harness; the learning processes never load
    torch."""
    d = str(tmp_path / "run")
    code = ("import sys\nfrom edge_runtime.cli import main\nrc = main(sys.argv[1:])\n"
            "print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\nsys.exit(rc)")
    cli = [sys.executable, "-c", code, "--sim", "--no-progress"]
    r = subprocess.run(cli + ["--steps", "30", "--run-dir", d], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.strip().splitlines()[-1])["backend"] == "numpy" and "no torch" in r.stderr
    r = subprocess.run(cli + ["--steps", "10", "--resume", d], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert "resumed from checkpoint: step 30" in r.stderr and "no torch" in r.stderr
    steps = [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 41))
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "--sim", "--resume", d, "--steps", "5",
                        "--set", "model.backend=torch"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "model.backend: checkpoint 'numpy', now 'torch'" in r.stderr
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "eval", "--policy", d, "--lives", "2", "--json"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr


def test_resume_is_bit_exact_with_an_uninterrupted_run(tmp_path):
    from edge_runtime import checkpoint as ck
    from edge_runtime.runtime import Runner
    from sim_bridge.arena import Arena

    cfg = Config.from_dict({"model": {"backend": "numpy"}, "arena": {"energy_drain": 0.02}})  # lives of ~50
    mk = lambda: ck.CheckpointHook(ck.CheckpointStore(tmp_path), ck.CheckpointConfig(every_s=0, min_interval_s=0),  # noqa: E731
                                   handle_sigint=False)
    straight = Runner(cfg, Arena(cfg.arena), seed=5, progress=False)
    straight.run(160)
    half = Runner(cfg, Arena(cfg.arena), seed=5, progress=False, hooks=[mk()])
    half.run(80)
    info, state = ck.CheckpointStore(tmp_path).load()
    assert info.step == 80 and state["meta"]["backend"] == "numpy" and half.lifespans
    hook = mk()
    hook.resume_state = state
    resumed = Runner(cfg, Arena(cfg.arena), seed=5, progress=False, hooks=[hook])
    resumed.run(80)
    # deaths after the resume roll back through a ring rebuilt from the resumed state, as a restart does; the
    # straight run's ring held older snapshots, so only the decisions before the first later death compare
    assert resumed.rule.steps == 160 and resumed.lifespans[:len(half.lifespans)] == half.lifespans
    ok = straight.lifespans[:len(half.lifespans) + 1] == resumed.lifespans[:len(half.lifespans) + 1]
    assert ok, (straight.lifespans, resumed.lifespans)


def test_bench_adapt_saves_and_evaluates_a_numpy_learners_brains(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "bench", "adapt", "--change", "swap-colours",
                        "--steps-a", "40", "--steps-b", "40", "--seeds", "1", "--lives", "1", "--cap", "100", "--jobs",
                        "1", "--set", "model.backend=numpy", "--out", str(tmp_path), "--json"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    saved = sorted(p.name for p in (tmp_path / "continuing-s1").glob("brain-b*"))
    assert saved == ["brain-b0.npz", "brain-b40.npz"]


@pytest.mark.parametrize("model,rule,want", [
    ({}, "survival", "numpy"),  # the default config
    ({"towers": "split"}, "survival", "numpy"),
    ({}, "seed-v1", "torch"),  # numpy computes the survival rule only
    ({"towers": "shared"}, "survival", "torch"),
    ({"head": "avg"}, "survival", "torch"),
    ({"backend": "torch"}, "survival", "torch"),  # named outright: as named
    ({"backend": "numpy"}, "survival", "numpy"),
    ({"backend": "ort"}, "survival", "ort"),
])
def test_auto_resolves_to_numpy_where_it_computes_the_config_else_torch(model, rule, want):
    from edge_runtime.config import learner_backend

    cfg = Config.from_dict({"model": model, "rule": {"name": rule}})
    assert cfg.model.backend == model.get("backend", "auto") and learner_backend(cfg.model, rule) == want


def test_a_default_config_runner_for_seed_v1_learns_on_torch():
    from edge_runtime.bodies import make_body
    from edge_runtime.runtime import Runner

    cfg = Config.from_dict({"rule": {"name": "seed-v1"}})
    with make_body(cfg, "arena") as body:
        r = Runner(cfg, body, seed=1, progress=False)
        assert r.rule.net.name == "torch" and r.run(5)["backend"] == "torch"
