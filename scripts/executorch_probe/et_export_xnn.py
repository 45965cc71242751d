"""Try: joint fwd+bwd graph lowered with the XNNPACK partitioner (forward convs/linears delegated).
usage: /tmp/etv/bin/python et_export_xnn.py  -> pte/<tower>_xnn.pte"""
import os, sys, time, warnings, collections
warnings.simplefilter("ignore")
import torch
sys.path.insert(0, os.path.dirname(__file__))
from common import example_inputs, make_brain, make_vjp
from torch.export import export
from torch.export.experimental import _export_forward_backward
from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge_transform_and_lower
from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
import importlib.util
spec = importlib.util.spec_from_file_location("etx", os.path.join(os.path.dirname(__file__), "et_export.py"))
brain = make_brain()
for which in sys.argv[1:] or ["discomfort", "policy"]:
    t0 = time.perf_counter()
    ep = _export_forward_backward(export(make_vjp(brain, which), example_inputs(brain, which)))
    edge = to_edge_transform_and_lower(ep, partitioner=[XnnpackPartitioner()],
                                       compile_config=EdgeCompileConfig(_check_ir_validity=False))
    gm = edge.exported_program().graph_module
    print(which, "delegated calls:", sum(1 for n in gm.graph.nodes if n.op == "call_function" and "executorch_call_delegate" in str(n.target)))
    ops = collections.Counter(str(n.target).split(".")[-2] if "." in str(n.target) else str(n.target) for n in gm.graph.nodes if n.op == "call_function")
    print(which, "remaining ops:", dict(ops))
    et = edge.to_executorch(config=ExecutorchBackendConfig())
    path = f"/tmp/et_work/pte/{which}_xnn.pte"
    open(path, "wb").write(et.buffer)
    print(f"{which}: total {time.perf_counter()-t0:.2f}s -> {path}")
