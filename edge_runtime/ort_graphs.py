"""The ONNX graphs the ort backend runs (edge_runtime/ort_net.py), made from the torch model.

    forward          eyes_in, body_in, thought_in            -> out, h, hd
    discomfort       eyes_in, body_in, thought_in            -> loss                 (the TD target's forward)
    vjp_discomfort   eyes_in, body_in, thought_in, cot_in    -> <param>_grad          d <loss, cot> / d theta_D
    vjp_policy       eyes_in, body_in, thought_in, hd_in, cot_in -> <param>_grad      d <p, cot> / d theta_pi
    vjp_lr           h_in, cot_in                            -> <param>_grad          d <lr, cot> / d theta_lr

`eyes_in` are the eyes as the towers read them (scaled, standardised by the brain's eye statistics: those
statistics change while learning, so they stay outside the graphs). `p` is the policy tower's output layer
(action logits, then the thought), `out` the brain's one output tensor, h and hd the two towers' hidden features.
Every parameter is a graph input named as in `Brain.named_parameters()`, so one set of weights (the Brain's) feeds
every graph and nothing has to be copied into ONNX Runtime when the rule changes them.

The vector-Jacobian graphs are the forward graph of one tower with `vjp = sum(part * cot)` as its output, and the
gradient graph that onnxruntime-training's GradientGraphBuilder builds behind it (the training package's C++
builder, the step its `generate_artifacts` runs before adding optimizer and accumulation nodes that we do not use).
Three things the builder needs (REFERENCE_NOTES; found here):
- HardSwish and HardSigmoid have no gradient builder: exported as x * clip(x + 3, 0, 6) / 6.
- Neither has InstanceNormalization (GroupNorm(1, C) exports as it), and the builder asks LayerNormalization for
  its saved mean: both norms are exported as their arithmetic (ReduceMean, Sub, Mul, Sqrt, Div), same math.
- A graph input or a tensor without gradient that feeds two Concat nodes gets two `<name>_grad` definitions and
  the builder fails: the eyes, body and thought are asked for their gradients too (unused; a few hundred floats).
"""
from __future__ import annotations

import contextlib
import json
import warnings
from pathlib import Path

import torch
import torch.nn as nn
import torch.nn.functional as F

from .config import ConfigError
from .model import Brain

FORMAT = "edge-runtime-ort-graphs/1"
OPSET = 17
NAMES = ("forward", "discomfort", "vjp_discomfort", "vjp_policy", "vjp_lr")


class ArtifactsError(ConfigError):
    """Training graphs that do not belong to this brain, or are not there."""


def _layer_norm(x, shape, weight=None, bias=None, eps=1e-5):
    dims = tuple(range(x.dim() - len(shape), x.dim()))
    d = x - x.mean(dims, keepdim=True)
    y = d / torch.sqrt((d * d).mean(dims, keepdim=True) + eps)
    if weight is not None:
        y = y * weight
    return y + bias if bias is not None else y


def _group_norm(x, groups, weight=None, bias=None, eps=1e-5):
    if groups != 1 or weight is not None or bias is not None:
        raise NotImplementedError("ort graphs: only GroupNorm(1, C) without affine (model.norm = layer)")
    return _layer_norm(x, tuple(x.shape[1:]), eps=eps)


@contextlib.contextmanager
def _differentiable_ops():
    """The model's ops as ONNX ops the gradient builder knows (see the module docstring)."""
    saved = F.hardswish, F.hardsigmoid, F.group_norm, F.layer_norm
    F.hardswish = lambda x, inplace=False: x * torch.clamp(x + 3.0, 0.0, 6.0) / 6.0
    F.hardsigmoid = lambda x, inplace=False: torch.clamp(x + 3.0, 0.0, 6.0) / 6.0
    F.group_norm, F.layer_norm = _group_norm, _layer_norm
    try:
        yield
    finally:
        F.hardswish, F.hardsigmoid, F.group_norm, F.layer_norm = saved


class _Graph(nn.Module):
    """One graph's function of the brain; the brain is registered as `b`, so parameter names are `b.<name>`."""

    def __init__(self, brain: Brain, fn):
        super().__init__()
        self.b = brain
        self.fn = fn

    def forward(self, *xs):
        return self.fn(self.b, *xs)


def _graph_specs(brain: Brain):
    """name -> (inputs, outputs, function, which parameters get gradients)."""
    eyes = ["eyes_in", "body_in", "thought_in"]
    return {
        "forward": (eyes, ["out", "h", "hd"], lambda b, e, x, t: b.split_forward(e, x, t), None),
        "discomfort": (eyes, ["loss"], lambda b, e, x, t: b.discomfort(e, x, t), None),
        "vjp_discomfort": (eyes + ["cot_in"], ["vjp"], lambda b, e, x, t, c: (b.discomfort(e, x, t) * c).sum(),
                           "discomfort."),
        "vjp_policy": (eyes + ["hd_in", "cot_in"], ["vjp"],
                       lambda b, e, x, t, hd, c: (b.policy_out(b.policy.hidden(e, x, t), hd) * c).sum(), "policy."),
        "vjp_lr": (["h_in", "cot_in"], ["vjp"], lambda b, h, c: (b.lr_head(h) * c).sum(), "lr_head."),
    }


