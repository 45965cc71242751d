"""The brain's network: our own MobileNetV3 and one output tensor with named regions.

Input: both eyes stacked as 6 channels, the body vector (hp, energy, touch...)
and the thought fed back from the previous step. Output: one tensor whose
regions are read as action logits (one block per action head), the model's own
loss, its own learning rate, and the thought stream (the majority).

Normalisation is GroupNorm with one group and no affine, i.e. LayerNorm over
(C, H, W) of each sample: sound at batch 1, unlike BatchNorm in train mode.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .body import BodySpec
from .config import ModelConfig
from .mobilenet_tables import BLOCKS, LAST_CONV, make_divisible
from .regions import Regions


def norm2d(c: int, kind: str) -> nn.Module:
    return nn.GroupNorm(1, c, affine=False) if kind == "layer" else nn.Identity()


def act(kind: str) -> nn.Module:
    return nn.Hardswish() if kind == "HS" else nn.ReLU()


class SqueezeExcite(nn.Module):
    def __init__(self, c: int):
        super().__init__()
        mid = make_divisible(c // 4)
        self.fc1 = nn.Conv2d(c, mid, 1)
        self.fc2 = nn.Conv2d(mid, c, 1)

    def forward(self, x):
        s = F.adaptive_avg_pool2d(x, 1)
        s = F.relu(self.fc1(s))
        return x * F.hardsigmoid(self.fc2(s))


class InvertedResidual(nn.Module):
    def __init__(self, cin, k, exp, cout, se, nl, stride, norm):
        super().__init__()
        layers = []
        if exp != cin:
            layers += [nn.Conv2d(cin, exp, 1, bias=False), norm2d(exp, norm), act(nl)]
        layers += [nn.Conv2d(exp, exp, k, stride, k // 2, groups=exp, bias=False), norm2d(exp, norm), act(nl)]
        if se:
            layers.append(SqueezeExcite(exp))
        layers += [nn.Conv2d(exp, cout, 1, bias=False), norm2d(cout, norm)]
        self.body = nn.Sequential(*layers)
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        y = self.body(x)
        return x + y if self.residual else y


class MobileNetV3(nn.Module):
    """MobileNetV3 feature extractor (no classifier), batch-1-safe normalisation."""

    def __init__(self, in_ch: int, preset: str = "compact", width: float = 1.0, norm: str = "layer", head: str = "flatten", input_hw=(24, 32)):
        super().__init__()
        c0 = make_divisible(16 * width)
        layers = [nn.Conv2d(in_ch, c0, 3, 2, 1, bias=False), norm2d(c0, norm), nn.Hardswish()]
        cin = c0
        for k, exp, cout, se, nl, s in BLOCKS[preset]:
            e, o = make_divisible(exp * width), make_divisible(cout * width)
            layers.append(InvertedResidual(cin, k, e, o, se, nl, s, norm))
            cin = o
        clast = make_divisible(LAST_CONV[preset] * width)
        layers += [nn.Conv2d(cin, clast, 1, bias=False), norm2d(clast, norm), nn.Hardswish()]
        self.features = nn.Sequential(*layers)
        self.head = head
        with torch.no_grad():
            y = self.features(torch.zeros(1, in_ch, *input_hw))
        self.out_shape = tuple(y.shape[1:])
        self.out_dim = y.numel() if head == "flatten" else y.shape[1]

    def forward(self, x):
        y = self.features(x)
        return y.flatten(1) if self.head == "flatten" else y.mean((2, 3))


class Tower(nn.Module):
    """MobileNetV3 trunk on the eyes, then a small head that also sees the body vector and thought."""

    def __init__(self, cfg: ModelConfig, body_dim: int, thought_dim: int, out_dim: int, extra_in: int = 0):
        super().__init__()
        self.trunk = MobileNetV3(6, cfg.preset, cfg.width, cfg.norm, cfg.head, cfg.input_hw)
        self.skip = tuple(cfg.eye_skip) if cfg.eye_skip[0] > 0 else None
        skip_dim = 6 * self.skip[0] * self.skip[1] if self.skip else 0
        self.fc = nn.Linear(self.trunk.out_dim + skip_dim + body_dim + thought_dim, cfg.hidden)
        self.thought_dim = thought_dim
        # the direct path: what the body feels and where colours are, straight to the output layer, so a
        # young network can learn "touch ahead: do not drive" or "green on the left: turn" as one linear step
        self.direct = body_dim + skip_dim if cfg.head_reads_senses else 0
        self.width = cfg.hidden + self.direct  # what hidden() returns
        self.out = nn.Linear(self.width + extra_in, out_dim)

    def hidden(self, eyes, body, thought):
        parts = [self.trunk(eyes)]
        if self.skip:
            # a coarse view of the same raw pixels beside the trunk: a young trunk's features are
            # noise, while "which colour is where" is readable from the first step
            parts.append(F.adaptive_avg_pool2d(eyes, self.skip).flatten(1))
        z = torch.cat(parts + [body, thought], 1)
        h = F.leaky_relu(F.layer_norm(self.fc(z), (self.fc.out_features,)), 0.01)
        if self.direct:
            h = torch.cat([h, body] + parts[1:], 1)
        return h

    def forward(self, eyes, body, thought):
        return self.out(self.hidden(eyes, body, thought))


class EyeNorm(nn.Module):
    """Each eye pixel (per channel and position) standardised by its running mean and std (Welford), as
    stream-x normalises observations. Subtracting the per-position mean removes the scene's fixed layout
    (floor below, walls and sky above), so what stands out is what differs from the usual view: food, a
    hazard, a wall too close. The statistics are buffers: they live in the checkpoint, learning updates
    them once per decision (update()), frozen evaluation only reads them. They are not rolled back on
    death: they describe the senses, not what was learned. Clipped to +-CLIP so one odd frame cannot
    dominate the overshoot bound's L1 norm."""

    CLIP = 5.0
    MIN_STD = 1e-2  # a pixel that never changed (n small, or a constant background) is not blown up

    def __init__(self, shape: tuple[int, ...]):
        super().__init__()
        self.register_buffer("count", torch.zeros(()))
        self.register_buffer("mean", torch.zeros(1, *shape))
        self.register_buffer("m2", torch.zeros(1, *shape))

    @torch.no_grad()
    def update(self, x: torch.Tensor):
        self.count += 1
        d = x - self.mean
        self.mean += d / self.count
        self.m2 += d * (x - self.mean)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.count < 2:
            return x - self.mean
        std = (self.m2 / (self.count - 1)).sqrt().clamp_min(self.MIN_STD)
        return ((x - self.mean) / std).clamp(-self.CLIP, self.CLIP)


