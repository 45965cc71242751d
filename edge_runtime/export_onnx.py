"""`edge-runtime export RUN_DIR|WEIGHTS --out brain.onnx`: the frozen brain as one ONNX model.

Inputs (batch 1):
    left, right   uint8 [1, H, W, 3]   each eye, RGB, at the model's input size (model.input_hw); resizing from
                                       the body's eye size stays outside (OpenCV INTER_AREA, as the learner's)
    body          float32 [1, B]       hp, energy, then the touch channels
    thought_in    float32 [1, T]       the previous step's tanh(thought), zeros at the start of a life
Outputs, every region of the brain's one output tensor, named:
    actions       float32 [1, A]       the action logits, head after head (metadata `action_heads`)
    loss          float32 [1, L]       the self-generated loss region
    lr            float32 [1, R]       the self-generated learning-rate region
    thought       float32 [1, T]       the thought region (raw: the next input is tanh of it)

Inside the graph: the eyes scaled to [-1, 1] as the learner scales them, and standardised by the eye
statistics the brain had when it was exported (constants), then the network. Metadata (ONNX
metadata_props): `body_spec` (JSON), `action_heads` (JSON, in order), `model_config` (JSON), `rule`,
`steps`, `towers`, `config_sha256` (of the model config and body spec, the pair a brain is matched by),
`format` = "edge-runtime-brain/1".

(ONNX names are unique within a graph, so the thought goes in as `thought_in` and comes out as `thought`.)
The exporter is PyTorch's TorchScript-based one (`dynamo=False`), opset 17, which needs only the `onnx`
package; HardSwish and HardSigmoid are ONNX operators at this opset.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn as nn

from .body import BodySpec
from .evaluate import PolicyError, load_brain_policy
from .model import Brain
from .onnx_policy import FORMAT, config_sha256

OPSET = 17
OUTPUTS = ("actions", "loss", "lr", "thought")


class _Frozen(nn.Module):
    """The brain with the learner's eye scaling in front (uint8 eyes in) and its regions split behind. The brain's
    own forward runs unchanged: its eye statistics are buffers, so they go into the graph as constants."""

    def __init__(self, brain: Brain):
        super().__init__()
        self.brain = brain

    def forward(self, left, right, body, thought):
        x = torch.cat([left, right], 3).to(torch.float32)  # [1, H, W, 6], left RGB then right RGB
        x = x.permute(0, 3, 1, 2) * (2.0 / 255.0) - 1.0  # as edge_runtime/senses.py scales them
        r = self.brain.split(self.brain(x, body, thought))
        return tuple(r[k] for k in OUTPUTS)


def read_brain(policy_path: str | Path):
    """(the saved record, its BodySpec, the frozen BrainPolicy) of a run directory, weights.pt or checkpoint."""
    from .evaluate import _read_frozen

    ck = _read_frozen(policy_path)
    s = ck["spec"]
    spec = BodySpec(eye_shape=tuple(s["eye_shape"]), touch_channels=int(s["touch_channels"]),
                    action_heads=dict(s["action_heads"]), control_hz=float(s.get("control_hz", 10.0)),
                    name=str(s.get("name", "body")))
    return ck, spec, load_brain_policy(policy_path, spec)


def export(policy_path: str | Path, out: str | Path) -> dict:
    """Write the brain at `policy_path` (run dir, weights.pt, or a checkpoint) as ONNX to `out`."""
    import onnx

    ck, spec, pol = read_brain(policy_path)
    brain = pol.rule.brain.eval()
    mcfg = pol.model_cfg
    h, w = mcfg.input_hw
    frozen = _Frozen(brain).eval()
    inputs = (torch.zeros(1, h, w, 3, dtype=torch.uint8), torch.zeros(1, brain.body_dim, dtype=torch.float32),
              torch.zeros(1, mcfg.thought_size, dtype=torch.float32))
    args = (inputs[0], inputs[0].clone(), inputs[1], inputs[2])
    out = Path(out)
    tmp = out.with_name(out.name + ".tmp")
    import warnings

    with torch.no_grad(), warnings.catch_warnings():
        # the tracer's notes about Python branches (shapes, the eye statistics' count): both are fixed in a
        # frozen brain (batch 1, one body, no more observing)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(frozen, args, str(tmp), dynamo=False, opset_version=OPSET,
                          input_names=["left", "right", "body", "thought_in"], output_names=list(OUTPUTS))
    model = onnx.load(str(tmp))
    from .config import model_architecture

    mc = model_architecture(mcfg)  # how it learned is not what it is: an exported brain acts the same
    meta = {"format": FORMAT, "body_spec": json.dumps(spec.to_dict()), "action_heads": json.dumps(list(spec.action_heads.items())),
            "model_config": json.dumps(mc), "rule": str(ck.get("rule", "")), "steps": str(ck.get("steps", "")),
            "towers": brain.towers, "config_sha256": config_sha256(spec.to_dict(), mc)}
    for k, v in meta.items():
        p = model.metadata_props.add()
        p.key, p.value = k, v
    onnx.checker.check_model(model)
    onnx.save(model, str(tmp))
    tmp.replace(out)
    return {"out": str(out), "bytes": out.stat().st_size, "opset": OPSET, "inputs": ["left", "right", "body", "thought_in"],
            "outputs": list(OUTPUTS), "params": sum(p.numel() for p in brain.parameters()), **{k: meta[k] for k in ("rule", "towers", "config_sha256")}}


__all__ = ["export", "config_sha256", "FORMAT", "OUTPUTS", "PolicyError"]
