"""Print the joint graph's permute nodes with shapes and their producers/users (diagnostic)."""
import os, sys, warnings
warnings.simplefilter("ignore")
import torch
sys.path.insert(0, os.path.dirname(__file__))
from common import example_inputs, make_brain, make_vjp
from torch.export import export
from torch.export.experimental import _export_forward_backward
brain = make_brain()
which = sys.argv[1] if len(sys.argv) > 1 else "discomfort"
ep = _export_forward_backward(export(make_vjp(brain, which), example_inputs(brain, which)))
for n in ep.graph.nodes:
    if n.op == "call_function" and "permute" in str(n.target):
        src = n.args[0]
        print(n.name, n.args[1], tuple(n.meta["val"].shape), "<-", src.name, src.target if src.op=="call_function" else src.op,
              "->", [u.target for u in n.users])
