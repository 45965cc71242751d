"""The split-tower Brain in numpy, forward and backward by hand: a learner that never loads torch.

The network is model.Brain's, layer for layer (the same MobileNetV3 block tables, the same parameter names and
shapes, so weights move between the two by name), computed at batch 1 on float32 arrays:

    eyes (6, H, W) --EyeNorm--> trunk (MobileNetV3, GroupNorm(1) without affine = LayerNorm over C,H,W)
                                  |-- flatten --+
    pooled raw eyes (eye_skip) ----------------+-- + body + thought --> fc --> LayerNorm --> leaky_relu = h0
    h = [h0, body, pooled eyes]  (head_reads_senses)

    discomfort tower:  loss   = out_D(h_D)
    policy tower:      p      = out_pi([h_pi, h_D detached])   actions, then the thought
    learning rate:     lr     = lr_head(h_pi detached)
    output             = [actions, loss, lr, thought]

Why by hand: at batch 1 a torch process pays about 205 MB to import torch before it holds one weight, and a
per-op dispatch cost that dwarfs these small layers' arithmetic. The backward pass is the chain rule written out
per layer (layers.py, tower.py); tests/test_numpy_learner.py holds every gradient to torch autograd's.

Each tower's parameters live in one flat float32 vector (`Tower.flat`) with a named view per parameter, in
torch's parameter order, so the rule's traces and bounded steps are one array operation per block.
"""
from __future__ import annotations

import json
import math

import numpy as np

from ..body import BodySpec
from ..config import ConfigError, ModelConfig
from ..regions import Regions
from .layers import F32
from .tower import Tower


def supported(cfg: ModelConfig) -> None:
    """What this learner computes: the survival rule's split towers. Anything else names its field."""
    if cfg.head != "flatten":
        raise ConfigError(f"model.head: model.backend = numpy computes head = flatten, got {cfg.head!r}")


def save_npz(path, state: dict[str, np.ndarray], meta: dict):
    """weights.npz: a state dict by torch Brain's names, and `meta` (JSON) under __meta__ (evaluate.py reads it)."""
    arrays = dict(state)
    arrays["__meta__"] = np.frombuffer(json.dumps(meta).encode(), np.uint8)
    with open(path, "wb") as f:
        np.savez(f, **arrays)


class EyeNorm:
    """model.EyeNorm in numpy: each eye pixel standardised by its running mean and std (Welford), clipped."""

    CLIP, MIN_STD = 5.0, 1e-2

    def __init__(self, shape):
        self.count = F32(0.0)
        self.mean = np.zeros(shape, F32)
        self.m2 = np.zeros(shape, F32)

    def update(self, x):
        self.count = F32(self.count + F32(1.0))
        d = x - self.mean
        self.mean += d / self.count
        self.m2 += d * (x - self.mean)

    def __call__(self, x):
        if self.count < 2:
            return x - self.mean
        std = np.maximum(np.sqrt(self.m2 / (self.count - F32(1.0))), F32(self.MIN_STD))
        return np.clip((x - self.mean) / std, -self.CLIP, self.CLIP)


