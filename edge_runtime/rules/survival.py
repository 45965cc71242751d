"""`survival` (the default): the seed's four mechanisms, grounded in what the body feels.

Notation, per decision t (one or more body steps):
    out_t        = brain(eyes_t, body_t, thought_t)        one output tensor
    D(s_t)       = mean(out_t[loss])                       the self-generated loss: the agent's own
                                                           estimate of discounted future discomfort
    pi(.|s_t)    = softmax(out_t[actions]) per head        a_t ~ pi
    u_t          = sigmoid(mean(out_t[lr]))                the self-generated learning rate, in (0, 1)
    s_lr         = lr_min + (lr_max - lr_min) * u_t       in [lr_min, lr_max], lr_max <= 1
    thought_t+1  = tanh(out_t[thought])                    fed back as input

What the body felt over the decision (sensations, never a score from the world):
    c_t = -(dHP + dEnergy) + death_discomfort * [died]     discomfort, then scaled by the running
    c~_t = c_t / std(discounted sum of c)                  std of its discounted sum (stream-x)

Temporal-difference error of the agent's own discomfort estimate:
    delta_t = c~_t + gamma * D(s_t+1) - D(s_t)             D(s_t+1) = 0 after death

Eligibility traces (one per parameter, per tower), gamma*lambda decay:
    z_D   <- gamma*lambda*z_D  + grad D(s_t)
    z_pi  <- gamma*lambda*z_pi + grad [ log pi(a_t|s_t) + beta * sign(-delta_t) * H(pi(.|s_t)) ]

Overshoot-bounded step (ObGD, Elsayed et al. 2024), per tower with its kappa:
    M     = alpha * kappa * max(|delta_t|, 1) * ||z||_1
    a_obg = alpha / max(M, 1)

Update, with the self-generated rate scaling the bounded step (so it can only
make a safe step smaller, never larger than the bound):
    theta_D  <- theta_D  + s_lr * a_obg_D  * delta_t * z_D     descends 1/2 delta^2 (semi-gradient)
    theta_pi <- theta_pi - s_lr * a_obg_pi * delta_t * z_pi    actions that lowered discomfort gain probability

The learning-rate region is taught to expect surprise: target
    u*_t = tanh(|delta_t| / mean|delta|)                   (running mean of |delta|)
    theta_lr <- theta_lr - lr_head_step * grad (u_t - u*_t)^2
so plasticity rises where the agent tends to be surprised (eating, hurt, dying).
It reads the policy tower's features without sending gradient into them.

Death: the parameters, traces and thought roll back to the oldest snapshot in
the RAM ring (snapshots every K decisions, ring depth R, so K..K*R decisions
back): what was learned in the moments that led to death is undone. Those
moments (every decision since that snapshot) are then replayed once at the
rolled-back weights into fresh traces and given one aversive, bounded step
with delta = c~_death - D(s_last) at s_lr = lr_max. Traces and the
discounted-sum accumulator reset: a new life starts. Without rollback
(ablation) the ordinary death step above is the only death update.

Why it cannot be cheated: D is pinned to felt discomfort by the TD target, so
outputting zeros in the loss region leaves a large |delta| and is corrected;
the policy's gradient is log pi of the action taken times the change of
discomfort, so it reaches the action logits every step.

Metrics (per decision): self_loss = D(s_t); self_lr = s_lr; lr_eff = s_lr *
a_obg_pi (the step the policy really took); td_error = delta_t; entropy =
H(pi) summed over heads (ln 9 = 2.197 is uniform on the arena's 3x3 actions);
discomfort = c_t (unscaled); rollback = 1 on a death rollback.
"""
from __future__ import annotations

import math
from collections import deque

import torch

from .base import Feeling, Rule


