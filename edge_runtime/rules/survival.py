"""`survival` (the default): the seed's four mechanisms, grounded in what the body feels.

Notation, per decision t (one or more body steps):
    out_t        = brain(eyes_t, body_t, thought_t)        one output tensor
    F_k(s_t)     = out_t[loss][k], k < K                   short-horizon discomfort forecasts, one per
                                                           gamma_k in forecast_gammas (K of them)
    D(s_t)       = mean(out_t[loss][K:])                   the self-generated loss: the agent's own
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
    z_pi  <- gamma*lambda*z_pi + grad [ log pi(a_t|s_t) + sign(-delta_t) * sum_h beta_h * H_h(pi(.|s_t)) ]

Overshoot-bounded step (ObGD, Elsayed et al. 2024), one bound per block b of
each tower (bound_scope = "block": the MobileNetV3 trunk, the fully connected
layer, the output layer; "tower": one bound for the whole tower):
    M_b   = alpha * kappa * max(|delta_t|, 1) * ||z_b||_1
    a_b   = alpha / max(M_b, 1)
(One bound per tower lets the wide fully connected layer, ~88% of the trace's
L1 mass, throttle the output layer's step about twentyfold.)

Update, with the self-generated rate scaling the bounded step (so it can only
make a safe step smaller, never larger than the bound):
    theta_D,b  <- theta_D,b  + s_lr * a_D,b  * delta_t * z_D,b    descends 1/2 delta^2 (semi-gradient)
    theta_pi,b <- theta_pi,b - s_lr * a_pi,b * delta_t * z_pi,b   actions that lowered discomfort gain probability

Short-horizon forecasts (TD(0), no trace), dense targets that teach the
discomfort tower what is about to happen (food right ahead, a wall in front):
    d_k   = c~_t + gamma_k * F_k(s_t+1) - F_k(s_t)          F_k(s_t+1) = 0 after death
    g     = sum_k d_k * grad F_k(s_t),   d = max_k |d_k|
    theta_D,b <- theta_D,b + s_lr * g_b / max(kappa * max(d, 1) * ||g_b||_1 / d, 1)

Entropy weights, one per action head h (like SAC's temperature): with
entropy_target > 0 each keeps its head above that fraction of its maximum,
    log beta_h <- clip(log beta_h + entropy_adapt * (entropy_target * ln n_h - H_h), ln 1e-4, ln 10)
so no head can collapse onto one action (say, turning right forever), where
its gradient vanishes and learning stops.

Setbacks: when the world changes under it (what was food now hurts), a
learner that has settled into a low-entropy policy keeps avoiding what it
learned to avoid and never tries it again. Its lives are what tells it: with
lives counted in decisions, m = median of the last n lives (setback_lives),
    recent = max(m, the current life so far)
    best   = max(best * setback_decay, m)            at each death, once n lives are done
    f      = clip(1 - recent / (setback_ratio * best), 0, 1)
and each head's target rises toward setback_entropy_target as f goes to 1:
    target_h = (entropy_target + f * (setback_entropy_target - entropy_target)) * ln n_h
Entropy alone does not undo a learned aversion (the avoiding is done by what
the eyes see, not by a flat policy), so at each death in a setback both towers
also forget part of what they learned, moving back toward their birth weights
theta_0 (the initial weights from the rule's seed; a fresh learner is what
learns a new world fastest):
    theta <- theta + f * setback_forget * (theta_0 - theta)
Lives within setback_ratio of the best (the ups and downs of learning) leave
f = 0; a life that outgrows the recent median ends the setback at once.

The learning-rate region is taught to expect surprise: target
    u*_t = tanh(|delta_t| / mean|delta|)                   (running mean of |delta|)
    theta_lr <- theta_lr - lr_head_step * grad (u_t - u*_t)^2
so plasticity rises where the agent tends to be surprised (eating, hurt, dying).
It reads the policy tower's features without sending gradient into them.

What reads what (model.*): the policy tower's output layer also reads the
discomfort tower's hidden features, detached (actor_reads_critic: the actor
uses what the critic has learned to see without disturbing it); each output
layer also reads the body vector and the pooled eyes directly
(head_reads_senses: "touch ahead: do not drive" is one linear step); the
weights that read the fed-back thought start at zero (thought_init = "zero")
so an untrained thought stream is not noise at the start; they grow by learning.

Death: the parameters, traces and thought roll back to the oldest snapshot in
the RAM ring (snapshots every K decisions, ring depth R, so K..K*R decisions
back): what was learned in the moments that led to death is undone. Those
moments (every decision since that snapshot) are then replayed once at the
rolled-back weights into fresh traces and given one aversive, bounded step
with delta = c~_death - D(s_last) at s_lr = lr_max. Traces and the
discounted-sum accumulator reset: a new life starts. Without rollback
(ablation) the ordinary death step above is the only death update.

Why it cannot be cheated: D and every F_k are pinned to felt discomfort by
their TD targets, so outputting zeros in the loss region leaves a large |delta|
and is corrected; the policy's gradient is log pi of the action taken times the
change of discomfort, so it reaches the action logits every step.

Metrics (per decision): self_loss = D(s_t); self_lr = s_lr; lr_eff = s_lr *
a_pi of the policy's output block (the step the action logits really took);
td_error = delta_t; entropy = H(pi) summed over heads (ln 9 = 2.197 is uniform
on the arena's 3x3 actions); entropy_w = the largest beta_h; discomfort = c_t
(unscaled); setback = f (0 outside a setback); rollback = 1 on a death rollback.
"""
from __future__ import annotations

