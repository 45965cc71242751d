"""`survival` in numpy (model.backend = numpy): the same rule, in a process that never imports torch.

The math is rules/survival.py's, formula for formula; its docstring writes it out and this file keeps its
order of operations. What differs is only where the numbers live:

    - the brain is numpy_learner/brain.py: forward and backward by hand, float32, batch 1;
    - each tower's parameters, traces and gradients are one flat vector, so a trace decay, a block's L1 norm
      or a bounded step is one array operation (torch's rule does one foreach call per block);
    - the sampling generator is numpy's (seeded like torch's, but its draws differ);
    - the rollback ring holds copies of the flat vectors.

Per decision, with g(v) = the gradient of <v, output region> (the brain's backward):

    decide:   out = brain(eyes, body, thought); a ~ softmax per head; thought <- tanh(out[thought])
    learn:    delta = c~ + gamma * D(s') - D(s)
              z_D  <- gamma*lambda*z_D  + g(e_D)                      e_D: 1/(L-K) on D's loss slots
              z_pi <- gamma*lambda*z_pi + g(d log pi(a)/dl + sign(-delta) * sum_h beta_h dH_h/dl)
                                                                      d log pi(a)/dl = onehot(a) - p
                                                                      dH/dl = -p * (log p + H)
              theta_D += s_lr * a_D,b * delta * z_D,b ;  theta_pi -= s_lr * a_pi,b * delta * z_pi,b
              forecasts: g_F = g([d_1..d_K, 0..]);  theta_D += s_lr * a_F,b * g_F,b
              lr head:   g_lr = g((2(u - u*) u(1 - u) / n_lr) * 1)
    death:    roll back to the oldest snapshot, replay the window into fresh traces (sign -1), one bounded
              aversive step at lr_max, clear traces, setback forgetting toward the birth weights.

tests/test_numpy_learner.py holds ten decisions of this rule (a death among them) to the torch rule's, from the
same weights, senses and actions.
"""
from __future__ import annotations

import json
import logging
import math
from collections import deque

import numpy as np

from ..acting import Feeling
from ..config import RuleConfig
from ..rollback import RollbackRing
from ..survival_state import RunningScale, Setback, step_metrics
from .brain import F32, NumpyBrain

log = logging.getLogger("edge_runtime.rules")


class NumpyNet:
    """What `rule.net` says elsewhere: the backend's name (run summaries and benchmarks print it)."""

    name = "numpy"


def softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def log_softmax(x: np.ndarray) -> np.ndarray:
    z = x - x.max()
    return z - np.log(np.exp(z).sum())


# The rule's per-decision formulas on one agent's arrays: this learner's and the numpy population's
# (edge_runtime/population/numpy_rule.py) are these same functions.

def sample(logits, rng: np.random.Generator, greedy: bool) -> tuple[int, ...]:
    """One action per head: the argmax, or the inverse CDF of the softmax with one uniform draw per head."""
    if greedy:
        return tuple(int(np.argmax(l)) for l in logits)
    return tuple(min(int(np.searchsorted(np.cumsum(softmax(l.astype(np.float64))), rng.random(), "right")),
                     len(l) - 1) for l in logits)


def head_entropies(logits) -> list[float]:
    return [float(-(softmax(l) * log_softmax(l)).sum()) for l in logits]


def policy_cotangent(logits, action, delta_sign: float, log_beta) -> np.ndarray:
    """d [log pi(a) + delta_sign * sum_h beta_h H_h] / d logits: onehot(a) - p + delta_sign * beta_h * dH_h."""
    d_logits = []
    for l, a, lb in zip(logits, action, log_beta):
        p, lp = softmax(l), log_softmax(l)
        h = -(p * lp).sum()
        d = -p
        d[a] += 1.0
        d_logits.append(d + F32(delta_sign * math.exp(lb)) * (-p * (lp + h)))
    return np.concatenate(d_logits).astype(F32, copy=False)


