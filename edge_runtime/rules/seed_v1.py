"""`seed-v1`: the seed's rule exactly as written. The baseline that shows why grounding matters.

Every step:
    out      = brain(eyes, body, thought)               one output tensor
    a        ~ softmax(out[actions])                     per action head
    L        = mean(out[loss] ** 2)                      the model's own loss
    lr       = seed_lr_min + (seed_lr_max - seed_lr_min) * sigmoid(mean(out[lr]))
    theta   <- theta - lr * dL/dtheta                    then the graph is freed
    thought <- tanh(out[thought])                        next step's input
Every K steps the parameters are cached. On death: restore the cache, then one
negative-loss step on the last pre-death input,
    theta   <- theta - death_lr * d(-L)/dtheta.

What it trains, and what it does not: dL/dtheta only reaches the weights that
make the loss patch, so minimising it teaches the model to output zeros there.
No gradient reaches the action logits except through shared features, and
nothing in L depends on the action taken or on what the body felt, so the
policy stays near its initial (close to uniform) distribution. The LR region
is never trained, so the self-made learning rate sits mid-range. The death
update pushes the loss patch away from zero for one input; it does not know
which action led there. Expect random-policy survival; the benchmark shows it.
"""
from __future__ import annotations

import torch

from .base import Feeling, Rule


class SeedV1(Rule):
    name = "seed-v1"
    towers = "shared"

    def __init__(self, brain, cfg, seed=0, net=None):
        super().__init__(brain, cfg, seed, net)
        self.params = list(brain.parameters())
        self._last_input = None
        self.take_snapshot()

    def _self_lr(self, lr_region: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        return c.seed_lr_min + (c.seed_lr_max - c.seed_lr_min) * torch.sigmoid(lr_region.mean())

    def remember(self, eyes, body, thought, action):
        self._last_input = (eyes, body, thought)  # the last pre-death input, for the negative-loss update

    def learn(self, feel: Feeling, next_eyes, next_body) -> dict:
        pending = self.take_pending_fault()
        if pending is not None:
            return pending
        r, logits, action = self._cur
        self._cur = None
        loss = (r["loss"] ** 2).mean()
        lr = self._self_lr(r["lr"]).detach()
        ent = float(self.entropy(logits).detach())
        if not self.finite(loss, lr):
            return self.fault("non-finite self-loss or self-LR")
        grads = self.net.grad(loss, self.params)
        grads = [torch.zeros_like(p) if g is None else g for p, g in zip(self.params, grads)]
        gnorm = float(sum(torch._foreach_norm(grads)))
        if not self.finite(gnorm):
            return self.fault("non-finite gradient")
        with torch.no_grad():
            torch._foreach_add_(self.params, grads, alpha=-float(lr))
        self.steps += 1
        m = {"self_loss": float(loss.detach()), "self_lr": float(lr), "lr_eff": float(lr), "entropy": ent, "td_error": 0.0}
        if feel.dead:
            self.deaths += 1
            m["rollback"] = self._die()
        elif self.cfg.rollback and self.steps % self.cfg.rollback_every == 0:
            self.take_snapshot()
        return m

    def _die(self) -> bool:
        rolled = self.cfg.rollback and self.rollback("death")
        eyes, body, thought = self._last_input
        out = self.net.forward(eyes, body, thought)
        neg = -(self.brain.split(out)["loss"] ** 2).mean()
        grads = self.net.grad(neg, self.params)
        if all(g is None or torch.isfinite(g).all() for g in grads):
            with torch.no_grad():
                for p, g in zip(self.params, grads):
                    if g is not None:
                        p.add_(g, alpha=-self.cfg.death_lr)
        else:
            self.fault("non-finite death gradient")
        return bool(rolled)