def _examples(brain: Brain) -> dict[str, torch.Tensor]:
    r, cfg = brain.regions, brain.cfg
    return {"eyes_in": torch.zeros(1, 6, *cfg.input_hw), "body_in": torch.zeros(1, brain.body_dim),
            "thought_in": torch.zeros(1, cfg.thought_size), "hd_in": torch.zeros(1, brain.discomfort.width),
            "h_in": torch.zeros(1, brain.policy.width), "cot_in:vjp_discomfort": torch.zeros(1, r.loss),
            "cot_in:vjp_policy": torch.zeros(1, r.actions + r.thought), "cot_in:vjp_lr": torch.zeros(1, r.lr)}


def _export(brain: Brain, name: str, spec):
    import io

    import onnx

    inputs, outputs, fn, _ = spec
    ex = _examples(brain)
    args = tuple(ex.get(f"{i}:{name}", ex.get(i)) for i in inputs)
    buf = io.BytesIO()
    ops = _differentiable_ops() if name.startswith("vjp_") else contextlib.nullcontext()
    with ops, warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the TorchScript exporter's deprecation and tracer notes
        torch.onnx.export(_Graph(brain, fn), args, buf, input_names=inputs, output_names=outputs, opset_version=OPSET,
                          do_constant_folding=False, training=torch.onnx.TrainingMode.TRAINING, dynamo=False)
    model = onnx.load_from_string(buf.getvalue())
    # every parameter becomes an input named as the Brain names it
    rename = {i.name: i.name[2:] for i in model.graph.initializer if i.name.startswith("b.")}
    for init in model.graph.initializer:
        if init.name in rename:
            model.graph.input.append(onnx.helper.make_tensor_value_info(rename[init.name], init.data_type, init.dims))
    keep = [i for i in model.graph.initializer if i.name not in rename]
    del model.graph.initializer[:]
    model.graph.initializer.extend(keep)
    for node in model.graph.node:
        node.input[:] = [rename.get(x, x) for x in node.input]
    return model


def _gradient_graph(model, prefix: str):
    import onnx
    from onnxruntime import SessionOptions
    from onnxruntime.capi._pybind_state import GradientGraphBuilder, get_optimized_model

    params = {i.name for i in model.graph.input if i.name.startswith(prefix)}
    # the Concat builder's duplicate-gradient bug (module docstring): the data inputs get gradients too
    wanted = params | {i.name for i in model.graph.input if i.name in ("eyes_in", "body_in", "thought_in")}
    opts = SessionOptions()
    opts.log_severity_level = 3
    optimized = get_optimized_model(model.SerializeToString(), wanted, opts)
    builder = GradientGraphBuilder(optimized, {"vjp"}, wanted, "vjp", opts)
    builder.build()
    return onnx.load_from_string(builder.get_model())


def make_graphs(brain: Brain) -> dict[str, bytes]:
    """Every graph of the module docstring, serialised, for this brain's architecture (weights are inputs)."""
    if brain.towers != "split":
        raise ArtifactsError("ort graphs: the brain must have split towers")
    out = {}
    for name, spec in _graph_specs(brain).items():
        model = _export(brain, name, spec)
        if spec[3] is not None:
            model = _gradient_graph(model, spec[3])
        out[name] = model.SerializeToString()
    return out


def architecture_sha256(brain: Brain) -> str:
    """What the graphs depend on: the body's spec and the model's architecture, hashed as an exported brain's
    `config_sha256` is (the graphs are always of split towers: make_graphs refuses others)."""
    from .config import model_architecture
    from .onnx_policy import config_sha256

    return config_sha256(brain.spec.to_dict(), model_architecture(brain.cfg))


def write_graphs(brain: Brain, out_dir: str | Path) -> dict:
    """`edge-runtime export --training DIR`: the graphs as files plus manifest.json (format, architecture hash)."""
    import onnxruntime

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    graphs = make_graphs(brain)
    for name, data in graphs.items():
        tmp = out_dir / f"{name}.onnx.tmp"
        tmp.write_bytes(data)
        tmp.replace(out_dir / f"{name}.onnx")
    manifest = {"format": FORMAT, "architecture_sha256": architecture_sha256(brain), "graphs": list(graphs),
                "opset": OPSET, "onnxruntime": onnxruntime.__version__, "params": sum(p.numel() for p in brain.parameters())}
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return {"dir": str(out_dir), **manifest, "bytes": {n: len(d) for n, d in graphs.items()}}


def load_graphs(path: str | Path, brain: Brain) -> dict[str, bytes]:
    """Graphs written by write_graphs, checked to belong to this brain's architecture."""
    d = Path(path)
    try:
        manifest = json.loads((d / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise ArtifactsError(f"model.ort_artifacts = {str(path)!r}: no readable manifest.json ({e})") from None
    if manifest.get("format") != FORMAT:
        raise ArtifactsError(f"model.ort_artifacts = {str(path)!r}: format {manifest.get('format')!r}, expected {FORMAT!r}")
    if manifest.get("architecture_sha256") != architecture_sha256(brain):
        raise ArtifactsError(f"model.ort_artifacts = {str(path)!r}: made for another body or model config "
                             "(architecture_sha256 differs); make them again with `edge-runtime export --training DIR`")
    out = {}
    for name in NAMES:
        try:
            out[name] = (d / f"{name}.onnx").read_bytes()
        except OSError as e:
            raise ArtifactsError(f"model.ort_artifacts = {str(path)!r}: {name}.onnx missing ({e})") from None
    return out
