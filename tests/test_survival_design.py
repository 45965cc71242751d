"""The survival rule's structural choices: what reads what, and the per-block overshoot bound."""
import math

import pytest
import torch

from edge_runtime.config import ModelConfig, RuleConfig
from edge_runtime.model import Brain
from edge_runtime.rules import Feeling, build
from edge_runtime.senses import SenseEncoder
from sim_bridge.arena import Arena

SPEC = Arena().spec


def inputs(cfg):
    return torch.randn(1, 6, *cfg.input_hw), torch.rand(1, 2 + SPEC.touch_channels), torch.rand(1, cfg.thought_size) - 0.5


def test_actor_reads_critic_features_without_sending_gradient_into_them():
    cfg = ModelConfig(actor_reads_critic=True)
    b = Brain(SPEC, cfg, "split")
    e, v, t = inputs(cfg)
    r = b.split(b(e, v, t))
    # the action logits depend on the discomfort tower's features ...
    with torch.no_grad():
        b.discomfort.fc.weight.mul_(-1.0)
    r2 = b.split(b(e, v, t))
    assert not torch.allclose(r["actions"], r2["actions"])
    # ... but the policy's objective sends no gradient into that tower
    g = torch.autograd.grad(r2["actions"].sum(), list(b.discomfort.parameters()), allow_unused=True)
    assert all(x is None or x.abs().sum() == 0 for x in g)


def test_direct_path_lets_the_output_layer_read_touch():
    cfg = ModelConfig(head_reads_senses=True, sparse_init=0.0)
    b = Brain(SPEC, cfg, "split")
    e, v, t = inputs(cfg)
    assert b.policy.out.in_features == cfg.hidden + b.policy.direct + b.discomfort.width * cfg.actor_reads_critic
    h = b.policy.hidden(e, v, t)
    # the last columns of the hidden vector are the body vector and the pooled eyes, verbatim
    torch.testing.assert_close(h[:, cfg.hidden:cfg.hidden + v.shape[1]], v)
    off = Brain(SPEC, ModelConfig(head_reads_senses=False, actor_reads_critic=False), "split")
    assert off.policy.out.in_features == ModelConfig().hidden


def test_thought_weights_start_at_zero_and_learn():
    cfg = ModelConfig(thought_init="zero")
    arena = Arena()
    s = arena.reset(seed=3)
    r = build(arena.spec, cfg, RuleConfig(name="survival"), seed=0)
    enc = SenseEncoder(arena.spec, cfg.input_hw)
    n = cfg.thought_size
    for tower in (r.brain.policy, r.brain.discomfort):
        assert torch.count_nonzero(tower.fc.weight[:, -n:]) == 0
        assert torch.count_nonzero(tower.fc.weight[:, :-n]) > 0
    e, b = enc(s)
    for i in range(6):
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        r.learn(Feeling(-0.01, 0.3 if i == 3 else -0.0025, False), e, b)
    for tower in (r.brain.policy, r.brain.discomfort):
        assert torch.count_nonzero(tower.fc.weight[:, -n:]) > 0, "the fed-back thought never became an input"


@pytest.mark.parametrize("scope", ["tower", "block"])
def test_each_bound_holds_for_its_own_block(scope):
    """ObGD: within each bounded group, step * kappa * max(|delta|, 1) * ||z||_1 <= 1 (alpha = 1)."""
    arena = Arena()
    s = arena.reset(seed=2)
    cfg = RuleConfig(name="survival", bound_scope=scope)
    r = build(arena.spec, ModelConfig(), cfg, seed=0)
    enc = SenseEncoder(arena.spec, ModelConfig().input_hw)
    e, b = enc(s)
    for i in range(4):
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        r.learn(Feeling(-0.2, 0.3, False), e, b)
    db = 2.5
    steps = r._block_steps(r.z_pi, r.blocks_pi, cfg.kappa_policy, db)
    groups = {}
    for blk, z, a in zip(r.blocks_pi, r.z_pi, steps):
        groups.setdefault(blk, []).append((float(z.abs().sum()), a))
    assert len(groups) == (1 if scope == "tower" else 3)
    for members in groups.values():
        l1 = sum(x for x, _ in members)
        a = members[0][1]
        assert all(m[1] == a for m in members)
        assert a * cfg.kappa_policy * db * l1 <= 1.0 + 1e-4
        assert a == pytest.approx(min(1.0, 1.0 / (cfg.kappa_policy * db * l1)), rel=1e-4)
    if scope == "block":
        # a small block (the output layer) gets a larger step than the wide fc block
        assert len(set(steps)) > 1


def _loop(r, arena, enc, s, n, feel):
    e, b = enc(s)
    out = []
    for i in range(n):
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        out.append(r.learn(feel(i), e, b))
    return out


