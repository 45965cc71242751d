"""N brains as one batched computation: every parameter stacked along a leading agent axis.

`BatchedBrain` holds, for each parameter of a `Brain`, one tensor of shape (N, *shape): agent i's
slice is agent i's parameter. Its forward runs the same network as `Brain.forward` on N agents at
once, with the agent as the batch axis of the activations, so a population step costs about as many
calls into torch as one agent's step (at batch 1 the per-call overhead is most of the cost, not the
arithmetic). Each layer that has parameters is written in a grouped form:

    pointwise (1x1) convolution and linear layer:  y_i = W_i x_i + b_i      one batched matmul
    depthwise convolution:                         conv2d with groups = N * C
    any other convolution (the stem):              conv2d with groups = N

and layers without parameters (GroupNorm(1, C) without affine, activations, pooling, layer norm) act
per sample already. The weight gradient of a batched matmul with one column (a linear layer at batch 1,
a squeeze-excite's pooled vector) is an outer product; `AgentMatmul` computes it as one (broadcast)
multiply, where a batched GEMM with an inner size of 1 is slow on CPU.

Agent i's output depends only on agent i's slice, so the gradient of a sum over agents of per-agent
objectives, taken with respect to a stacked tensor, holds each agent's own gradient in its slice.
The module tree of `Brain` is walked, not re-declared: a change to model.py changes this forward too,
and the population test (agent i against a lone rule) holds the two together.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..model import Brain, EyeNorm, InvertedResidual, MobileNetV3, SqueezeExcite, Tower


class AgentMatmul(torch.autograd.Function):
    """y = w @ x per agent: w (N, O, I), x (N, I, M).

    With one column (M = 1: a linear layer at batch 1, a squeeze-excite's pooled vector) CPU BLAS runs a
    batched GEMM as N slow matrix-vector products (about 2 ms for 16 agents' 128x890 layer); the same
    products written row-vector times matrix take a quarter of that, and the weight gradient, an outer
    product, is one broadcast multiply."""

    @staticmethod
    def forward(ctx, w, x):
        ctx.save_for_backward(w, x)
        if x.shape[2] == 1:
            return torch.bmm(x.transpose(1, 2), w.transpose(1, 2)).transpose(1, 2)
        return torch.bmm(w, x)

    @staticmethod
    def backward(ctx, g):
        w, x = ctx.saved_tensors
        gw = gx = None
        col = x.shape[2] == 1
        if ctx.needs_input_grad[0]:
            gw = g * x.transpose(1, 2) if col else torch.bmm(g, x.transpose(1, 2))
        if ctx.needs_input_grad[1]:
            gx = torch.bmm(g.transpose(1, 2), w).transpose(1, 2) if col else torch.bmm(w.transpose(1, 2), g)
        return gw, gx


def stack_brains(brains: list[Brain]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    """(parameters, buffers) of N brains of one architecture, each stacked along a new leading axis."""
    params = {n: torch.stack([dict(b.named_parameters())[n].detach() for b in brains]).requires_grad_()
              for n, _ in brains[0].named_parameters()}
    bufs = {n: torch.stack([dict(b.named_buffers())[n] for b in brains]).clone() for n, _ in brains[0].named_buffers()}
    return params, bufs


class BatchedBrain:
    """Forward passes of N agents' brains over stacked parameters. `template` gives the architecture only."""

    def __init__(self, template: Brain, params: dict[str, torch.Tensor], bufs: dict[str, torch.Tensor]):
        self.t = template
        self.p = params
        self.b = bufs
        self.n = next(iter(params.values())).shape[0]
        self.regions = template.regions

    # ------------------------------------------------------------ layers
    def _conv(self, m: nn.Conv2d, name: str, x: torch.Tensor, p) -> torch.Tensor:
        w, b = p[name + ".weight"], p.get(name + ".bias")
        n, c, h, wd = x.shape
        co, k = m.out_channels, m.kernel_size
        if k == (1, 1) and m.stride == (1, 1) and m.groups == 1:
            y = AgentMatmul.apply(w.view(n, co, c), x.reshape(n, c, h * wd))
            if b is not None:
                y = y + b.unsqueeze(2)
            return y.view(n, co, h, wd)
        groups = n * m.groups
        y = F.conv2d(x.reshape(1, n * c, h, wd), w.reshape(n * co, *w.shape[2:]),
                     None if b is None else b.reshape(-1), m.stride, m.padding, m.dilation, groups)
        return y.view(n, co, *y.shape[2:])

    def _linear(self, name: str, x: torch.Tensor, p) -> torch.Tensor:
        y = AgentMatmul.apply(p[name + ".weight"], x.unsqueeze(2)).squeeze(2)
        b = p.get(name + ".bias")
        return y if b is None else y + b

    def _run(self, m: nn.Module, name: str, x: torch.Tensor, p) -> torch.Tensor:
        if isinstance(m, nn.Conv2d):
            return self._conv(m, name, x, p)
        if isinstance(m, nn.Sequential):
            for i, sub in enumerate(m):
                x = self._run(sub, f"{name}.{i}", x, p)
            return x
        if isinstance(m, InvertedResidual):
            y = self._run(m.body, name + ".body", x, p)
            return x + y if m.residual else y
        if isinstance(m, SqueezeExcite):
            s = F.adaptive_avg_pool2d(x, 1)
            s = F.relu(self._conv(m.fc1, name + ".fc1", s, p))
            return x * F.hardsigmoid(self._conv(m.fc2, name + ".fc2", s, p))
        if isinstance(m, MobileNetV3):
            y = self._run(m.features, name + ".features", x, p)
            return y.flatten(1) if m.head == "flatten" else y.mean((2, 3))
        if any(m.parameters(recurse=False)):
            raise TypeError(f"BatchedBrain: no batched form for {type(m).__name__} ({name}) with parameters")
        return m(x)  # GroupNorm without affine, activations, identity: per sample already

    def _hidden(self, tower: Tower, name: str, eyes, body, thought, p) -> torch.Tensor:
        parts = [self._run(tower.trunk, name + ".trunk", eyes, p)]
        if tower.skip:
            parts.append(F.adaptive_avg_pool2d(eyes, tower.skip).flatten(1))
        z = torch.cat(parts + [body, thought], 1)
        fc = self._linear(name + ".fc", z, p)
        h = F.leaky_relu(F.layer_norm(fc, (tower.fc.out_features,)), 0.01)
        if tower.direct:
            h = torch.cat([h, body] + parts[1:], 1)
        return h

    # ------------------------------------------------------------ the brain
    def eye_norm(self, eyes: torch.Tensor, b=None) -> torch.Tensor:
        """EyeNorm.forward per agent, each with its own statistics."""
        b = self.b if b is None else b
        if self.t.eye_norm is None:
            return eyes
        count, mean, m2 = b["eye_norm.count"], b["eye_norm.mean"].squeeze(1), b["eye_norm.m2"].squeeze(1)
        count = count.view(-1, 1, 1, 1)
        centred = eyes - mean
        std = (m2 / (count - 1)).sqrt().clamp_min(EyeNorm.MIN_STD)
        return torch.where(count < 2, centred, (centred / std).clamp(-EyeNorm.CLIP, EyeNorm.CLIP))

    @torch.no_grad()
    def observe(self, eyes: torch.Tensor, mask: torch.Tensor | None = None):
        """EyeNorm.update for the agents in `mask` (all by default): Welford per agent."""
        if self.t.eye_norm is None:
            return
        b = self.b
        count, mean, m2 = b["eye_norm.count"], b["eye_norm.mean"], b["eye_norm.m2"]
        x = eyes.unsqueeze(1)
        new_count = count + 1
        d = x - mean
        new_mean = mean + d / new_count.view(-1, 1, 1, 1, 1)
        new_m2 = m2 + d * (x - new_mean)
        if mask is None:
            count.copy_(new_count), mean.copy_(new_mean), m2.copy_(new_m2)
        else:
            count.copy_(torch.where(mask, new_count, count))
            mk = mask.view(-1, 1, 1, 1, 1)
            mean.copy_(torch.where(mk, new_mean, mean))
            m2.copy_(torch.where(mk, new_m2, m2))

    def _inputs(self, eyes, thought, b):
        if not self.t.cfg.thought_feedback:
            thought = torch.zeros_like(thought)
        return self.eye_norm(eyes, b), thought

    def forward(self, eyes, body, thought, p=None, b=None) -> torch.Tensor:
        """(N, regions.total), as Brain.forward row by row. `p`/`b`: other stacked tensors of the same layout
        (a slice of agents, as the death replay uses)."""
        p = self.p if p is None else p
        b = self.b if b is None else b
        t = self.t
        eyes, thought = self._inputs(eyes, thought, b)
        if t.towers != "split":
            raise ValueError("BatchedBrain: needs model.towers = split (the survival rule's layout)")
        h = self._hidden(t.policy, "policy", eyes, body, thought, p)
        hd = self._hidden(t.discomfort, "discomfort", eyes, body, thought, p)
        loss = self._linear("discomfort.out", hd, p)
        pol = self._linear("policy.out", torch.cat([h, hd.detach()], 1) if t.cfg.actor_reads_critic else h, p)
        lr = self._linear("lr_head", h.detach(), p)
        a = self.regions.actions
        return torch.cat([pol[:, :a], loss, lr, pol[:, a:]], 1)

    __call__ = forward

    def discomfort_estimate(self, eyes, body, thought) -> torch.Tensor:
        """(N, loss_size): the discomfort tower alone (the TD target's forward)."""
        eyes, thought = self._inputs(eyes, thought, self.b)
        return self._linear("discomfort.out", self._hidden(self.t.discomfort, "discomfort", eyes, body, thought, self.p),
                            self.p)

    def agent_state_dict(self, i: int) -> dict[str, torch.Tensor]:
        """Agent i as a plain Brain state dict (what weights.pt, evaluation and export read)."""
        out = {n: v[i].detach().clone() for n, v in self.p.items()}
        out.update({n: v[i].clone() for n, v in self.b.items()})
        return out
