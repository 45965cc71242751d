"""`survival` for N agents at once: the same rule, one batched computation per step.

Every formula is the `survival` rule's (edge_runtime/rules/survival.py, whose docstring writes out the
math); here each one carries a leading agent axis. Per decision t, for every agent i:

    out_i        = brain_i(eyes_i, body_i, thought_i)              one batched forward (BatchedBrain)
    a_i          ~ pi_i(.|s)                                        agent i's own generator, seeded seed + i
    delta_i      = c~_i + gamma * D_i(s') - D_i(s)                  c~_i scaled by agent i's own running std
    z_D,i        <- gamma*lambda*z_D,i  + grad_i D_i(s)
    z_pi,i       <- gamma*lambda*z_pi,i + grad_i [log pi_i(a_i) + sign(-delta_i) sum_h beta_h,i H_h,i]
    a_b,i        = alpha / max(alpha * kappa * max(|delta_i|, 1) * ||z_b,i||_1, 1)   per block b, per agent
    theta_D,i    <- theta_D,i  + s_lr,i * a_b,i * delta_i * z_D,i
    theta_pi,i   <- theta_pi,i - s_lr,i * a_b,i * delta_i * z_pi,i
    (the short-horizon forecasts, the entropy weights and the learning-rate region's target likewise)

The gradients of all agents come from one backward pass of the sum over agents of their objectives:
agent i's output depends only on its own parameter slice, so each slice receives exactly its own
gradient. Per-agent scalars (delta, the self-made rate, the bounds, the entropy weights, the running
scale) are float64 per agent, as the lone rule's Python floats are.

What is per agent and never shared: parameters, traces, eye statistics, thought, generator, running
scale, entropy weights, the self-made rate's range (lr_min, lr_max: selection mutates them), the
window of recent moments, and the rollback ring. A death rolls back only that agent: its slice is
restored from its own oldest snapshot and its last moments are replayed through the same batched
forward on its slice alone, then one aversive bounded step, exactly as the lone rule does.
Snapshots are taken when an agent's own step count reaches a multiple of K (as alone); one stacked
copy serves every agent that takes a snapshot at that step.

tests/test_population.py holds agent i to a lone `survival` rule given the same senses.
"""
from __future__ import annotations

import copy
import math
from collections import deque
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from ..config import ModelConfig, RuleConfig
from ..model import Brain
from ..rules import build
from ..rules.survival import Survival
from ..survival_state import RunningScale, Setback
from .batched import BatchedBrain, stack_brains


@dataclass
class Snap:
    """One agent's place in a stacked snapshot: the copy (shared by every agent that snapped then), its row."""

    step: int
    tensors: dict[str, torch.Tensor]
    row: int
    values: dict