class Brain(nn.Module):
    """The whole model. forward() returns one output tensor (1, regions.total).

    towers="shared": one MobileNetV3 produces every region (the seed's layout).
    towers="split": a policy tower produces action logits, learning rate and
    thought; a discomfort tower produces the loss region. Separate towers keep
    the two objectives from fighting over the same features (as in stream-x's
    separate actor and critic); it is still one output tensor.
    """

    def __init__(self, spec: BodySpec, cfg: ModelConfig, towers: str = "shared"):
        super().__init__()
        if towers not in ("shared", "split"):
            raise ValueError(f"towers must be shared|split, got {towers!r}")
        self.spec = spec
        self.cfg = cfg
        self.towers = towers
        self.regions = Regions(tuple(spec.action_heads.items()), cfg.loss_size, cfg.lr_size, cfg.thought_size)
        self.body_dim = 2 + spec.touch_channels
        t = cfg.thought_size
        self.eye_norm = EyeNorm((6, *cfg.input_hw)) if cfg.eye_norm else None
        if towers == "shared":
            self.policy = Tower(cfg, self.body_dim, t, self.regions.total)
            self.discomfort = None
        else:
            self.discomfort = Tower(cfg, self.body_dim, t, cfg.loss_size)
            extra = self.discomfort.width if cfg.actor_reads_critic else 0
            self.policy = Tower(cfg, self.body_dim, t, self.regions.actions + t, extra_in=extra)
            # the learning-rate region reads the policy's features without
            # sending gradient back into them (it is trained by its own target)
            self.lr_head = nn.Linear(self.policy.width, cfg.lr_size)
        self.reset_parameters()

    def reset_parameters(self):
        # sparse init only where fan-in is wide (the fully connected head): a pointwise conv at
        # narrow width has 8 inputs per channel, and zeroing 90% of them would cut it off
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                sparse_init_(m.weight, self.cfg.sparse_init if isinstance(m, nn.Linear) else 0.0)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
        if self.cfg.thought_init == "zero":
            for tower in (self.policy, self.discomfort):
                if tower is not None and tower.thought_dim:
                    with torch.no_grad():
                        tower.fc.weight[:, -tower.thought_dim:] = 0.0

    def zero_thought(self) -> torch.Tensor:
        return torch.zeros(1, self.cfg.thought_size)

    def observe(self, eyes: torch.Tensor):
        """Learning saw these eyes: fold them into the eye statistics (no-op without eye_norm)."""
        if self.eye_norm is not None:
            self.eye_norm.update(eyes)

    def prepare(self, eyes: torch.Tensor, thought: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """What every tower reads: standardised eyes, and the thought (zeros in the thought ablation)."""
        if not self.cfg.thought_feedback:
            thought = torch.zeros_like(thought)
        if self.eye_norm is not None:
            eyes = self.eye_norm(eyes)
        return eyes, thought

    def forward(self, eyes: torch.Tensor, body: torch.Tensor, thought: torch.Tensor) -> torch.Tensor:
        eyes, thought = self.prepare(eyes, thought)
        if self.towers == "shared":
            return self.policy(eyes, body, thought)
        return self.split_forward(eyes, body, thought)[0]

    def split_forward(self, eyes, body, thought, fixed=None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Split towers on prepared inputs (see prepare): (output, h, hd), h and hd the policy's and the discomfort
        tower's hidden features. The policy's output layer reads hd, and the learning-rate head reads h, without
        sending gradient into them: detached here. A graph that cannot detach (ONNX, edge_runtime/ort_net.py)
        takes the same values in as inputs instead: fixed = (h, hd)."""
        h = self.policy.hidden(eyes, body, thought)
        hd = self.discomfort.hidden(eyes, body, thought)
        h_read, hd_read = (h.detach(), hd.detach()) if fixed is None else fixed
        out = self.assemble(self.policy_out(h, hd_read), self.discomfort.out(hd), self.lr_head(h_read))
        return out, h, hd

    def policy_out(self, h: torch.Tensor, hd_read: torch.Tensor) -> torch.Tensor:
        """The policy tower's output layer: action logits, then the thought."""
        return self.policy.out(torch.cat([h, hd_read], 1) if self.cfg.actor_reads_critic else h)

    def assemble(self, p: torch.Tensor, loss: torch.Tensor, lr: torch.Tensor) -> torch.Tensor:
        """The one output tensor from the split towers' parts: actions, loss, lr, thought."""
        a = self.regions.actions
        return torch.cat([p[:, :a], loss, lr, p[:, a:]], 1)

    def discomfort_estimate(self, eyes: torch.Tensor, body: torch.Tensor, thought: torch.Tensor) -> torch.Tensor:
        """The loss region alone. With split towers only the discomfort tower runs (the TD target's forward)."""
        if self.towers == "shared":
            return self.split(self(eyes, body, thought))["loss"]
        eyes, thought = self.prepare(eyes, thought)
        return self.discomfort(eyes, body, thought)

    def split(self, out: torch.Tensor) -> dict[str, torch.Tensor]:
        s = self.regions.slices()
        return {k: out[:, v] for k, v in s.items()}

    def head_logits(self, actions: torch.Tensor) -> list[torch.Tensor]:
        out, i = [], 0
        for _, n in self.regions.heads:
            out.append(actions[:, i:i + n])
            i += n
        return out

    def param_groups(self) -> dict[str, list[nn.Parameter]]:
        if self.towers == "shared":
            return {"all": list(self.parameters())}
        return {
            "policy": list(self.policy.parameters()),
            "discomfort": list(self.discomfort.parameters()),
            "lr_head": list(self.lr_head.parameters()),
        }


def sparse_init_(w: torch.Tensor, sparsity: float):
    """LeCun-uniform init with a fraction of each unit's incoming weights zeroed (stream-x's sparse init)."""
    fan_out = w.shape[0]
    fan_in = w[0].numel()
    bound = math.sqrt(1.0 / fan_in)
    with torch.no_grad():
        w.uniform_(-bound, bound)
        n_zero = min(int(sparsity * fan_in), fan_in - 1)  # every unit keeps at least one input
        if n_zero:
            flat = w.view(fan_out, fan_in)
            for i in range(fan_out):
                flat[i, torch.randperm(fan_in)[:n_zero]] = 0.0
    return w


def n_params(m: nn.Module) -> int:
    return sum(p.numel() for p in m.parameters())
