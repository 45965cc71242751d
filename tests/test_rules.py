import math

import pytest
import torch

from edge_runtime.config import ModelConfig, RuleConfig
from edge_runtime.rules import Feeling, build
from edge_runtime.senses import SenseEncoder
from sim_bridge.arena import Arena


def setup(rule="seed-v1", **rule_kw):
    arena = Arena()
    s = arena.reset(seed=1)
    r = build(arena.spec, ModelConfig(), RuleConfig(name=rule, **rule_kw), seed=0)
    enc = SenseEncoder(arena.spec, ModelConfig().input_hw)
    return arena, s, r, enc


def flat(params):
    return torch.cat([p.detach().reshape(-1) for p in params]).clone()


@pytest.mark.parametrize("rule", ["seed-v1", "survival"])
def test_parameters_change_every_step(rule):
    arena, s, r, enc = setup(rule)
    e, b = enc(s)
    for _ in range(5):
        before = flat(r.brain.parameters())
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        r.learn(Feeling(-0.001, -0.0025, False), e, b)
        assert not torch.equal(before, flat(r.brain.parameters()))


def test_seed_v1_trains_only_toward_a_zero_loss_patch():
    """Its loss does not depend on the action: the action head's own weights get no gradient."""
    arena, s, r, enc = setup("seed-v1")
    out_w = r.brain.policy.out.weight
    a_rows = r.brain.regions.slices()["actions"]
    e, b = enc(s)
    before = out_w[a_rows].detach().clone()
    a = r.decide(e, b)
    s = arena.act(a)
    r.learn(Feeling(0, 0, False), *enc(s))
    assert torch.equal(before, out_w[a_rows].detach())


def test_survival_gradient_reaches_action_logits():
    arena, s, r, enc = setup("survival")
    out_w = r.brain.policy.out.weight
    a_rows = r.brain.regions.slices()["actions"]
    e, b = enc(s)
    before = out_w[a_rows].detach().clone()
    for _ in range(3):
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        r.learn(Feeling(-0.05, 0.2, False), e, b)
    assert not torch.equal(before, out_w[a_rows].detach())


@pytest.mark.parametrize("rule", ["seed-v1", "survival"])
def test_rollback_restores_bit_exactly(rule):
    arena, s, r, enc = setup(rule)
    e, b = enc(s)
    r.take_snapshot()
    snap_params = flat(r.brain.parameters())
    extra = [flat(r.z_pi), flat(r.z_d)] if rule == "survival" else []
    for _ in range(4):
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        r.learn(Feeling(-0.001, -0.003, False), e, b)
    assert not torch.equal(snap_params, flat(r.brain.parameters()))
    assert r.rollback("test")
    assert torch.equal(snap_params, flat(r.brain.parameters()))
    if rule == "survival":
        assert torch.equal(extra[0], flat(r.z_pi)) and torch.equal(extra[1], flat(r.z_d))


@pytest.mark.parametrize("rule", ["seed-v1", "survival"])
def test_death_rolls_back_and_updates_aversively(rule):
    arena, s, r, enc = setup(rule, rollback_every=1000)
    e, b = enc(s)
    r.take_snapshot()
    snap = flat(r.brain.parameters())
    for i in range(3):
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        m = r.learn(Feeling(-0.3 if i == 2 else 0.0, 0.0, i == 2), e, b)
    assert m["rollback"] and r.rollbacks == 1
    after = flat(r.brain.parameters())
    assert not torch.equal(after, snap)  # the aversive update moved it away from the snapshot
    assert (after - snap).abs().max() < 1.0


def test_survival_self_lr_stays_in_bounds_and_modulates():
    arena, s, r, enc = setup("survival")
    e, b = enc(s)
    seen = []
    for i in range(30):
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        m = r.learn(Feeling(-0.25 if i % 7 == 6 else -0.0025, 0.3 if i % 11 == 10 else 0.0, False), e, b)
        assert r.cfg.lr_min <= m["self_lr"] <= r.cfg.lr_max
        seen.append(m["self_lr"])
    assert max(seen) - min(seen) > 1e-3


def test_fixed_lr_ablation_ignores_the_region():
    arena, s, r, enc = setup("survival", self_lr=False, fixed_lr_scale=0.5)
    e, b = enc(s)
    a = r.decide(e, b)
    s = arena.act(a)
    assert r.learn(Feeling(0, -0.01, False), *enc(s))["self_lr"] == 0.5


@pytest.mark.parametrize("rule", ["seed-v1", "survival"])
def test_nan_never_reaches_the_parameters(rule, caplog):
    arena, s, r, enc = setup(rule)
    e, b = enc(s)
    a = r.decide(e, b)
    s = arena.act(a)
    e, b = enc(s)
    r.learn(Feeling(0, -0.01, False), e, b)
    r.take_snapshot()
    good = flat(r.brain.parameters())
    bad_eyes = e.clone()
    bad_eyes[0, 0, 0, 0] = float("nan")
    a = r.decide(bad_eyes, b)
    s = arena.act(a)
    m = r.learn(Feeling(float("nan") if rule == "survival" else 0.0, -0.01, False), *enc(s))
    assert "fault" in m and r.faults == 1
    after = flat(r.brain.parameters())
    assert torch.isfinite(after).all() and torch.equal(after, good)
    assert "learning fault" in caplog.text


def test_exploding_self_lr_is_caught(monkeypatch):
    arena, s, r, enc = setup("survival")
    e, b = enc(s)
    r.take_snapshot()
    good = flat(r.brain.parameters())
    monkeypatch.setattr(r, "_lr_scale", lambda region: (1e6, torch.sigmoid(region.mean())))
    a = r.decide(e, b)
    s = arena.act(a)
    m = r.learn(Feeling(0, -0.01, False), *enc(s))
    assert "fault" in m
    assert torch.equal(flat(r.brain.parameters()), good)


def test_a_huge_felt_death_is_learned_from_and_a_runaway_estimate_is_a_fault():
    """max_abs_delta guards the estimates (|gamma D(s') - D(s)|), not what the body felt: where deaths are rare the
    scaled death discomfort passes 100 (CartPole), and it must still roll back and make the aversive step."""
    arena, s, r, enc = setup("survival", rollback_every=1000)
    e, b = enc(s)
    r.take_snapshot()
    snap = flat(r.brain.parameters())
    for i in range(3):
        if i == 2:  # a million decisions without a felt event before this death: its scaled discomfort is ~700
            r.scale.load({"u": 0.0, "n": 10**6, "mean": 0.0, "m2": 1.0})
        a = r.decide(e, b)
        s = arena.act(a)
        e, b = enc(s)
        m = r.learn(Feeling(0.0, 0.0, i == 2), e, b)
    assert abs(m["td_error"]) > r.cfg.max_abs_delta  # the felt part alone is beyond the bound ...
    assert "fault" not in m and r.faults == 0 and m["rollback"]  # ... and it is a death, learned from
    assert not torch.equal(flat(r.brain.parameters()), snap)
    # an estimate that ran away is a fault: nothing reaches the parameters
    with torch.no_grad():
        r.brain.discomfort.out.bias += 1000.0
    r.take_snapshot()
    good = flat(r.brain.parameters())
    a = r.decide(e, b)
    s = arena.act(a)
    m = r.learn(Feeling(0.0, 0.0, True), *enc(s))
    assert "fault" in m and r.faults == 1
    assert torch.equal(flat(r.brain.parameters()), good)