class NumpyBrain:
    """model.Brain with split towers, in numpy. forward() returns the output vector (regions.total,) and a cache
    for the backward passes the survival rule asks for (grad_discomfort, grad_policy, grad_lr_head)."""

    towers = "split"

    def __init__(self, spec: BodySpec, cfg: ModelConfig, seed: int = 0):
        supported(cfg)
        self.spec, self.cfg = spec, cfg
        self.regions = Regions(tuple(spec.action_heads.items()), cfg.loss_size, cfg.lr_size, cfg.thought_size)
        self.body_dim = 2 + spec.touch_channels
        t = cfg.thought_size
        self.eye_norm = EyeNorm((6, *cfg.input_hw)) if cfg.eye_norm else None
        self.discomfort = Tower(cfg, self.body_dim, t, cfg.loss_size)
        extra = self.discomfort.width if cfg.actor_reads_critic else 0
        self.policy = Tower(cfg, self.body_dim, t, self.regions.actions + t, extra_in=extra)
        n_w = cfg.lr_size * self.policy.width
        self.lr_flat = np.zeros(n_w + cfg.lr_size, F32)  # lr_head's weight, then its bias
        self.lr_w = self.lr_flat[:n_w].reshape(cfg.lr_size, self.policy.width)
        self.lr_b = self.lr_flat[n_w:]
        rng = np.random.default_rng(seed)
        # torch's Brain initialises its modules in registration order: the discomfort tower, the policy, lr_head
        self.discomfort.init(rng, cfg.sparse_init, cfg.thought_init == "zero")
        self.policy.init(rng, cfg.sparse_init, cfg.thought_init == "zero")
        bound = math.sqrt(1.0 / self.policy.width)
        self.lr_w[...] = rng.uniform(-bound, bound, self.lr_w.shape)
        n_zero = min(int(cfg.sparse_init * self.policy.width), self.policy.width - 1)
        for i in range(cfg.lr_size):
            if n_zero:
                self.lr_w[i, rng.permutation(self.policy.width)[:n_zero]] = 0.0
        self.slices = self.regions.slices()
        self._a = self.regions.actions

    # ------------------------------------------------------------------ parameters
    def flats(self) -> list[np.ndarray]:
        """Every parameter, as the three flat vectors the rule updates in place: discomfort, policy, lr head."""
        return [self.discomfort.flat, self.policy.flat, self.lr_flat]

    def n_params(self) -> int:
        return sum(f.size for f in self.flats())

    def state_dict(self) -> dict[str, np.ndarray]:
        """torch Brain's state_dict keys and shapes (a torch process loads it with load_state_dict)."""
        d = {}
        if self.eye_norm is not None:
            d["eye_norm.count"] = np.array(self.eye_norm.count, F32)
            d["eye_norm.mean"] = self.eye_norm.mean[None].copy()
            d["eye_norm.m2"] = self.eye_norm.m2[None].copy()
        for prefix, tower in (("discomfort", self.discomfort), ("policy", self.policy)):
            for name, v in tower.p.items():
                d[f"{prefix}.{name}"] = v.copy()
        d["lr_head.weight"] = self.lr_w.copy()
        d["lr_head.bias"] = self.lr_b.copy()
        return d

    def load_state_dict(self, d: dict[str, np.ndarray], strict: bool = True):
        """Every key, exactly (strict is always on: the argument is torch's, which checkpoints pass)."""
        want = set(self.state_dict())
        if set(d) != want:
            raise ValueError(f"NumpyBrain.load_state_dict: keys differ: missing {sorted(want - set(d))[:4]}, "
                             f"unexpected {sorted(set(d) - want)[:4]}")
        for prefix, tower in (("discomfort", self.discomfort), ("policy", self.policy)):
            for name, v in tower.p.items():
                v[...] = d[f"{prefix}.{name}"]
        self.lr_w[...] = d["lr_head.weight"]
        self.lr_b[...] = d["lr_head.bias"]
        if self.eye_norm is not None:
            self.eye_norm.count = F32(d["eye_norm.count"])
            self.eye_norm.mean[...] = d["eye_norm.mean"][0]
            self.eye_norm.m2[...] = d["eye_norm.m2"][0]

    def save(self, path, meta: dict):
        """weights.npz: the state dict by torch's names, and `meta` (JSON) under __meta__."""
        save_npz(path, self.state_dict(), meta)

    # ------------------------------------------------------------------ passes
    def zero_thought(self) -> np.ndarray:
        return np.zeros(self.cfg.thought_size, F32)

    def observe(self, eyes):
        if self.eye_norm is not None:
            self.eye_norm.update(eyes)

    def prepare(self, eyes, thought):
        if not self.cfg.thought_feedback:
            thought = np.zeros_like(thought)
        if self.eye_norm is not None:
            eyes = self.eye_norm(eyes)
        return eyes, thought

    def forward(self, eyes, body, thought):
        """(output (regions.total,), cache for the backward passes)."""
        eyes, thought = self.prepare(eyes, thought)
        pooled = self.policy.pooled(eyes) if self.policy.skip else None
        h, hc = self.policy.hidden(eyes, body, thought, pooled)
        hd, hdc = self.discomfort.hidden(eyes, body, thought, pooled)
        p_in = np.concatenate([h, hd]) if self.cfg.actor_reads_critic else h
        p = self.policy.out(p_in)
        loss = self.discomfort.out(hd)
        lr = self.lr_w @ h + self.lr_b
        a = self._a
        out = np.concatenate([p[:a], loss, lr, p[a:]])
        return out, {"h": h, "hc": hc, "hd": hd, "hdc": hdc, "p_in": p_in}

    def discomfort_estimate(self, eyes, body, thought):
        """The loss region alone (the TD target's forward): only the discomfort tower runs."""
        eyes, thought = self.prepare(eyes, thought)
        hd, _ = self.discomfort.hidden(eyes, body, thought)
        return self.discomfort.out(hd)

    def split(self, out) -> dict[str, np.ndarray]:
        return {k: out[v] for k, v in self.slices.items()}

    def head_logits(self, actions) -> list[np.ndarray]:
        out, i = [], 0
        for _, n in self.regions.heads:
            out.append(actions[i:i + n])
            i += n
        return out

    def grad_discomfort(self, cache, d_loss) -> np.ndarray:
        """d <d_loss, loss region> / d theta_D, as one flat vector in the discomfort tower's layout."""
        g = np.zeros_like(self.discomfort.flat)
        self.discomfort.backward(d_loss, cache["hd"], cache["hdc"], self.discomfort.views(g))
        return g

    def grad_policy(self, cache, d_actions) -> np.ndarray:
        """d <d_actions, action logits> / d theta_pi (the thought's outputs get no cotangent)."""
        g = np.zeros_like(self.policy.flat)
        d_out = np.zeros(self.policy.p["out.bias"].shape, F32)
        d_out[:self._a] = d_actions
        self.policy.backward(d_out, cache["p_in"], cache["hc"], self.policy.views(g))
        return g

    def grad_lr_head(self, cache, d_lr) -> np.ndarray:
        """d <d_lr, lr region> / d theta_lr; the head reads h detached."""
        return np.concatenate([np.outer(d_lr, cache["h"]).reshape(-1), d_lr]).astype(F32, copy=False)