class RunningScale:
    """Divide a signal by the running std of its discounted sum (Welford), as stream-x scales its signal."""

    def __init__(self, gamma: float):
        self.gamma = gamma
        self.u = 0.0
        self.n = 0
        self.mean = 0.0
        self.m2 = 0.0

    def __call__(self, x: float, end: bool) -> float:
        self.u = self.gamma * self.u + x
        self.n += 1
        d = self.u - self.mean
        self.mean += d / self.n
        self.m2 += d * (self.u - self.mean)
        if end:
            self.u = 0.0
        var = self.m2 / self.n if self.n > 1 else 1.0
        return x / math.sqrt(var + 1e-8)

    def state(self) -> dict:
        return {"u": self.u, "n": self.n, "mean": self.mean, "m2": self.m2}

    def load(self, d: dict):
        self.u, self.n, self.mean, self.m2 = d["u"], d["n"], d["mean"], d["m2"]


class Survival(Rule):
    name = "survival"
    towers = "split"

    def __init__(self, brain, cfg, seed=0):
        super().__init__(brain, cfg, seed)
        if brain.towers != "split":
            raise ValueError("survival: needs model.towers = split (or auto)")
        g = brain.param_groups()
        self.p_pi, self.p_d, self.p_lr = g["policy"], g["discomfort"], g["lr_head"]
        self.z_pi = [torch.zeros_like(p) for p in self.p_pi]
        self.z_d = [torch.zeros_like(p) for p in self.p_d]
        self.scale = RunningScale(cfg.gamma)
        self.delta_mad = 1.0
        # the moments since the oldest snapshot: what a death rollback replays
        self.window: deque = deque(maxlen=cfg.rollback_every * cfg.rollback_depth)
        self.take_snapshot()

    # ------------------------------------------------------------ snapshots include traces and the thought
    def snapshot_tensors(self):
        return {"params": list(self.brain.parameters()), "z_pi": self.z_pi, "z_d": self.z_d, "thought": [self.thought]}

    def snapshot_values(self):
        return {"steps": self.steps, "scale": self.scale.state(), "delta_mad": self.delta_mad}

    def restore_values(self, values):
        self.scale.load(values["scale"])
        self.delta_mad = values["delta_mad"]

    # ------------------------------------------------------------ the loop
    def _lr_scale(self, lr_region: torch.Tensor) -> tuple[float, torch.Tensor]:
        c = self.cfg
        u = torch.sigmoid(lr_region.mean())
        if not c.self_lr:
            return c.fixed_lr_scale, u
        return c.lr_min + (c.lr_max - c.lr_min) * float(u.detach()), u

    def remember(self, eyes, body, thought, action):
        self.window.append((eyes, body, thought, action))

    def _grads(self, r, logits, action, delta_sign: float):
        d_est = r["loss"].mean()
        g_d = torch.autograd.grad(d_est, self.p_d)
        obj = self.log_prob(logits, action) + self.cfg.entropy * delta_sign * self.entropy(logits)
        g_pi = torch.autograd.grad(obj, self.p_pi, allow_unused=True)
        g_pi = [torch.zeros_like(p) if g is None else g for p, g in zip(self.p_pi, g_pi)]
        return g_d, g_pi

    def _bounded_step(self, delta: float, lr_scale: float) -> tuple[float, float] | None:
        c = self.cfg
        l1_d = float(sum(torch._foreach_norm(self.z_d, 1)))
        l1_pi = float(sum(torch._foreach_norm(self.z_pi, 1)))
        if not self.finite(l1_d, l1_pi):
            return None
        db = max(abs(delta), 1.0)
        a_d = c.alpha / max(c.alpha * c.kappa_discomfort * db * l1_d, 1.0)
        a_pi = c.alpha / max(c.alpha * c.kappa_policy * db * l1_pi, 1.0)
        with torch.no_grad():
            torch._foreach_add_(self.p_d, self.z_d, alpha=lr_scale * a_d * delta)
            torch._foreach_add_(self.p_pi, self.z_pi, alpha=-lr_scale * a_pi * delta)
        return a_d, a_pi

    def learn(self, feel: Feeling, next_eyes, next_body) -> dict:
        c = self.cfg
        pending = self.take_pending_fault()
        if pending is not None:
            return pending
        r, logits, action = self._cur
        self._cur = None
        discomfort = -(feel.d_hp + feel.d_energy) + (c.death_discomfort if feel.dead else 0.0)
        c_scaled = self.scale(discomfort, feel.dead)
        d_now = float(r["loss"].mean().detach())
        if feel.dead:
            d_next = 0.0
        else:
            with torch.no_grad():
                d_next = float(self.brain.discomfort_estimate(next_eyes, next_body, self.thought).mean())
        delta = c_scaled + c.gamma * d_next - d_now
        lr_scale, u = self._lr_scale(r["lr"])
        ent = float(self.entropy(logits).detach())
        if not self.finite(delta, lr_scale, d_now) or abs(delta) > c.max_abs_delta or not (c.lr_min * 0.999 <= lr_scale <= 1.0):
            return self.fault(f"delta={delta} self_lr={lr_scale}")

        g_d, g_pi = self._grads(r, logits, action, math.copysign(1.0, -delta))
        decay = c.gamma * c.lam
        torch._foreach_mul_(self.z_d, decay)
        torch._foreach_add_(self.z_d, g_d)
        torch._foreach_mul_(self.z_pi, decay)
        torch._foreach_add_(self.z_pi, g_pi)
        steps = self._bounded_step(delta, lr_scale)
        if steps is None:
            return self.fault("non-finite eligibility trace")
        a_d, a_pi = steps

        # the learning-rate region learns to expect surprise
        self.delta_mad = 0.99 * self.delta_mad + 0.01 * abs(delta)
        target = math.tanh(abs(delta) / max(self.delta_mad, 1e-6))
        lr_loss = (u - target) ** 2
        g_lr = torch.autograd.grad(lr_loss, self.p_lr)
        with torch.no_grad():
            torch._foreach_add_(self.p_lr, g_lr, alpha=-c.lr_head_step)

        self.steps += 1
        m = {
            "self_loss": d_now, "self_lr": lr_scale, "lr_eff": lr_scale * a_pi, "entropy": ent,
            "td_error": delta, "discomfort": discomfort,
        }
        if feel.dead:
            self.deaths += 1
            m["rollback"] = self._die(c_scaled)
        elif c.rollback and self.steps % c.rollback_every == 0:
            self.take_snapshot()
        return m

    def _die(self, c_death: float) -> bool:
        """Roll back, replay the last moments aversively, start a new life."""
        c = self.cfg
        rolled = False
        if c.rollback and self.rollback("death", which="oldest"):
            rolled = True
            torch._foreach_zero_(self.z_d)
            torch._foreach_zero_(self.z_pi)
            decay = c.gamma * c.lam
            d_last = 0.0
            since = self._since_oldest
            for eyes, body, thought, action in list(self.window)[-since:] if since else []:
                out = self.brain(eyes, body, thought)
                r, logits = self._policy(out)
                d_last = float(r["loss"].mean().detach())
                g_d, g_pi = self._grads(r, logits, action, -1.0)
                torch._foreach_mul_(self.z_d, decay)
                torch._foreach_add_(self.z_d, g_d)
                torch._foreach_mul_(self.z_pi, decay)
                torch._foreach_add_(self.z_pi, g_pi)
            delta = c_death - d_last
            if self.finite(delta) and abs(delta) <= c.max_abs_delta:
                if self._bounded_step(delta, c.lr_max) is None:
                    self.fault("non-finite trace in aversive replay")
        torch._foreach_zero_(self.z_d)
        torch._foreach_zero_(self.z_pi)
        self.window.clear()
        return rolled

    def state_dict(self):
        d = super().state_dict()
        d.update({"z_pi": [z.clone() for z in self.z_pi], "z_d": [z.clone() for z in self.z_d],
                  "scale": self.scale.state(), "delta_mad": self.delta_mad})
        return d

    def load_state_dict(self, d):
        super().load_state_dict(d)
        with torch.no_grad():
            for dst, src in zip(self.z_pi + self.z_d, d["z_pi"] + d["z_d"]):
                dst.copy_(src)
        self.scale.load(d["scale"])
        self.delta_mad = d["delta_mad"]