class PopulationSurvival:
    """N `survival` learners driven together: decide(eyes, body) and learn(feelings, eyes', body') per step."""

    name = "survival"
    learns = True

    def __init__(self, spec, model_cfg: ModelConfig, cfg: RuleConfig, n: int, seed: int = 0):
        self.cfg = cfg
        self.n = n
        # agent i starts as the lone rule seeded seed + i would (same initial weights, same generator)
        lone = [build(spec, model_cfg, copy.deepcopy(cfg), seed + i) for i in range(n)]
        if not isinstance(lone[0], Survival):
            raise ValueError(f"population: rule.name must be survival, got {cfg.name!r}")
        self.template: Brain = lone[0].brain
        params, bufs = stack_brains([r.brain for r in lone])
        self.brain = BatchedBrain(self.template, params, bufs)
        self.gens = [r.gen for r in lone]
        t = self.template
        self.names_pi = ["policy." + k for k, _ in t.policy.named_parameters()]
        self.names_d = ["discomfort." + k for k, _ in t.discomfort.named_parameters()]
        self.names_lr = ["lr_head." + k for k, _ in t.lr_head.named_parameters()]
        self.p_pi = [params[k] for k in self.names_pi]
        self.p_d = [params[k] for k in self.names_d]
        self.p_lr = [params[k] for k in self.names_lr]
        self.z_pi = [torch.zeros_like(p) for p in self.p_pi]
        self.z_d = [torch.zeros_like(p) for p in self.p_d]
        self.blocks_pi = Survival._blocks(t.policy, cfg.bound_scope)
        self.blocks_d = Survival._blocks(t.discomfort, cfg.bound_scope)
        self.ranges_pi = Survival._ranges(self.blocks_pi)
        self.ranges_d = Survival._ranges(self.blocks_d)
        self.k_fc = len(cfg.forecast_gammas)
        self.fc_gammas = torch.tensor([cfg.forecast_gammas], dtype=torch.float32)
        heads = list(spec.action_heads.values())
        self.heads = heads
        self.h_max = np.array([math.log(k) for k in heads])
        self.setbacks = [Setback(cfg) for _ in range(n)]  # each agent's own lives (selection does not copy them)
        # each agent's birth weights, what a setback forgets toward (Survival.birth)
        self.birth = [p.detach().clone() for p in self.p_d + self.p_pi] if cfg.setback_forget > 0 else []
        self.log_beta = np.full((n, len(heads)), math.log(cfg.entropy) if cfg.entropy > 0 else -math.inf)
        self.scales = [RunningScale(cfg.gamma) for _ in range(n)]
        self.delta_mad = np.ones(n)
        # the self-made rate's range, per agent (selection mutates it; the config gives the start)
        self.lr_min = np.full(n, cfg.lr_min)
        self.lr_max = np.full(n, cfg.lr_max)
        self.thought = torch.zeros(n, model_cfg.thought_size)
        self.windows = [deque(maxlen=cfg.rollback_every * cfg.rollback_depth) for _ in range(n)]
        self.rings: list[deque[Snap]] = [deque(maxlen=cfg.rollback_depth) for _ in range(n)]
        self.steps = np.zeros(n, dtype=np.int64)
        self.rollbacks = np.zeros(n, dtype=np.int64)
        self.faults = np.zeros(n, dtype=np.int64)
        self._cur = None
        self._bad = np.zeros(n, dtype=bool)
        self.take_snapshot(list(range(n)))

    # ------------------------------------------------------------ per-agent coefficient broadcast
    def _per_agent(self, coef: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
        """(N,) -> (N, 1, ..., 1) to scale every agent's slice of `like`."""
        return coef.view(-1, *([1] * (like.dim() - 1)))

    # ------------------------------------------------------------ snapshots
    def _snapshot_tensors(self) -> dict[str, list[torch.Tensor]]:
        return {"params": list(self.brain.p.values()), "z_pi": self.z_pi, "z_d": self.z_d, "thought": [self.thought]}

    def _values(self, i: int) -> dict:
        return {"scale": self.scales[i].state(), "delta_mad": float(self.delta_mad[i]),
                "log_beta": self.log_beta[i].tolist()}

    def take_snapshot(self, agents: list[int]):
        with torch.no_grad():
            saved = {k: [t.detach().clone() for t in ts] for k, ts in self._snapshot_tensors().items()}
        for i in agents:
            self.rings[i].append(Snap(int(self.steps[i]), saved, i, self._values(i)))

    def rollback(self, i: int, which: str = "latest") -> bool:
        ring = self.rings[i]
        if not ring:
            return False
        snap = ring[-1] if which == "latest" else ring[0]
        with torch.no_grad():
            for k, ts in self._snapshot_tensors().items():
                for dst, src in zip(ts, snap.tensors[k]):
                    dst[i].copy_(src[snap.row])
        v = snap.values
        self.scales[i].load(v["scale"])
        self.delta_mad[i] = v["delta_mad"]
        self.log_beta[i] = v["log_beta"]
        self.rollbacks[i] += 1
        self._since_oldest = int(self.steps[i]) - snap.step
        return True

    def fault(self, i: int, what: str) -> dict:
        self.faults[i] += 1
        self.rollback(i, "latest")
        return {"fault": what}

    # ------------------------------------------------------------ acting
    def _split(self, out: torch.Tensor):
        r = self.template.split(out)
        return r, self.template.head_logits(r["actions"])

    def decide(self, eyes: torch.Tensor, body: torch.Tensor) -> list[tuple[int, ...]]:
        """Every agent's forward pass (graph kept for learn) and action; eyes (N, 6, h, w), body (N, d)."""
        self.brain.observe(eyes)
        out = self.brain(eyes, body, self.thought)
        finite = torch.isfinite(out).all(1)
        self._bad = ~finite.numpy()
        r, logits = self._split(out)
        probs = [F.softmax(l.detach(), 1) for l in logits]
        actions = []
        for i in range(self.n):
            if self._bad[i]:  # a non-finite output must not drive the body: act at random, fault in learn()
                actions.append(tuple(int(torch.randint(k, (1,), generator=self.gens[i])) for k in self.heads))
                continue
            actions.append(tuple(int(torch.multinomial(p[i:i + 1], 1, generator=self.gens[i])) for p in probs))
            self.windows[i].append((eyes[i:i + 1], body[i:i + 1], self.thought[i:i + 1], actions[i]))
        self._cur = (r, logits, actions)
        new_thought = torch.tanh(r["thought"]).detach()
        self.thought = torch.where(torch.from_numpy(self._bad)[:, None], torch.zeros_like(new_thought), new_thought)
        return actions

    def act_frozen(self, eyes, body, greedy: bool = False) -> list[tuple[int, ...]]:
        with torch.no_grad():
            out = self.brain(eyes, body, self.thought)
            r, logits = self._split(out)
            self.thought = torch.tanh(r["thought"])
            if greedy:
                am = [l.argmax(1).tolist() for l in logits]
                return [tuple(a[i] for a in am) for i in range(self.n)]
            probs = [F.softmax(l, 1) for l in logits]
            return [tuple(int(torch.multinomial(p[i:i + 1], 1, generator=self.gens[i])) for p in probs)
                    for i in range(self.n)]

    def new_life(self, i: int):
        self.thought[i].zero_()

    # ------------------------------------------------------------ the rule's pieces, per agent
    def _main(self, loss: torch.Tensor) -> torch.Tensor:
        return loss[:, self.k_fc:].mean(1)

    @staticmethod
    def _head_entropies(logits) -> torch.Tensor:
        """(N, heads)"""
        return torch.stack([-(F.softmax(l, 1) * F.log_softmax(l, 1)).sum(1) for l in logits], 1)

    def _objective(self, r, logits, actions, delta_sign: torch.Tensor, log_beta: np.ndarray, ent=None):
        """Per agent: D_i, and log pi_i(a_i) + sign_i * sum_h beta_h,i H_h,i (N,) each. `ent`: the (N, heads)
        entropies when the caller has them already."""
        d_est = self._main(r["loss"])
        idx = torch.tensor(actions, dtype=torch.long)
        logp = sum(F.log_softmax(l, 1).gather(1, idx[:, h:h + 1]).squeeze(1) for h, l in enumerate(logits))
        beta = torch.from_numpy(np.exp(log_beta)).float()
        obj = logp + delta_sign * (beta * (self._head_entropies(logits) if ent is None else ent)).sum(1)
        return d_est, obj

    def _grads(self, d_est, obj, p_d, p_pi, keep: bool):
        g = torch.autograd.grad([d_est.sum(), obj.sum()], p_d + p_pi, retain_graph=keep, allow_unused=True)
        n = len(p_d)
        g_d, g_pi = list(g[:n]), list(g[n:])
        g_pi = [torch.zeros_like(p) if x is None else x for p, x in zip(p_pi, g_pi)]
        return g_d, g_pi

    def _trace(self, z: list[torch.Tensor], g: list[torch.Tensor], decay: float, mask: np.ndarray):
        """z <- decay * z + g for the agents in mask; the others' traces stay as they are."""
        with torch.no_grad():
            if mask.all():
                torch._foreach_mul_(z, decay)
                torch._foreach_add_(z, g)
                return
            dec = torch.from_numpy(np.where(mask, decay, 1.0)).float()
            keep = torch.from_numpy(mask.astype(np.float32))
            for zz, gg in zip(z, g):
                zz.mul_(self._per_agent(dec, zz)).addcmul_(self._per_agent(keep, gg), gg)

    def _block_steps(self, z, blocks, ranges, kappa: float, db: np.ndarray) -> np.ndarray:
        """(N, blocks) ObGD step sizes alpha / max(alpha * kappa * max(|delta|,1) * ||z_b||_1, 1)."""
        c = self.cfg
        # (N, params); abs().sum over the trailing dims is several times faster here than a norm with a dim
        norms = torch.stack([t.abs().sum(tuple(range(1, t.dim()))) for t in z], 1).double().numpy()
        l1 = np.zeros((norms.shape[0], max(blocks) + 1))
        for lo, hi in ranges:
            l1[:, blocks[lo]] = norms[:, lo:hi].sum(1)
        return c.alpha / np.maximum(c.alpha * kappa * db[:, None] * l1, 1.0)

    def _add_by_block(self, params, z, ranges, blocks, coef: np.ndarray, mask: np.ndarray):
        """params[i] += coef[i, block] * z[i] for the agents in mask."""
        coef = np.where(mask[:, None], coef, 0.0)
        with torch.no_grad():
            for lo, hi in ranges:
                k = torch.from_numpy(coef[:, blocks[lo]]).float()
                for p, zz in zip(params[lo:hi], z[lo:hi]):
                    p.addcmul_(self._per_agent(k, zz), zz)

    def _bounded_step(self, delta: np.ndarray, lr_scale: np.ndarray, mask: np.ndarray, p_d=None, p_pi=None,
                      z_d=None, z_pi=None):
        c = self.cfg
        p_d, p_pi = p_d or self.p_d, p_pi or self.p_pi
        z_d, z_pi = z_d or self.z_d, z_pi or self.z_pi
        db = np.maximum(np.abs(delta), 1.0)
        a_d = self._block_steps(z_d, self.blocks_d, self.ranges_d, c.kappa_discomfort, db)
        a_pi = self._block_steps(z_pi, self.blocks_pi, self.ranges_pi, c.kappa_policy, db)
        ok = np.isfinite(a_d).all(1) & np.isfinite(a_pi).all(1)
        self._add_by_block(p_d, z_d, self.ranges_d, self.blocks_d, a_d * (lr_scale * delta)[:, None], mask & ok)
        self._add_by_block(p_pi, z_pi, self.ranges_pi, self.blocks_pi, a_pi * (-lr_scale * delta)[:, None], mask & ok)
        return a_d[:, -1], a_pi[:, -1], ok

    # ------------------------------------------------------------ the step
    def learn(self, feels, next_eyes: torch.Tensor, next_body: torch.Tensor) -> list[dict]:
        c = self.cfg
        n = self.n
        r, logits, actions = self._cur
        self._cur = None
        dead = np.array([f.dead for f in feels])
        for sb, d in zip(self.setbacks, dead):
            sb.count(bool(d))
        discomfort = np.array([-(f.d_hp + f.d_energy) + (c.death_discomfort if f.dead else 0.0) for f in feels])
        c_scaled = np.array([s(x, d) for s, x, d in zip(self.scales, discomfort, dead)])
        d_now = self._main(r["loss"]).detach().double().numpy()
        with torch.no_grad():
            nxt = self.brain.discomfort_estimate(next_eyes, next_body, self.thought)
        alive = torch.from_numpy(~dead)[:, None]
        f_next = torch.where(alive, nxt[:, :self.k_fc], torch.zeros(()))
        d_next = np.where(dead, 0.0, self._main(nxt).double().numpy())
        delta = c_scaled + c.gamma * d_next - d_now
        u = torch.sigmoid(r["lr"].mean(1))
        if c.self_lr:
            lr_scale = self.lr_min + (self.lr_max - self.lr_min) * u.detach().double().numpy()
        else:
            lr_scale = np.full(n, c.fixed_lr_scale)
        head_ent = self._head_entropies(logits)  # (N, heads), once: the metric, the weights' target, the objective
        h = head_ent.detach().double().numpy()
        ent = h.sum(1)
        if c.entropy_target > 0:
            h_target = np.array([sb.target_fraction() for sb in self.setbacks])[:, None] * self.h_max
            self.log_beta = np.clip(self.log_beta + c.entropy_adapt * (h_target - h), math.log(1e-4), math.log(10.0))
        ok = (~self._bad & np.isfinite(delta) & np.isfinite(lr_scale) & np.isfinite(d_now)
              & (np.abs(c.gamma * d_next - d_now) <= c.max_abs_delta)  # the estimate, not the felt (as the lone rule)
              & (self.lr_min * 0.999 <= lr_scale) & (lr_scale <= 1.0))

        sign = torch.from_numpy(np.copysign(1.0, -delta)).float()
        d_est, obj = self._objective(r, logits, actions, sign, self.log_beta, head_ent)
        g_d, g_pi = self._grads(d_est, obj, self.p_d, self.p_pi, keep=self.k_fc > 0)
        g_fc = self._forecast_grads(r["loss"][:, :self.k_fc], c_scaled, f_next) if self.k_fc else None
        decay = c.gamma * c.lam
        self._trace(self.z_d + self.z_pi, g_d + g_pi, decay, ok)
        a_d, a_pi, ok_tr = self._bounded_step(delta, lr_scale, ok)
        fc_ok = self._forecast_step(g_fc, lr_scale, ok & ok_tr) if g_fc is not None else np.ones(n, bool)

        self.delta_mad = np.where(ok, 0.99 * self.delta_mad + 0.01 * np.abs(delta), self.delta_mad)
        target = torch.from_numpy(np.tanh(np.abs(delta) / np.maximum(self.delta_mad, 1e-6))).float()
        wt = torch.from_numpy(ok & ok_tr & fc_ok).float()
        g_lr = torch.autograd.grad((wt * (u - target) ** 2).sum(), self.p_lr)
        with torch.no_grad():
            torch._foreach_add_(self.p_lr, g_lr, alpha=-c.lr_head_step)

        out = []
        snap_now = []
        for i in range(n):
            if not ok[i]:
                why = "non-finite model output" if self._bad[i] else f"delta={delta[i]} self_lr={lr_scale[i]}"
                out.append(self.fault(i, why))
                continue
            if not ok_tr[i]:
                out.append(self.fault(i, "non-finite eligibility trace"))
                continue
            if not fc_ok[i]:
                out.append(self.fault(i, "non-finite forecast step"))
                continue
            self.steps[i] += 1
            mi = {"self_loss": float(d_now[i]), "self_lr": float(lr_scale[i]), "lr_eff": float(lr_scale[i] * a_pi[i]),
                  "entropy": float(ent[i]), "td_error": float(delta[i]), "discomfort": float(discomfort[i]),
                  "entropy_w": round(math.exp(max(self.log_beta[i])), 6), "setback": self.setbacks[i]()}
            if dead[i]:
                mi["rollback"] = self._die(i, float(c_scaled[i]))
            elif c.rollback and self.steps[i] % c.rollback_every == 0:
                snap_now.append(i)
            out.append(mi)
        if snap_now:
            self.take_snapshot(snap_now)
        return out

    def _forecast_grads(self, f_now, c_scaled, f_next):
        """The short-horizon forecasts' TD(0) errors and gradients, per agent (survival._forecast_grads)."""
        cs = torch.from_numpy(c_scaled).float()[:, None]
        d_k = (cs + self.fc_gammas * f_next - f_now).detach()
        g = list(torch.autograd.grad((d_k * f_now).sum(), self.p_d))
        return g, d_k.abs().max(1).values.double().numpy()

    def _forecast_step(self, g_fc, lr_scale, mask) -> np.ndarray:
        """survival._forecast_step per agent: True where it went through (or had nothing to do)."""
        g, d = g_fc
        fin = np.isfinite(d)
        go = mask & fin & (d != 0.0)
        safe_d = np.where(go, d, 1.0)
        scaled = [gg / self._per_agent(torch.from_numpy(safe_d).float(), gg) for gg in g]
        a = self._block_steps(scaled, self.blocks_d, self.ranges_d, self.cfg.kappa_discomfort, np.maximum(safe_d, 1.0))
        a_ok = np.isfinite(a).all(1)
        self._add_by_block(self.p_d, g, self.ranges_d, self.blocks_d, a * lr_scale[:, None], go & a_ok)
        return fin & (a_ok | ~go)

    def _die(self, i: int, c_death: float) -> bool:
        """Agent i alone: roll back to its oldest snapshot, replay its last moments aversively, new life."""
        c = self.cfg
        rolled = False
        sl = slice(i, i + 1)
        if c.rollback and self.rollback(i, "oldest"):
            rolled = True
            with torch.no_grad():
                for z in self.z_d + self.z_pi:
                    z[i].zero_()
            # agent i's parameters as a batch of one: its own leaves, so the replay's gradients are its alone
            p1 = {k: v[sl].detach().clone().requires_grad_() for k, v in self.brain.p.items()}
            b1 = {k: v[sl] for k, v in self.brain.b.items()}
            p_d = [p1[k] for k in self.names_d]
            p_pi = [p1[k] for k in self.names_pi]
            z_d = [torch.zeros_like(p) for p in p_d]
            z_pi = [torch.zeros_like(p) for p in p_pi]
            decay = c.gamma * c.lam
            d_last = 0.0
            since = self._since_oldest
            lb = self.log_beta[sl]
            for eyes, body, thought, action in list(self.windows[i])[-since:] if since else []:
                out = self.brain(eyes, body, thought, p=p1, b=b1)
                r, logits = self._split(out)
                d_est, obj = self._objective(r, logits, [action], torch.tensor([-1.0]), lb)
                d_last = float(d_est.detach()[0])
                g_d, g_pi = self._grads(d_est, obj, p_d, p_pi, keep=False)
                torch._foreach_mul_(z_d, decay)
                torch._foreach_add_(z_d, g_d)
                torch._foreach_mul_(z_pi, decay)
                torch._foreach_add_(z_pi, g_pi)
            delta = c_death - d_last
            if math.isfinite(delta) and abs(d_last) <= c.max_abs_delta:
                _, _, ok = self._bounded_step(np.array([delta]), np.array([self.lr_max[i]]), np.array([True]),
                                              p_d, p_pi, z_d, z_pi)
                if ok[0]:
                    with torch.no_grad():
                        for k, v in self.brain.p.items():
                            v[i].copy_(p1[k][0])
                else:
                    self.fault(i, "non-finite trace in aversive replay")
        with torch.no_grad():
            for z in self.z_d + self.z_pi:
                z[i].zero_()
        self.windows[i].clear()
        f = self.setbacks[i]()
        if f > 0 and self.birth:
            with torch.no_grad():
                for p, p0 in zip(self.p_d + self.p_pi, self.birth):
                    p[i].lerp_(p0[i], f * c.setback_forget)
        return rolled

    # ------------------------------------------------------------ what selection moves between agents
    def agent_state(self, i: int) -> dict:
        """Everything agent i has learned and carries: parameters, eye statistics, traces, thought, rule state."""
        return {"params": {k: v[i].detach().clone() for k, v in self.brain.p.items()},
                "bufs": {k: v[i].clone() for k, v in self.brain.b.items()},
                "z_pi": [z[i].clone() for z in self.z_pi], "z_d": [z[i].clone() for z in self.z_d],
                "thought": self.thought[i].clone(), **self._values(i),
                "lr_min": float(self.lr_min[i]), "lr_max": float(self.lr_max[i])}

    def load_agent_state(self, i: int, st: dict):
        """Agent i becomes a copy of `st` (from agent_state): its ring and window start empty, a fresh snapshot."""
        with torch.no_grad():
            for k, v in self.brain.p.items():
                v[i].copy_(st["params"][k])
            for k, v in self.brain.b.items():
                v[i].copy_(st["bufs"][k])
            for dst, src in zip(self.z_pi + self.z_d, st["z_pi"] + st["z_d"]):
                dst[i].copy_(src)
            self.thought[i].copy_(st["thought"])
        self.scales[i].load(st["scale"])
        self.delta_mad[i] = st["delta_mad"]
        self.log_beta[i] = st["log_beta"]
        self.lr_min[i], self.lr_max[i] = st["lr_min"], st["lr_max"]
        self.windows[i].clear()
        self.rings[i].clear()
        self.take_snapshot([i])
