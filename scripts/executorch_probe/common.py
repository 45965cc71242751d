"""Shared bits: build the project's brain, the two per-tower VJP modules, example inputs."""
import torch
import torch.nn as nn


def make_brain():
    from edge_runtime.config import Config
    from edge_runtime.rules import build
    from sim_bridge.arena import Arena

    cfg = Config()
    spec = Arena(cfg.arena).spec
    rule = build(spec, cfg.model, cfg.rule, seed=0)
    return rule.brain


class VjpDiscomfort(nn.Module):
    """loss = sum(discomfort(eyes, body, thought) * cot); param names 'discomfort.<...>' as in Brain."""

    def __init__(self, brain):
        super().__init__()
        self.discomfort = brain.discomfort

    def forward(self, eyes, body, thought, cot):
        return (self.discomfort(eyes, body, thought) * cot).sum()


class VjpPolicy(nn.Module):
    """loss = sum(policy_out(policy.hidden(eyes, body, thought), hd) * cot); param names 'policy.<...>'."""

    def __init__(self, brain):
        super().__init__()
        self.policy = brain.policy
        self.reads_critic = brain.cfg.actor_reads_critic

    def forward(self, eyes, body, thought, hd, cot):
        h = self.policy.hidden(eyes, body, thought)
        return (self.policy.out(torch.cat([h, hd], 1) if self.reads_critic else h) * cot).sum()


def example_inputs(brain, which, seed=0):
    g = torch.Generator().manual_seed(seed)
    r, cfg = brain.regions, brain.cfg
    eyes = torch.randn(1, 6, *cfg.input_hw, generator=g)
    body = torch.randn(1, brain.body_dim, generator=g)
    thought = torch.randn(1, cfg.thought_size, generator=g)
    if which == "discomfort":
        return (eyes, body, thought, torch.randn(1, r.loss, generator=g))
    hd = torch.randn(1, brain.discomfort.width, generator=g)
    return (eyes, body, thought, hd, torch.randn(1, r.actions + r.thought, generator=g))


def make_vjp(brain, which):
    return VjpDiscomfort(brain) if which == "discomfort" else VjpPolicy(brain)


# the ort backend's decompositions (edge_runtime/ort_graphs.py), for --decomp
from edge_runtime.ort_graphs import _differentiable_ops as decomposed_ops  # noqa: E402