def test_entropy_weight_rises_when_a_head_collapses():
    arena = Arena()
    s = arena.reset(seed=4)
    r = build(arena.spec, ModelConfig(), RuleConfig(name="survival", entropy_target=0.3), seed=0)
    enc = SenseEncoder(arena.spec, ModelConfig().input_hw)
    turn = r.brain.regions.heads[0][1]  # the turn head's logits follow the drive head's
    with torch.no_grad():
        r.brain.policy.out.bias[turn + 2] = 12.0  # "turn right" forever
    start = list(r.log_beta)
    m = _loop(r, arena, enc, s, 30, lambda i: Feeling(0.0, -0.0025, False))
    assert r.log_beta[1] > start[1] + 0.05, "the collapsed head's entropy weight did not rise"
    assert r.log_beta[0] <= start[0] + 1e-9, "a head above its target must not be pushed"
    assert m[-1]["entropy_w"] == pytest.approx(max(map(float, torch.tensor(r.log_beta).exp())), rel=1e-3)
    fixed = build(arena.spec, ModelConfig(), RuleConfig(name="survival", entropy_target=0.0), seed=0)
    before = list(fixed.log_beta)
    _loop(fixed, arena, enc, arena.reset(seed=4), 5, lambda i: Feeling(0.0, -0.0025, False))
    assert fixed.log_beta == before


@pytest.mark.parametrize("target", [-2.0, 0.7])
def test_forecast_step_moves_the_forecast_toward_its_target_without_overshoot(target):
    """A gamma = 0 slot's target is this decision's scaled discomfort; repeated steps on one input
    approach it and never jump past it (the bound)."""
    arena = Arena()
    r = build(arena.spec, ModelConfig(), RuleConfig(name="survival", forecast_gammas=(0.0, 0.5)), seed=0)
    enc = SenseEncoder(arena.spec, ModelConfig().input_hw)
    e, b = enc(arena.reset(seed=6))
    t = r.brain.zero_thought()
    gaps = []
    for _ in range(25):
        f = r.brain.discomfort_estimate(e, b, t)[:, :2]
        gaps.append(target - float(f[0, 0].detach()))
        g = r._forecast_grads(f, target, torch.zeros(1, 2))
        assert r._forecast_step(g, 1.0)
    assert abs(gaps[-1]) < 0.5 * abs(gaps[0])
    assert all(x * gaps[0] >= -1e-3 for x in gaps), "a forecast overshot its target"
    main_before = float(r._main(r.brain.discomfort_estimate(e, b, t)).detach())
    assert math.isfinite(main_before)


def test_forecasts_need_room_in_the_loss_region():
    arena = Arena()
    with pytest.raises(ValueError, match="forecast_gammas"):
        build(arena.spec, ModelConfig(loss_size=2), RuleConfig(name="survival", forecast_gammas=(0.0, 0.5)), seed=0)


