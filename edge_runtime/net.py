"""Who computes the brain's passes for a learning rule: the rule's math is written once, against this contract.

A rule asks its `net` for three things and nothing else:
    forward(eyes, body, thought)            the output tensor (1, regions.total); the graph is kept for grad()
    discomfort_estimate(eyes, body, thought) the loss region alone, no graph (the TD target's forward)
    grad(outputs, params, retain_graph)     d sum(outputs) / d params, for scalars computed from the LAST
                                            forward()'s output; a parameter the outputs do not reach gets None
                                            or zeros

`TorchNet` (model.backend = torch; auto where the numpy learner does not compute the config) is torch autograd
over the Brain. `OrtNet`
(edge_runtime/ort_net.py, model.backend = ort) runs the same passes in ONNX Runtime. Either way the
parameters are the Brain's torch tensors: the rule updates them in place, the rollback ring and the
checkpoints hold them, so a checkpoint written with one backend resumes on the other.
"""
from __future__ import annotations

import torch

from .model import Brain


class TorchNet:
    name = "torch"

    def __init__(self, brain: Brain):
        self.brain = brain

    def forward(self, eyes: torch.Tensor, body: torch.Tensor, thought: torch.Tensor) -> torch.Tensor:
        return self.brain(eyes, body, thought)

    def discomfort_estimate(self, eyes: torch.Tensor, body: torch.Tensor, thought: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return self.brain.discomfort_estimate(eyes, body, thought)

    def grad(self, outputs, params: list[torch.Tensor], retain_graph: bool = False):
        return torch.autograd.grad(outputs, params, retain_graph=retain_graph, allow_unused=True)


def make_net(brain: Brain, rule_name: str):
    """The backend model.backend names, for a brain driven by rule `rule_name`. `auto` is torch here: a torch Brain
    is built by rules.build, which a learner reaches when learner_backend() resolved auto to torch (or a caller
    that batches in torch, like the population, chose it)."""
    if brain.cfg.backend in ("torch", "auto"):
        return TorchNet(brain)
    if brain.cfg.backend == "numpy":  # (the numpy learner has its own brain: edge_runtime/numpy_learner.build)
        raise ValueError("model.backend = numpy: the rule is built by edge_runtime.numpy_learner.build, not on a torch Brain")
    from .ort_net import OrtNet, OrtUnavailable

    if brain.towers != "split":
        raise OrtUnavailable(f"model.backend = ort: runs split towers (the survival rule); rule {rule_name!r} "
                             f"uses {brain.towers} towers: use model.backend = torch")
    return OrtNet(brain)
