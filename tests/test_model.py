import math

import pytest
import torch

from edge_runtime.config import ModelConfig
from edge_runtime.model import BLOCKS, Brain, MobileNetV3, n_params
from sim_bridge.arena import Arena

SPEC = Arena().spec


def inputs(cfg, batch=1):
    return torch.randn(batch, 6, *cfg.input_hw), torch.rand(batch, 2 + SPEC.touch_channels), torch.zeros(batch, cfg.thought_size)


@pytest.mark.parametrize("towers", ["shared", "split"])
def test_one_output_tensor_with_named_regions(towers):
    cfg = ModelConfig()
    b = Brain(SPEC, cfg, towers)
    out = b(*inputs(cfg))
    assert out.shape == (1, b.regions.total)
    r = b.split(out)
    assert r["actions"].shape[1] == SPEC.n_action_logits == 6
    assert r["loss"].shape[1] == cfg.loss_size and r["lr"].shape[1] == cfg.lr_size
    assert r["thought"].shape[1] == cfg.thought_size
    assert cfg.thought_size > b.regions.total / 2  # the thought stream is the majority
    heads = b.head_logits(r["actions"])
    assert [h.shape[1] for h in heads] == list(SPEC.action_heads.values())


def test_region_sizes_come_from_config():
    cfg = ModelConfig(loss_size=3, lr_size=2, thought_size=40)
    b = Brain(SPEC, cfg, "shared")
    assert b.regions.total == 6 + 3 + 2 + 40


@pytest.mark.parametrize("preset", ["compact", "small", "large"])
def test_mobilenetv3_presets_and_width(preset):
    m1 = MobileNetV3(6, preset, 0.5, input_hw=(32, 32), head="avg")
    m2 = MobileNetV3(6, preset, 1.0, input_hw=(32, 32), head="avg")
    assert n_params(m2) > n_params(m1)
    blocks = [m for m in m2.modules() if m.__class__.__name__ == "InvertedResidual"]
    assert len(blocks) == len(BLOCKS[preset])
    assert m2(torch.randn(1, 6, 32, 32)).shape == (1, m2.out_dim)


def test_normalisation_is_batch_one_safe():
    """At batch 1, an output must not depend on what else is in the batch (no BatchNorm statistics)."""
    cfg = ModelConfig()
    b = Brain(SPEC, cfg, "split")
    e, v, t = inputs(cfg, batch=3)
    together = b(e, v, t)
    alone = b(e[:1], v[:1], t[:1])
    torch.testing.assert_close(together[:1], alone, rtol=1e-4, atol=1e-5)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in b.modules())


def test_thought_is_an_input():
    # by default the weights reading the thought start at zero and grow by learning
    # (tests/test_survival_design.py); with random ones it must move the output at once
    cfg = ModelConfig(sparse_init=0.0, thought_init="sparse")
    b = Brain(SPEC, cfg, "shared")
    e, v, t = inputs(cfg)
    assert not torch.allclose(b(e, v, t), b(e, v, t + 1.0))
    off = Brain(SPEC, ModelConfig(sparse_init=0.0, thought_init="sparse", thought_feedback=False), "shared")
    assert torch.allclose(off(e, v, t), off(e, v, t + 1.0))


def test_body_vector_is_an_input():
    cfg = ModelConfig(sparse_init=0.0)
    b = Brain(SPEC, cfg, "shared")
    e, v, t = inputs(cfg)
    v2 = v.clone()
    v2[0, 0] = 1.0 - v2[0, 0]  # hp
    assert not torch.allclose(b(e, v, t), b(e, v2, t))


def test_sparse_init_zeroes_most_incoming_weights():
    b = Brain(SPEC, ModelConfig(sparse_init=0.9, thought_init="sparse"), "split")
    w = b.policy.fc.weight
    assert (w == 0).float().mean().item() == pytest.approx(0.9, abs=0.01)


@pytest.mark.parametrize("preset", ["compact", "small"])
@pytest.mark.parametrize("width", [0.5, 1.0])
def test_every_parameter_gets_gradient_signal_from_the_eyes(preset, width):
    """A dead trunk (e.g. a layer initialised to all zeros) would leave the agent blind."""
    cfg = ModelConfig(preset=preset, width=width)
    b = Brain(SPEC, cfg, "split")
    e, v, t = inputs(cfg)
    out = b(e, v, t)
    r = b.split(out)
    grads = torch.autograd.grad(r["actions"].sum() + r["loss"].sum(), list(b.policy.parameters()) + list(b.discomfort.parameters()))
    for (name, _), g in zip(list(b.policy.named_parameters()) + list(b.discomfort.named_parameters()), grads):
        assert g.abs().sum() > 0, f"{name} gets no gradient"
    e2 = torch.randn_like(e)
    assert not torch.allclose(b.policy.trunk(e), b.policy.trunk(e2))
