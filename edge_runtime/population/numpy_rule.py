"""`survival` for N agents at once on the numpy learner (model.backend = auto or numpy): no torch in the process.

The math is the numpy learner's (edge_runtime/numpy_learner/survival.py, whose docstring writes it out), per
agent, in its order of operations; rule.py is the same population on torch. What is batched and what is not:

    batched over agents   the forward pass, the next state's discomfort estimate, the three backward passes
                          (discomfort, policy, forecasts): one set of numpy calls for N agents
                          (numpy_learner/batched.py), where the per-call cost, not the arithmetic, is most of a
                          lone step
    per agent, in a loop  the scalars (delta, the self-made rate, entropies, the running scale), the sampling
                          (agent i's generator, seeded seed + i as alone), and the trace arithmetic and bounded
                          steps: row i of each (N, P) array, ~1 MB that stays in cache while it is worked on,
                          where one pass over all N rows at once would stream every array through memory

What is per agent and never shared: parameters, traces, eye statistics, thought, generator, running scale,
entropy weights, the self-made rate's range (lr_min, lr_max: selection mutates them), the window of recent
moments, the rollback ring (a RollbackRing of its rows). A death rolls back only that agent and replays its last
moments through the batched brain on its rows alone.

tests/test_numpy_population.py holds agent i to a lone numpy learner given the same senses.
"""
from __future__ import annotations

import copy
import math
from collections import deque

import numpy as np

from ..config import ModelConfig, RuleConfig
from ..numpy_learner import NumpyBrain, build
from ..numpy_learner.batched import BatchedBrain
from ..numpy_learner.survival import (NumpyNet, adapted_log_beta, bounded_step, head_entropies, policy_cotangent,
                                      sample)
from ..rollback import RollbackRing
from ..survival_state import RunningScale, Setback, step_metrics

F32 = np.float32


