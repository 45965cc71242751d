"""model.backend = ort: the brain's forward pass and the gradients a rule asks for, computed by ONNX Runtime.

The rule is the same rule (edge_runtime/rules/): it asks its net for forward(), discomfort_estimate() and
grad() (edge_runtime/net.py). This net answers from the graphs of edge_runtime/ort_graphs.py, run in
onnxruntime-training's runtime (its gradient kernels are not in the plain `onnxruntime` package).

How grad(outputs, params) is computed. The rule's objectives (its self-made loss D, log pi of the action taken plus
the entropy term, the forecasts' TD(0) term, the learning-rate head's target) are functions of the output tensor
alone. forward() hands the rule that tensor as a torch leaf; grad() lets torch carry the rule's scalars back to it
(the cotangent: one number per output slot, about 150), then asks ONNX Runtime for each tower's vector-Jacobian
product with its slice of the cotangent:
    discomfort tower   <- the loss region's slots
    policy tower       <- the action logits' and the thought's slots (its output layer reads hd as an input)
    learning-rate head <- the lr region's slots (it reads h as an input)
The detached reads (the policy's output layer reading hd, the lr head reading h) are graph inputs, fed the values
the forward pass produced: an input sends no gradient anywhere, as detach() sends none in torch. A tower whose
cotangent slice is all zero gets zero gradients without running its graph.

The weights are the Brain's torch tensors, fed to every graph at every call as numpy views (no copy): the rule's
in-place updates, the rollback ring and checkpoint loads are what the next call sees, and a checkpoint is the same
file whichever backend wrote it. The eye statistics (EyeNorm) are applied in torch before the graphs: they change
while learning, and they are a per-pixel affine map with no parameter to learn.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from .config import ConfigError
from .model import Brain

INSTALL = ("pip install -e '.[ort-training]' (onnxruntime-training-cpu 1.19.2, x86_64 Linux/macOS/Windows; "
           "it replaces the plain onnxruntime package: see docs/onnx.md)")


class OrtUnavailable(ConfigError):
    """The ort backend cannot run here: the message says why and what to install."""


def ort_training():
    """The onnxruntime module, checked to be a training build (it has the gradient builder and kernels)."""
    if "onnxruntime" not in sys.modules:
        # the training build's `import onnxruntime` tries to import ORTModule (torch training through ORT, which we
        # do not use) and with it torch.onnx and more: 54 MB resident for nothing. An import that is known absent
        # makes its check say "no ORTModule", as in a build without it.
        sys.modules.setdefault("onnxruntime.training.ortmodule", None)
    try:
        import onnxruntime
        from onnxruntime.capi import _pybind_state as C
    except ImportError as e:
        raise OrtUnavailable(f"model.backend = ort needs ONNX Runtime's training build ({e}): {INSTALL}") from None
    if not hasattr(C, "GradientGraphBuilder"):
        raise OrtUnavailable(f"model.backend = ort: onnxruntime {onnxruntime.__version__} here is the inference "
                             f"package, which has no gradient kernels: {INSTALL}")
    return onnxruntime


class OrtNet:
    name = "ort"

    def __init__(self, brain: Brain, threads: int | None = None):
        ort = ort_training()
        from .ort_graphs import ArtifactsError, load_graphs, make_graphs

        self.brain = brain
        cfg = brain.cfg
        graphs = load_graphs(cfg.ort_artifacts, brain) if cfg.ort_artifacts else make_graphs(brain)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads or torch.get_num_threads()
        opts.inter_op_num_threads = 1
        opts.log_severity_level = 3
        self.sessions = {n: ort.InferenceSession(g, opts, providers=["CPUExecutionProvider"]) for n, g in graphs.items()}
        self.params = dict(brain.named_parameters())
        self._param_inputs = {n: [i.name for i in s.get_inputs() if i.name in self.params] for n, s in self.sessions.items()}
        self._data_inputs = {n: [i.name for i in s.get_inputs() if i.name not in self.params] for n, s in self.sessions.items()}
        # which graph gives each parameter's gradient, and at which output
        self._grad_of: dict[str, tuple[str, int]] = {}
        for n, s in self.sessions.items():
            for k, o in enumerate(s.get_outputs()):
                if n.startswith("vjp_") and o.name.endswith("_grad") and o.name[:-5] in self.params:
                    self._grad_of[o.name[:-5]] = (n, k)
        missing = set(self.params) - set(self._grad_of)
        if missing:
            raise ArtifactsError(f"model.ort_artifacts = {cfg.ort_artifacts!r}: the graphs give no gradient for "
                                 f"{sorted(missing)[:4]}")
        self._members: dict[str, list[str]] = {}  # the parameters each graph gives gradients for
        for n, (g, _) in self._grad_of.items():
            self._members.setdefault(g, []).append(n)
        self._name_of = {id(p): n for n, p in self.params.items()}
        r = brain.regions
        # each tower's slice of the output's cotangent: out = [actions | loss | lr | thought], p = [actions | thought]
        a, lr, th = r.actions, r.actions + r.loss, r.actions + r.loss + r.lr
        self._cot = {"vjp_discomfort": lambda c: c[:, a:lr],
                     "vjp_policy": lambda c: np.concatenate([c[:, :a], c[:, th:]], 1),
                     "vjp_lr": lambda c: c[:, lr:th]}
        self._last = None  # (output leaf, data inputs, h, hd) of the last forward: what grad() differentiates
        self._ptrs: list[int] = []
        self._np: dict[str, np.ndarray] = {}

    def _views(self) -> dict[str, np.ndarray]:
        """The parameters as numpy views of the Brain's tensors. Updates, rollbacks and loads write into the same
        storage; should anything ever give a parameter new storage, the views are made again."""
        ptrs = [p.data_ptr() for p in self.params.values()]
        if ptrs != self._ptrs:
            self._ptrs = ptrs
            self._np = {k: p.detach().numpy() for k, p in self.params.items()}
        return self._np

    def _run(self, graph: str, data: dict, outputs=None) -> list[np.ndarray]:
        feed = {k: data[k] for k in self._data_inputs[graph]}
        views = self._np
        for k in self._param_inputs[graph]:
            feed[k] = views[k]
        return self.sessions[graph].run(outputs, feed)

    def _data(self, eyes, body, thought) -> dict:
        self._views()  # once per pass: every graph run until the next one reads these views
        with torch.no_grad():
            e, t = self.brain.prepare(eyes, thought)
        return {"eyes_in": np.ascontiguousarray(e.numpy(), dtype=np.float32),
                "body_in": np.ascontiguousarray(body.detach().numpy(), dtype=np.float32),
                "thought_in": np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)}

    def forward(self, eyes: torch.Tensor, body: torch.Tensor, thought: torch.Tensor) -> torch.Tensor:
        data = self._data(eyes, body, thought)
        out, h, hd = self._run("forward", data)
        leaf = torch.from_numpy(out).requires_grad_()
        self._last = (leaf, data, h, hd)
        return leaf

    def discomfort_estimate(self, eyes: torch.Tensor, body: torch.Tensor, thought: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self._run("discomfort", self._data(eyes, body, thought))[0])

    def grad(self, outputs, params: list[torch.Tensor], retain_graph: bool = False):
        if self._last is None:
            raise RuntimeError("OrtNet.grad before any forward()")
        leaf, data, h, hd = self._last  # the weights' views were checked by that forward
        # the output-level graph is a few slices and softmaxes: kept, so the rule can ask for several gradients
        (cot,) = torch.autograd.grad(outputs, [leaf], retain_graph=True, allow_unused=True)
        if cot is None:
            return [None] * len(params)
        cot = cot.numpy()
        names = [self._name_of[id(p)] for p in params]
        grads: dict[str, torch.Tensor] = {}
        for graph in sorted({self._grad_of[n][0] for n in names}):
            c = np.ascontiguousarray(self._cot[graph](cot), dtype=np.float32)
            members = self._members[graph]
            if not c.any():
                grads.update({n: torch.zeros_like(self.params[n]) for n in members})
                continue
            res = self._run(graph, dict(data, hd_in=hd, h_in=h, cot_in=c))
            grads.update({n: torch.from_numpy(res[self._grad_of[n][1]]) for n in members})
        return [grads[n] for n in names]
