"""What every learning rule shares: acting from the output tensor, the thought loop, snapshots, faults."""
from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F

from ..acting import Feeling  # noqa: F401  (re-exported: rules and tests import it from here)
from ..config import RuleConfig
from ..model import Brain
from ..net import TorchNet
from ..rollback import RollbackRing

log = logging.getLogger("edge_runtime.rules")


class Rule:
    """A learning rule drives one Brain: decide() then learn() every step.

    decide(eyes, body) runs the forward pass (kept for learn), samples an
    action from the action region and stores the thought for the next input.
    learn(feeling, next_eyes, next_body) reads the rule's loss and learning
    rate, backpropagates, updates and frees the graph; on death it rolls back.
    """

    name = "base"
    towers = "shared"
    learns = True  # a rule learns; an actor with an exported brain (edge_runtime/onnx_policy.py) does not

    def __init__(self, brain: Brain, cfg: RuleConfig, seed: int = 0, net=None):
        self.brain = brain
        # who runs the brain's passes (edge_runtime/net.py): torch autograd unless a backend is given
        self.net = net if net is not None else TorchNet(brain)
        self.cfg = cfg
        self.gen = torch.Generator().manual_seed(seed)
        self.thought = brain.zero_thought()
        self.ring = RollbackRing(cfg.rollback_depth)
        self.learning = True
        self.steps = 0  # decisions learned from
        self.rollbacks = 0
        self.faults = 0
        self.deaths = 0
        self._cur = None
        self._pending_fault = None
        self._shown = None  # the last decision's output, detached (regions_now reads it; nothing else does)

    # ------------------------------------------------------------ acting
    def _policy(self, out: torch.Tensor):
        r = self.brain.split(out)
        logits = self.brain.head_logits(r["actions"])
        return r, logits

    def _sample(self, logits: list[torch.Tensor], greedy: bool) -> tuple[int, ...]:
        if greedy:
            return tuple(int(l.argmax(1)) for l in logits)
        return tuple(int(torch.multinomial(F.softmax(l.detach(), 1), 1, generator=self.gen)) for l in logits)

    @staticmethod
    def entropy(logits: list[torch.Tensor]) -> torch.Tensor:
        return sum(-(F.softmax(l, 1) * F.log_softmax(l, 1)).sum() for l in logits)

    def take_pending_fault(self) -> dict | None:
        """learn() calls this first: a fault flagged in decide() ends the step here."""
        if self._cur is None:
            what = self._pending_fault or "learn() without decide()"
            self._pending_fault = None
            return self.fault(what)
        return None

    @staticmethod
    def log_prob(logits: list[torch.Tensor], action: tuple[int, ...]) -> torch.Tensor:
        return sum(F.log_softmax(l, 1)[0, a] for l, a in zip(logits, action))

    def _guard_output(self, out: torch.Tensor) -> tuple[int, ...] | None:
        """A non-finite output must not drive the body or reach learning: act uniformly at random,
        reset the thought, and let learn() report the fault and roll back."""
        if torch.isfinite(out).all():
            return None
        self._pending_fault = "non-finite model output"
        self._cur = None
        self.thought = self.brain.zero_thought()
        return tuple(int(torch.randint(n, (1,), generator=self.gen)) for n in self.brain.spec.action_heads.values())

    def act_frozen(self, eyes, body, greedy: bool = False) -> tuple[int, ...]:
        """Act without learning (evaluation): no graph, the thought still flows."""
        with torch.no_grad():
            out = self.net.forward(eyes, body, self.thought)
            bad = self._guard_output(out)
            if bad is not None:
                self._pending_fault = None  # frozen: nothing to roll back, just do not crash
                return bad
            self._shown = out
            r, logits = self._policy(out)
            self.thought = torch.tanh(r["thought"])
            return self._sample(logits, greedy)

    def decide(self, eyes, body) -> tuple[int, ...]:
        """Forward with the graph kept for learn(), sample an action, keep the thought for the next input."""
        self.brain.observe(eyes)
        out = self.net.forward(eyes, body, self.thought)
        bad = self._guard_output(out)
        if bad is not None:
            return bad
        self._shown = out.detach()
        r, logits = self._policy(out)
        action = self._sample(logits, greedy=False)
        self._cur = (r, logits, action)
        self.remember(eyes, body, self.thought, action)
        self.thought = torch.tanh(r["thought"]).detach()
        return action

    def regions_now(self) -> dict | None:
        """What the last decision's output said, as plain lists (the live view and recordings read it, at their
        own pace): each action head's probabilities, the loss and learning-rate regions as output, and the thought
        as fed back (tanh). None before the first decision."""
        if self._shown is None:
            return None
        with torch.no_grad():
            r = self.brain.split(self._shown)
            probs = [F.softmax(z, 1)[0].tolist() for z in self.brain.head_logits(r["actions"])]
            return {"heads": {name: p for (name, _), p in zip(self.brain.regions.heads, probs)},
                    "loss": r["loss"][0].tolist(), "lr": r["lr"][0].tolist(),
                    "thought": torch.tanh(r["thought"][0]).tolist()}

    def remember(self, eyes, body, thought, action):
        """What a rule keeps of this step's input for its death update (nothing by default)."""

    def learn(self, feel: Feeling, next_eyes, next_body) -> dict:
        raise NotImplementedError

    def new_life(self):
        """After a respawn: the thought starts empty; the weights carry on."""
        self.thought = self.brain.zero_thought()
        self._cur = None

    # ------------------------------------------------------------ snapshots and faults
    def snapshot_tensors(self) -> dict[str, list[torch.Tensor]]:
        return {"params": list(self.brain.parameters()), "thought": [self.thought]}

    def snapshot_values(self) -> dict:
        return {"steps": self.steps}

    def take_snapshot(self):
        self.ring.push(self.steps, self.snapshot_tensors(), self.snapshot_values())

    def rollback(self, reason: str, which: str = "latest") -> bool:
        snap = self.ring.restore(self.snapshot_tensors(), which)
        if snap is None:
            return False
        self.rollbacks += 1
        self._since_oldest = self.steps - snap.step
        self.restore_values(snap.values)
        log.debug("rollback to step %d (%s)", snap.step, reason)
        return True

    def restore_values(self, values: dict):
        pass  # step counters keep counting forward: time does not roll back

    def fault(self, what: str) -> dict:
        """A non-finite or runaway value appeared: nothing reaches the parameters; roll back."""
        self.faults += 1
        log.warning("learning fault #%d at step %d: %s; update skipped, rolled back", self.faults, self.steps, what)
        self.rollback("fault")
        self._cur = None
        return {"fault": what}

    @staticmethod
    def finite(*xs) -> bool:
        return all(math.isfinite(float(x.detach() if isinstance(x, torch.Tensor) else x)) for x in xs)

    def state_dict(self) -> dict:
        return {"steps": self.steps, "rollbacks": self.rollbacks, "faults": self.faults, "deaths": self.deaths,
                "gen": self.gen.get_state(), "thought": self.thought.clone()}

    def load_state_dict(self, d: dict):
        self.steps, self.rollbacks, self.faults, self.deaths = d["steps"], d["rollbacks"], d["faults"], d["deaths"]
        self.gen.set_state(d["gen"])
        self.thought = d["thought"].clone()
