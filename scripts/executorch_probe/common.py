"""Shared bits: build the project's brain, the two per-tower VJP modules, example inputs."""
import torch
import torch.nn as nn
import torch.nn.functional as F


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


# ort_graphs.py-style decompositions, in case the runtime lacks a kernel
def _layer_norm(x, shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(x.dim() - len(shape), x.dim()))
    d = x - x.mean(dims, keepdim=True)
    y = d / torch.sqrt((d * d).mean(dims, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def _group_norm(x, groups, weight=None, bias=None, eps=1e-5):
    assert groups == 1 and weight is None and bias is None
    return _layer_norm(x, tuple(x.shape[1:]), eps=eps)


class decomposed_ops:
    def __enter__(self):
        self.saved = F.hardswish, F.hardsigmoid, F.group_norm, F.layer_norm
        F.hardswish = lambda x, inplace=False: x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0
        F.hardsigmoid = lambda x, inplace=False: torch.clamp(x + 3.0, 0.0, 6.0) / 6.0
        F.group_norm, F.layer_norm = _group_norm, _layer_norm

    def __exit__(self, *a):
        F.hardswish, F.hardsigmoid, F.group_norm, F.layer_norm = self.saved


def vmhwm_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