def adapted_log_beta(cfg: RuleConfig, log_beta, h_max, h, frac: float) -> list[float]:
    """The entropy weights moved toward frac * each head's maximum entropy, clipped to [1e-4, 10]."""
    return [min(math.log(10.0), max(math.log(1e-4), b + cfg.entropy_adapt * (frac * m - x)))
            for b, m, x in zip(log_beta, h_max, h)]


def block_steps(cfg: RuleConfig, z, ranges, kappa: float, db: float) -> list[float] | None:
    """alpha / max(alpha * kappa * max(|delta|, 1) * ||z_block||_1, 1), one per block; None if a norm is not
    finite."""
    l1 = [float(np.abs(z[lo:hi]).sum(dtype=np.float64)) for lo, hi in ranges]
    if not all(math.isfinite(x) for x in l1):
        return None
    return [cfg.alpha / max(cfg.alpha * kappa * db * x, 1.0) for x in l1]


def add_by_block(p, z, ranges, steps: list[float], scale: float, delta: float = 1.0):
    for (lo, hi), a in zip(ranges, steps):
        p[lo:hi] += F32(scale * a * delta) * z[lo:hi]


def bounded_step(cfg: RuleConfig, p_d, p_pi, z_d, z_pi, ranges_d, ranges_pi, delta: float, lr_scale: float):
    """theta_D += s_lr * a_D,b * delta * z_D,b; theta_pi -= s_lr * a_pi,b * delta * z_pi,b. Returns the last
    blocks' step sizes (a_D, a_pi), or None (nothing changed) if a trace's norm is not finite."""
    db = max(abs(delta), 1.0)
    a_d = block_steps(cfg, z_d, ranges_d, cfg.kappa_discomfort, db)
    a_pi = block_steps(cfg, z_pi, ranges_pi, cfg.kappa_policy, db)
    if a_d is None or a_pi is None:
        return None
    add_by_block(p_d, z_d, ranges_d, a_d, lr_scale, delta)
    add_by_block(p_pi, z_pi, ranges_pi, a_pi, -lr_scale, delta)
    return a_d[-1], a_pi[-1]