import math
from collections import deque

import torch
import torch.nn.functional as F

from ..survival_state import RunningScale, Setback, step_metrics
from .base import Feeling, Rule


class Survival(Rule):
    name = "survival"
    towers = "split"

    def __init__(self, brain, cfg, seed=0, net=None):
        super().__init__(brain, cfg, seed, net)
        if brain.towers != "split":
            raise ValueError("survival: needs model.towers = split (or auto)")
        g = brain.param_groups()
        self.p_pi, self.p_d, self.p_lr = g["policy"], g["discomfort"], g["lr_head"]
        self.z_pi = [torch.zeros_like(p) for p in self.p_pi]
        self.z_d = [torch.zeros_like(p) for p in self.p_d]
        # which bound each parameter falls under: one per tower, or one per block of a tower
        self.blocks_pi = self._blocks(brain.policy, cfg.bound_scope)
        self.blocks_d = self._blocks(brain.discomfort, cfg.bound_scope)
        # blocks are contiguous in parameter order: one foreach call per block on the hot path
        self.ranges_pi = self._ranges(self.blocks_pi)
        self.ranges_d = self._ranges(self.blocks_d)
        self.k_fc = len(cfg.forecast_gammas)
        if self.k_fc >= brain.regions.loss:
            raise ValueError(f"survival: rule.forecast_gammas has {self.k_fc} entries; model.loss_size must be larger")
        self.fc_gammas = torch.tensor([cfg.forecast_gammas], dtype=torch.float32)
        # one entropy weight per action head; with a target they adapt (as SAC's temperature does) so no
        # head can collapse to one action and stop learning, e.g. turning right forever
        n = list(brain.spec.action_heads.values())
        self.log_beta = [math.log(cfg.entropy) if cfg.entropy > 0 else -math.inf] * len(n)
        self.h_max = [math.log(k) for k in n]
        self.setback = Setback(cfg)  # the lives' history: a rollback does not undo it
        # what a setback forgets toward: the weights the rule was born with (from its seed, so a resumed run has them)
        self.birth = [p.detach().clone() for p in self.p_d + self.p_pi] if cfg.setback_forget > 0 else []
        self.scale = RunningScale(cfg.gamma)
        self.delta_mad = 1.0
        # the moments since the oldest snapshot: what a death rollback replays
        self.window: deque = deque(maxlen=cfg.rollback_every * cfg.rollback_depth)
        self.take_snapshot()

    @staticmethod
    def _blocks(tower, scope: str) -> list[int]:
        """Block index per parameter of a tower (in tower.parameters() order)."""
        names = [n for n, _ in tower.named_parameters()]
        if scope == "tower":
            return [0] * len(names)
        order = {"trunk": 0, "fc": 1, "out": 2}
        return [order[n.split(".")[0]] for n in names]

    @staticmethod
    def _ranges(blocks: list[int]) -> list[tuple[int, int]]:
        """(first, end) parameter index of each block."""
        out = []
        for i, b in enumerate(blocks):
            if not out or blocks[out[-1][0]] != b:
                out.append((i, i + 1))
            else:
                out[-1] = (out[-1][0], i + 1)
        return out

    # ------------------------------------------------------------ snapshots include traces and the thought
    def snapshot_tensors(self):
        return {"params": list(self.brain.parameters()), "z_pi": self.z_pi, "z_d": self.z_d, "thought": [self.thought]}

    def snapshot_values(self):
        return {"steps": self.steps, "scale": self.scale.state(), "delta_mad": self.delta_mad, "log_beta": list(self.log_beta)}

    def restore_values(self, values):
        self.scale.load(values["scale"])
        self.delta_mad = values["delta_mad"]
        self.log_beta = list(values["log_beta"])

    # ------------------------------------------------------------ the loop
    def _lr_scale(self, lr_region: torch.Tensor) -> tuple[float, torch.Tensor]:
        c = self.cfg
        u = torch.sigmoid(lr_region.mean())
        if not c.self_lr:
            return c.fixed_lr_scale, u
        return c.lr_min + (c.lr_max - c.lr_min) * float(u.detach()), u

    def remember(self, eyes, body, thought, action):
        self.window.append((eyes, body, thought, action))

    def _main(self, loss: torch.Tensor) -> torch.Tensor:
        """D: the loss-region slots after the short-horizon forecasts."""
        return loss[:, self.k_fc:].mean()

    def _grads(self, r, logits, action, delta_sign: float, keep: bool = False):
        d_est = self._main(r["loss"])
        beta = torch.tensor([math.exp(b) for b in self.log_beta])
        obj = self.log_prob(logits, action) + delta_sign * (beta * self.head_entropies(logits)).sum()
        # one backward pass for both: D reaches only the discomfort tower and the policy's objective only the
        # policy tower (it reads the discomfort features detached), so each parameter gets exactly its own
        # gradient, as two separate passes would give it
        g = self.net.grad([d_est, obj], self.p_d + self.p_pi, retain_graph=keep)
        n = len(self.p_d)
        g_d, g_pi = g[:n], g[n:]
        g_pi = [torch.zeros_like(p) if x is None else x for p, x in zip(self.p_pi, g_pi)]
        return g_d, g_pi

    def _block_steps(self, z, blocks, kappa: float, db: float, ranges=None) -> list[float] | None:
        """ObGD step size per parameter: alpha / max(alpha * kappa * max(|delta|, 1) * ||z_block||_1, 1)."""
        c = self.cfg
        # ||z_block||_1: the parameters' L1 norms, read out in one call (not one float() per parameter) and added
        # one after another in Python floats
        norms = torch.stack(torch._foreach_norm(z, 1)).tolist()
        l1 = [0.0] * (max(blocks) + 1)
        for lo, hi in ranges or self._ranges(blocks):
            l1[blocks[lo]] = sum(norms[lo:hi])
        if not self.finite(*l1):
            return None
        a = [c.alpha / max(c.alpha * kappa * db * x, 1.0) for x in l1]
        return [a[b] for b in blocks]

    @staticmethod
    def head_entropies(logits: list[torch.Tensor]) -> torch.Tensor:
        return torch.stack([-(F.softmax(l, 1) * F.log_softmax(l, 1)).sum() for l in logits])

    def _adapt_entropy(self, logits: list[torch.Tensor]):
        """log beta_k <- log beta_k + entropy_adapt * (H_target_k - H_k), within [1e-4, 10]."""
        c = self.cfg
        if c.entropy_target <= 0:
            return
        frac = self.setback.target_fraction()
        target = [frac * m for m in self.h_max]
        h = self.head_entropies(logits).detach().tolist()
        self.log_beta = [min(math.log(10.0), max(math.log(1e-4), b + c.entropy_adapt * (t - x)))
                         for b, t, x in zip(self.log_beta, target, h)]

    @staticmethod
    def _add_by_block(params, z, ranges, steps: list[float], scale: float, delta: float = 1.0):
        """params[i] += scale * steps[i] * delta * z[i]; the step is the same within a block."""
        with torch.no_grad():
            for lo, hi in ranges:
                torch._foreach_add_(params[lo:hi], z[lo:hi], alpha=scale * steps[lo] * delta)

    def _bounded_step(self, delta: float, lr_scale: float) -> tuple[float, float] | None:
        c = self.cfg
        db = max(abs(delta), 1.0)
        a_d = self._block_steps(self.z_d, self.blocks_d, c.kappa_discomfort, db, self.ranges_d)
        a_pi = self._block_steps(self.z_pi, self.blocks_pi, c.kappa_policy, db, self.ranges_pi)
        if a_d is None or a_pi is None:
            return None
        self._add_by_block(self.p_d, self.z_d, self.ranges_d, a_d, lr_scale, delta)
        self._add_by_block(self.p_pi, self.z_pi, self.ranges_pi, a_pi, -lr_scale, delta)
        # the policy's headline step: its output block's
        return a_d[-1], a_pi[-1]

    def learn(self, feel: Feeling, next_eyes, next_body) -> dict:
        c = self.cfg
        pending = self.take_pending_fault()
        if pending is not None:
            return pending
        r, logits, action = self._cur
        self._cur = None
        self.setback.count(feel.dead)
        discomfort = -(feel.d_hp + feel.d_energy) + (c.death_discomfort if feel.dead else 0.0)
        c_scaled = self.scale(discomfort, feel.dead)
        d_now = float(self._main(r["loss"]).detach())
        if feel.dead:
            d_next, f_next = 0.0, torch.zeros(1, self.k_fc)
        else:
            nxt = self.net.discomfort_estimate(next_eyes, next_body, self.thought)
            d_next, f_next = float(self._main(nxt)), nxt[:, :self.k_fc]
        delta = c_scaled + c.gamma * d_next - d_now
        lr_scale, u = self._lr_scale(r["lr"])
        ent = float(self.entropy(logits).detach())
        self._adapt_entropy(logits)
        # a runaway estimate is a fault; a large felt discomfort is not. The death's scaled discomfort grows as
        # deaths get rarer (the running std of a mostly-zero signal shrinks): in CartPole, where death is the
        # only felt event, it passed 100 once lives grew long, and checking delta itself then faulted every death
        # and silenced learning from death. ObGD bounds the step whatever delta's size.
        if (not self.finite(delta, lr_scale, d_now) or abs(c.gamma * d_next - d_now) > c.max_abs_delta
                or not (c.lr_min * 0.999 <= lr_scale <= 1.0)):
            return self.fault(f"delta={delta} self_lr={lr_scale}")

        g_d, g_pi = self._grads(r, logits, action, math.copysign(1.0, -delta), keep=self.k_fc > 0)
        g_fc = self._forecast_grads(r["loss"][:, :self.k_fc], c_scaled, f_next) if self.k_fc else None
        decay = c.gamma * c.lam
        torch._foreach_mul_(self.z_d, decay)
        torch._foreach_add_(self.z_d, g_d)
        torch._foreach_mul_(self.z_pi, decay)
        torch._foreach_add_(self.z_pi, g_pi)
        steps = self._bounded_step(delta, lr_scale)
        if steps is None:
            return self.fault("non-finite eligibility trace")
        a_d, a_pi = steps
        if g_fc is not None and not self._forecast_step(g_fc, lr_scale):
            return self.fault("non-finite forecast step")

        # the learning-rate region learns to expect surprise
        self.delta_mad = 0.99 * self.delta_mad + 0.01 * abs(delta)
        target = math.tanh(abs(delta) / max(self.delta_mad, 1e-6))
        lr_loss = (u - target) ** 2
        g_lr = self.net.grad(lr_loss, self.p_lr)
        with torch.no_grad():
            torch._foreach_add_(self.p_lr, g_lr, alpha=-c.lr_head_step)

        self.steps += 1
        m = step_metrics(d_now, lr_scale, a_pi, ent, delta, discomfort, self.log_beta, self.setback())
        if feel.dead:
            self.deaths += 1
            m["rollback"] = self._die(c_scaled)
        elif c.rollback and self.steps % c.rollback_every == 0:
            self.take_snapshot()
        return m

    def _forecast_grads(self, f_now: torch.Tensor, c_scaled: float, f_next: torch.Tensor) -> tuple[list[torch.Tensor], float]:
        """Short-horizon discomfort forecasts, TD(0): dense targets that teach the discomfort tower what
        is about to happen (food right ahead, a wall in front) long before the long-horizon D sorts it out.
            delta_k = c~ + gamma_k * F_k(s') - F_k(s);   g = sum_k delta_k grad F_k(s)"""
        d_k = (c_scaled + self.fc_gammas * f_next - f_now).detach()
        g = list(self.net.grad((d_k * f_now).sum(), self.p_d))
        return g, float(d_k.abs().max())

    def _forecast_step(self, g: tuple[list[torch.Tensor], float], lr_scale: float) -> bool:
        """theta_D <- theta_D + s_lr * a * g, with ObGD's bound for lambda = 0 (the trace is the gradient):
        a = 1 / max(kappa * max(d, 1) * ||g||_1 / d, 1), d = max_k |delta_k|, so the step shrinks with the
        error instead of taking a fixed-size stride that would circle the target."""
        grads, d = g
        if not self.finite(d) or d == 0.0:
            return self.finite(d)
        a = self._block_steps(torch._foreach_div(grads, d), self.blocks_d, self.cfg.kappa_discomfort, max(d, 1.0),
                              self.ranges_d)
        if a is None:
            return False
        self._add_by_block(self.p_d, grads, self.ranges_d, a, lr_scale)
        return True

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
                out = self.net.forward(eyes, body, thought)
                r, logits = self._policy(out)
                d_last = float(self._main(r["loss"]).detach())
                g_d, g_pi = self._grads(r, logits, action, -1.0)
                torch._foreach_mul_(self.z_d, decay)
                torch._foreach_add_(self.z_d, g_d)
                torch._foreach_mul_(self.z_pi, decay)
                torch._foreach_add_(self.z_pi, g_pi)
            delta = c_death - d_last
            if self.finite(delta) and abs(d_last) <= c.max_abs_delta:  # as in learn(): the estimate, not the felt
                if self._bounded_step(delta, c.lr_max) is None:
                    self.fault("non-finite trace in aversive replay")
        torch._foreach_zero_(self.z_d)
        torch._foreach_zero_(self.z_pi)
        self.window.clear()
        f = self.setback()
        if f > 0 and self.birth:
            with torch.no_grad():
                torch._foreach_lerp_(self.p_d + self.p_pi, self.birth, f * c.setback_forget)
        return rolled

    def state_dict(self):
        d = super().state_dict()
        d.update({"z_pi": [z.clone() for z in self.z_pi], "z_d": [z.clone() for z in self.z_d],
                  "scale": self.scale.state(), "delta_mad": self.delta_mad, "log_beta": list(self.log_beta),
                  "setback": self.setback.state()})
        return d

    def load_state_dict(self, d):
        super().load_state_dict(d)
        with torch.no_grad():
            for dst, src in zip(self.z_pi + self.z_d, d["z_pi"] + d["z_d"]):
                dst.copy_(src)
        self.scale.load(d["scale"])
        self.delta_mad = d["delta_mad"]
        if "log_beta" in d:
            self.log_beta = list(d["log_beta"])
        if "setback" in d:
            self.setback.load(d["setback"])