class NumpyPopulationSurvival:
    """N numpy `survival` learners driven together: decide(eyes, body), learn(feelings, eyes', body')."""

    name = "survival"
    learns = True

    def __init__(self, spec, model_cfg: ModelConfig, cfg: RuleConfig, n: int, seed: int = 0):
        self.cfg = cfg
        self.n = n
        self.net = NumpyNet()
        # agent i starts as the lone numpy learner seeded seed + i would: the same initial weights (NumpyBrain
        # seeded seed + i) and generator (NumpySurvival's: default_rng(seed + i), nothing drawn at its birth);
        # one lone learner gives what all share (the rule's constants)
        one = build(spec, model_cfg, copy.deepcopy(cfg), seed)
        self.brain = BatchedBrain([one.brain] + [NumpyBrain(spec, model_cfg, seed + i) for i in range(1, n)])
        self.rngs = [one.rng] + [np.random.default_rng(seed + i) for i in range(1, n)]
        self.e_d = one.e_d
        self.k_fc = one.k_fc
        self.fc_gammas = one.fc_gammas
        self.ranges_d, self.ranges_pi = one.ranges_d, one.ranges_pi
        self.heads = list(spec.action_heads.values())
        self.h_max = one.h_max
        self.p_d, self.p_pi, self.p_lr = self.brain.flats()
        self.z_d = np.zeros_like(self.p_d)
        self.z_pi = np.zeros_like(self.p_pi)
        # gradients land here, every entry written by each backward pass
        self.g_d = np.empty_like(self.p_d)
        self.g_pi = np.empty_like(self.p_pi)
        self.g_fc = np.empty_like(self.p_d)
        # where each tower's two outer-product gradients (fc.weight, out.weight) sit: the backward passes return
        # them as factors (BatchedTower.backward's rank1) and each agent's are formed in its own turn below
        self.segs_d = self._segments(self.brain.discomfort.t, self.ranges_d)
        self.segs_pi = self._segments(self.brain.policy.t, self.ranges_pi)
        self.r1_d, self.r1_pi, self.r1_fc = {}, {}, {}
        self.thought = np.zeros((n, model_cfg.thought_size), F32)
        self.setbacks = [Setback(cfg) for _ in range(n)]
        self.birth = [self.p_d.copy(), self.p_pi.copy()] if cfg.setback_forget > 0 else []
        self.scales = [RunningScale(cfg.gamma) for _ in range(n)]
        self.delta_mad = [1.0] * n
        self.log_beta = [list(one.log_beta) for _ in range(n)]
        self.lr_min = np.full(n, cfg.lr_min)
        self.lr_max = np.full(n, cfg.lr_max)
        self.windows = [deque(maxlen=cfg.rollback_every * cfg.rollback_depth) for _ in range(n)]
        self.rings = [RollbackRing(cfg.rollback_depth) for _ in range(n)]
        self._since_oldest = 0
        self.steps = np.zeros(n, dtype=np.int64)
        self.rollbacks = np.zeros(n, dtype=np.int64)
        self.faults = np.zeros(n, dtype=np.int64)
        self.deaths = np.zeros(n, dtype=np.int64)
        self._cur = None
        self._bad = np.zeros(n, dtype=bool)
        self.take_snapshot(range(n))

    @staticmethod
    def _segments(tower, ranges) -> list[tuple]:
        """(name, lo, hi, shape, block) for the trunk, fc.weight, fc.bias, out.weight, out.bias of a flat row;
        block: the index of the bounded step's block (ranges) holding it."""
        off = dict(zip((p.name for p in tower.params), tower.offsets))
        shapes = {p.name: p.shape for p in tower.params}
        names = ["fc.weight", "fc.bias", "out.weight", "out.bias"]
        bounds = [0] + [int(off[k]) for k in names] + [int(tower.offsets[-1])]
        segs = []
        for name, lo, hi in zip(["trunk"] + names, bounds[:-1], bounds[1:]):
            block = next(b for b, (blo, bhi) in enumerate(ranges) if blo <= lo < bhi)
            segs.append((name, lo, hi, shapes.get(name), block))
        return segs

    # ------------------------------------------------------------ snapshots and faults
    def _rows(self, i: int) -> list[np.ndarray]:
        return [self.p_d[i], self.p_pi[i], self.p_lr[i], self.z_d[i], self.z_pi[i]]

    def _values(self, i: int) -> dict:
        return {"scale": self.scales[i].state(), "delta_mad": self.delta_mad[i], "log_beta": list(self.log_beta[i])}

    def take_snapshot(self, agents):
        for i in agents:
            self.rings[i].push(int(self.steps[i]), {"arrays": self._rows(i), "thought": [self.thought[i]]},
                               self._values(i))

    def rollback(self, i: int, which: str = "latest") -> bool:
        snap = self.rings[i].restore({"arrays": self._rows(i)}, which)
        if snap is None:
            return False
        self.thought[i] = snap.tensors["thought"][0]
        v = snap.values
        self.scales[i].load(v["scale"])
        self.delta_mad[i] = v["delta_mad"]
        self.log_beta[i] = list(v["log_beta"])
        self.rollbacks[i] += 1
        self._since_oldest = int(self.steps[i]) - snap.step
        return True

    def fault(self, i: int, what: str) -> dict:
        self.faults[i] += 1
        self.rollback(i, "latest")
        return {"fault": what}

    # ------------------------------------------------------------ acting
    def _logits(self, out_row) -> list[np.ndarray]:
        return self.brain.template.head_logits(out_row[:self.brain._a])

    def decide(self, eyes: np.ndarray, body: np.ndarray) -> list[tuple[int, ...]]:
        """Every agent's forward pass (kept for learn) and action; eyes (N, 6, h, w), body (N, d)."""
        self.brain.observe(eyes)
        out, cache = self.brain.forward(eyes, body, self.thought)
        self._bad = ~np.isfinite(out).all(1)
        thought_sl = self.brain.slices["thought"]
        actions, logits_all = [], []
        for i in range(self.n):
            if self._bad[i]:  # a non-finite output must not drive the body: act at random, fault in learn()
                actions.append(tuple(int(self.rngs[i].integers(k)) for k in self.heads))
                logits_all.append(None)
                continue
            logits = self._logits(out[i])
            a = sample(logits, self.rngs[i], greedy=False)
            actions.append(a)
            logits_all.append(logits)
            self.windows[i].append((eyes[i].copy(), body[i].copy(), self.thought[i].copy(), a))
        self._cur = (out, logits_all, actions, cache)
        self.thought = np.where(self._bad[:, None], F32(0.0), np.tanh(out[:, thought_sl])).astype(F32)
        return actions

    def act_frozen(self, eyes, body, greedy: bool = False) -> list[tuple[int, ...]]:
        out, _ = self.brain.forward(eyes, body, self.thought)
        bad = ~np.isfinite(out).all(1)  # as alone: a non-finite output acts at random and clears the thought
        self.thought = np.where(bad[:, None], F32(0.0), np.tanh(out[:, self.brain.slices["thought"]])).astype(F32)
        return [tuple(int(self.rngs[i].integers(k)) for k in self.heads) if bad[i]
                else sample(self._logits(out[i]), self.rngs[i], greedy) for i in range(self.n)]

    def new_life(self, i: int):
        self.thought[i] = 0.0

    # ------------------------------------------------------------ the rule's pieces
    def _main(self, loss_row) -> float:
        return float(loss_row[self.k_fc:].mean())

    def _bounded_step(self, i: int, delta: float, lr_scale: float):
        return bounded_step(self.cfg, self.p_d[i], self.p_pi[i], self.z_d[i], self.z_pi[i], self.ranges_d,
                            self.ranges_pi, delta, lr_scale)

    @staticmethod
    def _trace(z, g, rank1, i: int, segs, decay):
        """z <- decay * z + g for agent i's row: g's outer products formed here from their factors."""
        z *= decay
        for name, lo, hi, shape, _ in segs:
            if name in rank1:
                left, right = rank1[name]
                z[lo:hi].reshape(shape)[...] += left[i][:, None] * right[i]
            else:
                z[lo:hi] += g[lo:hi]

    def _forecast_step(self, i: int, d: float, lr_scale: float) -> bool:
        """theta_D += s_lr * a * g_F with a = 1 / max(kappa * max(d, 1) * ||g_F,b||_1 / d, 1) per block; an outer
        product's L1 norm is the product of its factors' (|l_o r_i| = |l_o| |r_i|)."""
        if not math.isfinite(d) or d == 0.0:
            return math.isfinite(d)
        c = self.cfg
        g, r1 = self.g_fc[i], self.r1_fc
        l1 = [0.0] * len(self.ranges_d)
        for name, lo, hi, _, b in self.segs_d:
            if name in r1:
                left, right = r1[name]
                l1[b] += float(np.abs(left[i]).sum(dtype=np.float64) * np.abs(right[i]).sum(dtype=np.float64)) / d
            else:
                l1[b] += float(np.abs(g[lo:hi] / F32(d)).sum(dtype=np.float64))
        if not all(math.isfinite(x) for x in l1):
            return False
        db = max(d, 1.0)
        a = [c.alpha / max(c.alpha * c.kappa_discomfort * db * x, 1.0) for x in l1]
        p = self.p_d[i]
        for name, lo, hi, shape, b in self.segs_d:
            k = F32(lr_scale * a[b])
            if name in r1:
                left, right = r1[name]
                p[lo:hi].reshape(shape)[...] += (k * left[i])[:, None] * right[i]
            else:
                p[lo:hi] += k * g[lo:hi]
        return True

    # ------------------------------------------------------------ the step
    def learn(self, feels, next_eyes: np.ndarray, next_body: np.ndarray) -> list[dict]:
        c = self.cfg
        n = self.n
        out, logits_all, actions, cache = self._cur
        self._cur = None
        a_n = self.brain._a
        loss = out[:, a_n:a_n + self.brain.regions.loss]
        lr_region = out[:, self.brain.slices["lr"]]
        nxt = self.brain.discomfort_estimate(next_eyes, next_body, self.thought)

        # per agent: the scalars, in the lone rule's order; a fault is settled before any gradient
        ok = np.zeros(n, bool)
        rec = [None] * n
        d_pol = np.zeros((n, a_n), F32)
        d_fc = np.zeros((n, len(self.e_d)), F32)
        for i, f in enumerate(feels):
            if self._bad[i]:  # as alone: the decision is not counted, the update is skipped
                rec[i] = self.fault(i, "non-finite model output")
                continue
            sb = self.setbacks[i]
            sb.count(f.dead)
            discomfort = -(f.d_hp + f.d_energy) + (c.death_discomfort if f.dead else 0.0)
            c_scaled = self.scales[i](discomfort, f.dead)
            d_now = self._main(loss[i])
            if f.dead:
                d_next, f_next = 0.0, np.zeros(self.k_fc, F32)
            else:
                d_next, f_next = self._main(nxt[i]), nxt[i, :self.k_fc]
            delta = c_scaled + c.gamma * d_next - d_now
            z = -float(lr_region[i].mean())
            u = 1.0 / (1.0 + math.exp(z)) if z < 700.0 else 0.0
            lr_scale = (float(self.lr_min[i] + (self.lr_max[i] - self.lr_min[i]) * u) if c.self_lr
                        else c.fixed_lr_scale)
            logits = logits_all[i]
            h = head_entropies(logits)
            if c.entropy_target > 0:
                self.log_beta[i] = adapted_log_beta(c, self.log_beta[i], self.h_max, h, sb.target_fraction())
            if (not all(math.isfinite(x) for x in (delta, lr_scale, d_now))
                    or abs(c.gamma * d_next - d_now) > c.max_abs_delta
                    or not (self.lr_min[i] * 0.999 <= lr_scale <= 1.0)):
                rec[i] = self.fault(i, f"delta={delta} self_lr={lr_scale}")
                continue
            ok[i] = True
            d_pol[i] = policy_cotangent(logits, actions[i], math.copysign(1.0, -delta), self.log_beta[i])
            d_fc_max = 0.0
            if self.k_fc:
                d_k = (F32(c_scaled) + self.fc_gammas * f_next - loss[i, :self.k_fc]).astype(F32)
                d_fc[i, :self.k_fc] = d_k
                d_fc_max = float(np.abs(d_k).max())
            rec[i] = (discomfort, c_scaled, d_now, delta, u, lr_scale, sum(h), d_fc_max)

        if ok.any():  # the three backward passes, every agent at once (a faulted agent's rows go unused)
            self.brain.grad_discomfort(cache, np.broadcast_to(self.e_d, (n, len(self.e_d))), self.g_d, self.r1_d)
            self.brain.grad_policy(cache, d_pol, self.g_pi, self.r1_pi)
            if self.k_fc:
                self.brain.grad_discomfort(cache, d_fc, self.g_fc, self.r1_fc)

        metrics, snap_now = [], []
        for i in range(n):
            if not ok[i]:
                metrics.append(rec[i])
                continue
            fault, a_pi = self._update(i, rec[i], cache["h"][i])
            if fault:
                metrics.append(self.fault(i, fault))
                continue
            discomfort, c_scaled, d_now, delta, u, lr_scale, ent, d_fc_max = rec[i]
            self.steps[i] += 1
            m = step_metrics(d_now, lr_scale, a_pi, ent, delta, discomfort, self.log_beta[i], self.setbacks[i]())
            if feels[i].dead:
                self.deaths[i] += 1
                m["rollback"] = self._die(i, c_scaled)
            elif c.rollback and self.steps[i] % c.rollback_every == 0:
                snap_now.append(i)
            metrics.append(m)
        if snap_now:
            self.take_snapshot(snap_now)
        return metrics

    def _update(self, i: int, rec, h_i) -> tuple[str | None, float]:
        """Agent i's traces, bounded step, forecast step and lr head, on its rows while they are in cache.
        Returns (the fault, or None; the policy's last block step)."""
        c = self.cfg
        discomfort, c_scaled, d_now, delta, u, lr_scale, ent, d_fc_max = rec
        decay = F32(c.gamma * c.lam)
        z_d, z_pi = self.z_d[i], self.z_pi[i]
        self._trace(z_d, self.g_d[i], self.r1_d, i, self.segs_d, decay)
        self._trace(z_pi, self.g_pi[i], self.r1_pi, i, self.segs_pi, decay)
        steps = self._bounded_step(i, delta, lr_scale)
        if steps is None:
            return "non-finite eligibility trace", 0.0
        if self.k_fc and not self._forecast_step(i, d_fc_max, lr_scale):
            return "non-finite forecast step", 0.0
        self.delta_mad[i] = 0.99 * self.delta_mad[i] + 0.01 * abs(delta)
        target = math.tanh(abs(delta) / max(self.delta_mad[i], 1e-6))
        n_lr = self.brain.regions.lr
        d_lr = F32(2.0 * (u - target) * u * (1.0 - u) / n_lr)
        # the lr head reads h detached: its gradient is outer(d_lr * 1, h), then d_lr * 1 for the bias
        g_lr = np.concatenate([np.outer(np.full(n_lr, d_lr, F32), h_i).reshape(-1),
                               np.full(n_lr, d_lr, F32)]).astype(F32, copy=False)
        self.p_lr[i] -= F32(c.lr_head_step) * g_lr
        return None, steps[1]

    def _die(self, i: int, c_death: float) -> bool:
        """Agent i alone: roll back to its oldest snapshot, replay its last moments aversively, a new life."""
        c = self.cfg
        rolled = False
        if c.rollback and self.rollback(i, "oldest"):
            rolled = True
            one = self.brain.rows(slice(i, i + 1))
            z_d, z_pi = self.z_d[i], self.z_pi[i]
            z_d[...] = 0.0
            z_pi[...] = 0.0
            g_d = np.empty((1, z_d.size), F32)
            g_pi = np.empty((1, z_pi.size), F32)
            e_d = self.e_d[None]
            decay = F32(c.gamma * c.lam)
            d_last = 0.0
            since = self._since_oldest
            for eyes, body, thought, action in list(self.windows[i])[-since:] if since else []:
                out, cache = one.forward(eyes[None], body[None], thought[None])
                d_last = self._main(out[0, self.brain._a:self.brain._a + self.brain.regions.loss])
                d_pol = policy_cotangent(self._logits(out[0]), action, -1.0, self.log_beta[i])
                one.grad_discomfort(cache, e_d, g_d)
                one.grad_policy(cache, d_pol[None], g_pi)
                z_d *= decay
                z_d += g_d[0]
                z_pi *= decay
                z_pi += g_pi[0]
            delta = c_death - d_last
            if (math.isfinite(delta) and abs(d_last) <= c.max_abs_delta
                    and self._bounded_step(i, delta, float(self.lr_max[i])) is None):
                self.fault(i, "non-finite trace in aversive replay")
        self.z_d[i] = 0.0
        self.z_pi[i] = 0.0
        self.windows[i].clear()
        f = self.setbacks[i]()
        if f > 0 and self.birth:
            w = F32(f * c.setback_forget)
            for p, b in zip((self.p_d, self.p_pi), self.birth):
                p[i] += w * (b[i] - p[i])
        return rolled

    # ------------------------------------------------------------ what selection moves between agents
    def agent_state(self, i: int) -> dict:
        """Everything agent i has learned and carries: parameters (by torch Brain's names), eye statistics,
        traces, thought, rule state."""
        sd = self.brain.agent_state_dict(i)
        bufs = {k: sd.pop(k) for k in list(sd) if k.startswith("eye_norm.")}
        return {"params": sd, "bufs": bufs, "z_pi": [self.z_pi[i].copy()], "z_d": [self.z_d[i].copy()],
                "thought": self.thought[i].copy(), **self._values(i),
                "lr_min": float(self.lr_min[i]), "lr_max": float(self.lr_max[i])}

    def load_agent_state(self, i: int, st: dict):
        """Agent i becomes a copy of `st` (from agent_state): its ring and window start empty, a fresh snapshot."""
        self.brain.load_agent_state_dict(i, {**st["params"], **st["bufs"]})
        self.z_pi[i] = st["z_pi"][0]
        self.z_d[i] = st["z_d"][0]
        self.thought[i] = st["thought"]
        self.scales[i].load(st["scale"])
        self.delta_mad[i] = st["delta_mad"]
        self.log_beta[i] = list(st["log_beta"])
        self.lr_min[i], self.lr_max[i] = st["lr_min"], st["lr_max"]
        self.windows[i].clear()
        self.rings[i].clear()
        self.take_snapshot([i])