def test_eye_norm_standardises_each_pixel_and_only_learning_updates_it():
    cfg = ModelConfig()
    arena = Arena()
    s = arena.reset(seed=5)
    r = build(arena.spec, cfg, RuleConfig(name="survival"), seed=0)
    enc = SenseEncoder(arena.spec, cfg.input_hw)
    norm = r.brain.eye_norm
    assert "eye_norm.mean" in r.brain.state_dict()  # so it is saved with the weights
    seen = []
    for _ in range(40):
        e, b = enc(s)
        seen.append(e)
        a = r.decide(e, b)
        s = arena.act(a)
        r.learn(Feeling(0.0, -0.01, False), *enc(s))
    x = torch.cat(seen)
    assert int(norm.count) == 40
    torch.testing.assert_close(norm.mean, x.mean(0, keepdim=True), atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(norm.m2 / 39, x.var(0, keepdim=True), atol=1e-5, rtol=1e-3)
    z = norm(x)
    assert z.abs().max() <= norm.CLIP
    # pixels that varied come out centred with unit spread; the scene's fixed layout is gone
    # (where no frame was clipped: a pixel that spiked once is bounded instead)
    varied = (x.std(0) > 0.05) & (z.abs() < norm.CLIP).all(0)
    assert varied.sum() > 100
    assert z.mean(0)[varied].abs().max() < 1e-3
    torch.testing.assert_close(z.std(0)[varied], torch.ones(int(varied.sum())), atol=1e-3, rtol=0)
    # frozen acting reads the statistics but never changes them
    before = norm.mean.clone()
    for _ in range(5):
        r.act_frozen(*enc(s))
    assert int(norm.count) == 40 and torch.equal(norm.mean, before)
    off = build(arena.spec, ModelConfig(eye_norm=False), RuleConfig(name="survival"), seed=0)
    assert off.brain.eye_norm is None and "eye_norm.mean" not in off.brain.state_dict()


def test_weights_from_before_eye_norm_still_evaluate(tmp_path):
    """A weights file whose model config predates eye_norm learned on raw pixels: it loads without it."""
    from edge_runtime.config import section_to_dict
    from edge_runtime.evaluate import load_brain_policy

    arena = Arena()
    old = ModelConfig(eye_norm=False)
    b = Brain(arena.spec, old, "split")
    mc = section_to_dict(old)
    del mc["eye_norm"]
    torch.save({"model": b.state_dict(), "towers": "split", "spec": arena.spec.to_dict(), "model_cfg": mc,
                "rule": "survival", "steps": 0}, tmp_path / "weights.pt")
    p = load_brain_policy(tmp_path, arena.spec)
    assert p.rule.brain.eye_norm is None
    e = torch.randn(1, 6, *old.input_hw)
    v = torch.rand(1, 2 + arena.spec.touch_channels)
    t = torch.zeros(1, old.thought_size)
    torch.testing.assert_close(p.rule.brain(e, v, t), b(e, v, t))


def test_setback_measures_lives_against_the_best():
    from edge_runtime.survival_state import Setback
    sb = Setback(RuleConfig(setback_lives=3, setback_ratio=0.5, setback_decay=1.0))

    def life(n):
        for i in range(n):
            sb.count(i == n - 1)

    for n in (100, 120, 80):
        life(n)
    assert sb() == 0.0 and sb.best == 100
    for n in (60, 70, 90):  # the ups and downs of learning: within half the best
        life(n)
    assert sb() == 0.0
    for n in (20, 20, 20):  # the world changed: lives a fifth of the best
        life(n)
    assert sb() == pytest.approx(1 - 20 / 50)
    assert sb.target_fraction() == pytest.approx(0.3 + 0.6 * (0.8 - 0.3))
    for _ in range(45):  # a life that outgrows the recent median ends the setback at once
        sb.count(False)
    assert sb() == pytest.approx(1 - 45 / 50)
    sb.count(False)
    sb.count(False)
    sb.count(False)
    sb.count(False)
    sb.count(False)
    assert sb() == 0.0
    fading = Setback(RuleConfig(setback_lives=1, setback_decay=0.5))
    fading.count(True)  # a life of 1
    for _ in range(7):
        fading.count(False)
    fading.count(True)  # best 8
    for _ in range(3):
        fading.count(True)  # lives of 1: best 4, 2, 1
    assert fading.best == 1 and fading() == 0.0
    off = Setback(RuleConfig(setback_entropy_target=0.0))
    assert off.target_fraction() == RuleConfig().entropy_target


def test_a_setback_raises_the_entropy_weights_forgets_toward_birth_and_is_kept():
    arena = Arena()
    s = arena.reset(seed=4)
    r = build(arena.spec, ModelConfig(), RuleConfig(name="survival", setback_lives=2), seed=0)
    twin = build(arena.spec, ModelConfig(), RuleConfig(name="survival", setback_lives=2, setback_entropy_target=0.0,
                                                       setback_forget=0.0), seed=0)
    enc = SenseEncoder(arena.spec, ModelConfig().input_hw)
    for rule in (r, twin):  # two long lives, then short ones: the same history for both
        rule.setback.load({"life_len": 0, "lifespans": [400, 400], "best": 400.0})
    # lives of 30 decisions, far below half the best; the setback starts at the second death (the median of the
    # last two is then 30) and the last 10 decisions learn under it, with no death after to roll them back
    _loop(r, arena, enc, s, 70, lambda i: Feeling(0.0, -0.0025, i % 30 == 29))
    _loop(twin, arena, enc, arena.reset(seed=4), 70, lambda i: Feeling(0.0, -0.0025, i % 30 == 29))
    assert list(r.setback.lifespans) == [30, 30], "each death must be counted, the rollbacks notwithstanding"
    assert r.setback() == pytest.approx(1 - 30 / (0.5 * 400 * RuleConfig().setback_decay ** 2))  # the best fades per life
    assert all(a > b for a, b in zip(r.log_beta, twin.log_beta)), "a setback must raise every head's entropy weight"
    # and at the death in the setback both towers went f * setback_forget (~8%) of the way back to their birth
    def from_birth(rule):
        return sum(float((p.detach() - p0).norm() ** 2) for p, p0 in zip(rule.p_d + rule.p_pi, r.birth)) ** 0.5
    assert from_birth(r) < 0.95 * from_birth(twin)
    assert twin.birth == []  # setback_forget = 0 keeps no copy
    # a checkpoint carries the lives' history
    again = build(arena.spec, ModelConfig(), RuleConfig(name="survival", setback_lives=2), seed=1)
    again.load_state_dict(r.state_dict())
    assert again.setback.state() == r.setback.state()