class NumpySurvival:
    name = "survival"
    learns = True

    def __init__(self, brain: NumpyBrain, cfg: RuleConfig, seed: int = 0):
        if cfg.name != "survival":
            raise ValueError(f"model.backend = numpy runs rule.name = survival, got {cfg.name!r}")
        self.brain, self.cfg = brain, cfg
        self.net = NumpyNet()
        self.rng = np.random.default_rng(seed)
        self.thought = brain.zero_thought()
        self.learning = True
        self.steps = self.rollbacks = self.faults = self.deaths = 0
        self._cur = None
        self._pending_fault = None
        self._shown = None
        self.p_d, self.p_pi, self.p_lr = brain.flats()
        self.z_d = np.zeros_like(self.p_d)
        self.z_pi = np.zeros_like(self.p_pi)
        scope = cfg.bound_scope
        self.ranges_d = brain.discomfort.block_ranges if scope == "block" else [(0, self.p_d.size)]
        self.ranges_pi = brain.policy.block_ranges if scope == "block" else [(0, self.p_pi.size)]
        self.k_fc = len(cfg.forecast_gammas)
        n_loss = brain.regions.loss
        if self.k_fc >= n_loss:
            raise ValueError(f"survival: rule.forecast_gammas has {self.k_fc} entries; model.loss_size must be larger")
        self.fc_gammas = np.array(cfg.forecast_gammas, F32)
        self.e_d = np.zeros(n_loss, F32)
        self.e_d[self.k_fc:] = 1.0 / (n_loss - self.k_fc)  # d D / d loss region: D is the mean of the slots after K
        n = list(brain.spec.action_heads.values())
        self.log_beta = [math.log(cfg.entropy) if cfg.entropy > 0 else -math.inf] * len(n)
        self.h_max = [math.log(k) for k in n]
        self.setback = Setback(cfg)
        self.birth = [self.p_d.copy(), self.p_pi.copy()] if cfg.setback_forget > 0 else []
        self.scale = RunningScale(cfg.gamma)
        self.delta_mad = 1.0
        self.window: deque = deque(maxlen=cfg.rollback_every * cfg.rollback_depth)
        self.ring = RollbackRing(cfg.rollback_depth)
        self._since_oldest = 0
        self.take_snapshot()

    # ------------------------------------------------------------ acting
    def _policy(self, out):
        r = self.brain.split(out)
        return r, self.brain.head_logits(r["actions"])

    def _sample(self, logits, greedy: bool) -> tuple[int, ...]:
        return sample(logits, self.rng, greedy)

    def _guard_output(self, out) -> tuple[int, ...] | None:
        if np.isfinite(out).all():
            return None
        self._pending_fault = "non-finite model output"
        self._cur = None
        self.thought = self.brain.zero_thought()
        return tuple(int(self.rng.integers(n)) for n in self.brain.spec.action_heads.values())

    def act_frozen(self, eyes, body, greedy: bool = False) -> tuple[int, ...]:
        out, _ = self.brain.forward(eyes, body, self.thought)
        bad = self._guard_output(out)
        if bad is not None:
            self._pending_fault = None
            return bad
        self._shown = out
        r, logits = self._policy(out)
        self.thought = np.tanh(r["thought"])
        return self._sample(logits, greedy)

    def decide(self, eyes, body) -> tuple[int, ...]:
        self.brain.observe(eyes)
        out, cache = self.brain.forward(eyes, body, self.thought)
        bad = self._guard_output(out)
        if bad is not None:
            return bad
        self._shown = out
        r, logits = self._policy(out)
        action = self._sample(logits, greedy=False)
        self._cur = (r, logits, action, cache)
        self.window.append((eyes, body, self.thought, action))
        self.thought = np.tanh(r["thought"])
        return action

    def regions_now(self) -> dict | None:
        if self._shown is None:
            return None
        r, logits = self._policy(self._shown)
        return {"heads": {name: softmax(l).tolist() for (name, _), l in zip(self.brain.regions.heads, logits)},
                "loss": r["loss"].tolist(), "lr": r["lr"].tolist(), "thought": np.tanh(r["thought"]).tolist()}

    def new_life(self):
        self.thought = self.brain.zero_thought()
        self._cur = None

    # ------------------------------------------------------------ snapshots and faults
    def _arrays(self):
        return [self.p_d, self.p_pi, self.p_lr, self.z_d, self.z_pi]

    def snapshot_tensors(self) -> dict[str, list[np.ndarray]]:
        """What a RAM snapshot holds (the checkpoint's ring cost reads it)."""
        return {"params": [self.p_d, self.p_pi, self.p_lr], "z": [self.z_d, self.z_pi], "thought": [self.thought]}

    def take_snapshot(self):
        values = {"scale": self.scale.state(), "delta_mad": self.delta_mad, "log_beta": list(self.log_beta)}
        self.ring.push(self.steps, {"arrays": self._arrays(), "thought": [self.thought]}, values)

    def rollback(self, reason: str, which: str = "latest") -> bool:
        snap = self.ring.restore({"arrays": self._arrays()}, which)
        if snap is None:
            return False
        step, values = snap.step, snap.values
        self.thought = snap.tensors["thought"][0].copy()  # a new array: the replay window holds the old ones
        self.rollbacks += 1
        self._since_oldest = self.steps - step
        self.scale.load(values["scale"])
        self.delta_mad = values["delta_mad"]
        self.log_beta = list(values["log_beta"])
        log.debug("rollback to step %d (%s)", step, reason)
        return True

    def fault(self, what: str) -> dict:
        self.faults += 1
        log.warning("learning fault #%d at step %d: %s; update skipped, rolled back", self.faults, self.steps, what)
        self.rollback("fault")
        self._cur = None
        return {"fault": what}

    @staticmethod
    def finite(*xs) -> bool:
        return all(math.isfinite(float(x)) for x in xs)

    # ------------------------------------------------------------ the rule
    def _main(self, loss) -> float:
        return float(loss[self.k_fc:].mean())

    def head_entropies(self, logits) -> list[float]:
        return head_entropies(logits)

    def _grads(self, r, logits, action, delta_sign: float, cache):
        """g_D = grad D(s); g_pi = grad [log pi(a|s) + delta_sign * sum_h beta_h H_h] (see the docstring)."""
        g_d = self.brain.grad_discomfort(cache, self.e_d)
        g_pi = self.brain.grad_policy(cache, policy_cotangent(logits, action, delta_sign, self.log_beta))
        return g_d, g_pi

    def _adapt_entropy(self, h: list[float]):
        """h: each head's entropy at this decision."""
        if self.cfg.entropy_target > 0:
            self.log_beta = adapted_log_beta(self.cfg, self.log_beta, self.h_max, h, self.setback.target_fraction())

    def _bounded_step(self, delta: float, lr_scale: float):
        return bounded_step(self.cfg, self.p_d, self.p_pi, self.z_d, self.z_pi, self.ranges_d, self.ranges_pi,
                            delta, lr_scale)

    def learn(self, feel: Feeling, next_eyes, next_body) -> dict:
        c = self.cfg
        if self._cur is None:
            what = self._pending_fault or "learn() without decide()"
            self._pending_fault = None
            return self.fault(what)
        r, logits, action, cache = self._cur
        self._cur = None
        self.setback.count(feel.dead)
        discomfort = -(feel.d_hp + feel.d_energy) + (c.death_discomfort if feel.dead else 0.0)
        c_scaled = self.scale(discomfort, feel.dead)
        d_now = self._main(r["loss"])
        if feel.dead:
            d_next, f_next = 0.0, np.zeros(self.k_fc, F32)
        else:
            nxt = self.brain.discomfort_estimate(next_eyes, next_body, self.thought)
            d_next, f_next = self._main(nxt), nxt[:self.k_fc]
        delta = c_scaled + c.gamma * d_next - d_now
        z = -float(r["lr"].mean())
        u = 1.0 / (1.0 + math.exp(z)) if z < 700.0 else 0.0  # sigmoid; exp would overflow where it is 0
        lr_scale = c.lr_min + (c.lr_max - c.lr_min) * u if c.self_lr else c.fixed_lr_scale
        h = self.head_entropies(logits)  # once: the metric and the entropy weights read it
        ent = sum(h)
        self._adapt_entropy(h)
        if (not self.finite(delta, lr_scale, d_now) or abs(c.gamma * d_next - d_now) > c.max_abs_delta
                or not (c.lr_min * 0.999 <= lr_scale <= 1.0)):
            return self.fault(f"delta={delta} self_lr={lr_scale}")

        g_d, g_pi = self._grads(r, logits, action, math.copysign(1.0, -delta), cache)
        g_fc = None
        if self.k_fc:  # short-horizon forecasts, TD(0): d_k = c~ + gamma_k F_k(s') - F_k(s)
            d_k = (F32(c_scaled) + self.fc_gammas * f_next - r["loss"][:self.k_fc]).astype(F32)
            d_loss = np.zeros_like(self.e_d)
            d_loss[:self.k_fc] = d_k
            g_fc = (self.brain.grad_discomfort(cache, d_loss), float(np.abs(d_k).max()))
        decay = F32(c.gamma * c.lam)
        self.z_d *= decay
        self.z_d += g_d
        self.z_pi *= decay
        self.z_pi += g_pi
        steps = self._bounded_step(delta, lr_scale)
        if steps is None:
            return self.fault("non-finite eligibility trace")
        _, a_pi = steps
        if g_fc is not None and not self._forecast_step(g_fc, lr_scale):
            return self.fault("non-finite forecast step")

        # the learning-rate region learns to expect surprise: (u - u*)^2, u = sigmoid(mean(lr region))
        self.delta_mad = 0.99 * self.delta_mad + 0.01 * abs(delta)
        target = math.tanh(abs(delta) / max(self.delta_mad, 1e-6))
        d_lr = np.full(self.brain.regions.lr, 2.0 * (u - target) * u * (1.0 - u) / self.brain.regions.lr, F32)
        self.p_lr -= F32(c.lr_head_step) * self.brain.grad_lr_head(cache, d_lr)

        self.steps += 1
        m = step_metrics(d_now, lr_scale, a_pi, ent, delta, discomfort, self.log_beta, self.setback())
        if feel.dead:
            self.deaths += 1
            m["rollback"] = self._die(c_scaled)
        elif c.rollback and self.steps % c.rollback_every == 0:
            self.take_snapshot()
        return m

    def _forecast_step(self, g, lr_scale: float) -> bool:
        """theta_D += s_lr * a * g with a = 1 / max(kappa * max(d, 1) * ||g_b||_1 / d, 1) per block."""
        grads, d = g
        if not self.finite(d) or d == 0.0:
            return self.finite(d)
        a = block_steps(self.cfg, grads / F32(d), self.ranges_d, self.cfg.kappa_discomfort, max(d, 1.0))
        if a is None:
            return False
        add_by_block(self.p_d, grads, self.ranges_d, a, lr_scale)
        return True

    def _die(self, c_death: float) -> bool:
        """Roll back, replay the last moments aversively, start a new life."""
        c = self.cfg
        rolled = False
        if c.rollback and self.rollback("death", which="oldest"):
            rolled = True
            self.z_d[...] = 0.0
            self.z_pi[...] = 0.0
            decay = F32(c.gamma * c.lam)
            d_last = 0.0
            since = self._since_oldest
            for eyes, body, thought, action in list(self.window)[-since:] if since else []:
                out, cache = self.brain.forward(eyes, body, thought)
                r, logits = self._policy(out)
                d_last = self._main(r["loss"])
                g_d, g_pi = self._grads(r, logits, action, -1.0, cache)
                self.z_d *= decay
                self.z_d += g_d
                self.z_pi *= decay
                self.z_pi += g_pi
            delta = c_death - d_last
            if self.finite(delta) and abs(d_last) <= c.max_abs_delta and self._bounded_step(delta, c.lr_max) is None:
                self.fault("non-finite trace in aversive replay")
        self.z_d[...] = 0.0
        self.z_pi[...] = 0.0
        self.window.clear()
        f = self.setback()
        if f > 0 and self.birth:
            w = F32(f * c.setback_forget)
            for p, b in zip((self.p_d, self.p_pi), self.birth):
                p += w * (b - p)
        return rolled

    # ------------------------------------------------------------ checkpoints (plain data and numpy arrays)
    def state_dict(self) -> dict:
        return {"steps": self.steps, "rollbacks": self.rollbacks, "faults": self.faults, "deaths": self.deaths,
                "rng": json.dumps(self.rng.bit_generator.state), "thought": self.thought.copy(),
                "z_d": self.z_d.copy(), "z_pi": self.z_pi.copy(), "scale": self.scale.state(),
                "delta_mad": self.delta_mad, "log_beta": list(self.log_beta), "setback": self.setback.state()}

    def load_state_dict(self, d: dict):
        self.steps, self.rollbacks, self.faults, self.deaths = d["steps"], d["rollbacks"], d["faults"], d["deaths"]
        self.rng.bit_generator.state = json.loads(d["rng"])
        self.thought = np.array(d["thought"], F32)
        self.z_d[...] = d["z_d"]
        self.z_pi[...] = d["z_pi"]
        self.scale.load(d["scale"])
        self.delta_mad = d["delta_mad"]
        self.log_beta = list(d["log_beta"])
        self.setback.load(d["setback"])
