"""Export each tower's VJP module to an ExecuTorch training .pte (joint forward+backward graph).

usage: /tmp/etv/bin/python et_export.py [--decomp] [--towers discomfort,policy]
writes /tmp/et_work/pte/<tower>[_decomp].pte and prints timings and the op set.
"""
import argparse
import collections
import contextlib
import os
import sys
import time
import warnings

warnings.simplefilter("ignore")
import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import decomposed_ops, example_inputs, make_brain, make_vjp  # noqa: E402
from torch.export import export  # noqa: E402
from torch.export.experimental import _export_forward_backward  # noqa: E402

from executorch.exir import EdgeCompileConfig, ExecutorchBackendConfig, to_edge  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--decomp", action="store_true")
ap.add_argument("--towers", default="discomfort,policy")
ap.add_argument("--strict", action="store_true")
ap.add_argument("--no-ir-check", action="store_true")
ap.add_argument("--fold-permutes", action="store_true", help="cancel permute(permute(x)) pairs in the joint graph")
ap.add_argument("--tag", default="")
ap.add_argument("--linear-mulsum", action="store_true", help="export Linear as (x[:,None,:]*W).sum(-1)+b: no weight transpose")
args = ap.parse_args()



def fold_permutes(ep):
    """permute(permute(x, p), q) with p∘q = identity -> x (the joint graph transposes linear weights twice)."""
    g, n_fold = ep.graph, 0
    for n in list(g.nodes):
        if n.op == "call_function" and n.target == torch.ops.aten.permute.default:
            src = n.args[0]
            if isinstance(src, torch.fx.Node) and src.op == "call_function" and src.target == torch.ops.aten.permute.default:
                p, q = list(src.args[1]), list(n.args[1])
                if [p[i] for i in q] == list(range(len(p))):
                    n.replace_all_uses_with(src.args[0])
                    g.erase_node(n)
                    n_fold += 1
    g.eliminate_dead_code()
    ep.graph_module.recompile()
    return n_fold


brain = make_brain()
os.makedirs("/tmp/et_work/pte", exist_ok=True)
for which in args.towers.split(","):
    m = make_vjp(brain, which)
    ex = example_inputs(brain, which)
    t0 = time.perf_counter()
    ctx = decomposed_ops() if args.decomp else contextlib.nullcontext()
    import torch.nn.functional as F
    saved_linear = F.linear
    if args.linear_mulsum:
        F.linear = lambda x, w, b=None: (x.unsqueeze(-2) * w).sum(-1) + (b if b is not None else 0)
    try:
        with ctx:
            ep = export(m, ex, strict=args.strict)
    finally:
        F.linear = saved_linear
    t1 = time.perf_counter()
    ep = _export_forward_backward(ep)
    if args.fold_permutes:
        print(which, "permute pairs folded:", fold_permutes(ep))
    t2 = time.perf_counter()
    ops = collections.Counter(str(n.target) for n in ep.graph.nodes if n.op == "call_function")
    print(which, "joint-graph ops:", dict(sorted(ops.items())))
    edge = to_edge(ep, compile_config=EdgeCompileConfig(_check_ir_validity=not args.no_ir_check))
    t3 = time.perf_counter()
    et = edge.to_executorch(config=ExecutorchBackendConfig())
    t4 = time.perf_counter()
    path = f"/tmp/et_work/pte/{which}{'_decomp' if args.decomp else ''}{args.tag}.pte"
    with open(path, "wb") as f:
        et.write_to_file(f)
    t5 = time.perf_counter()
    print(f"{which}: export {t1-t0:.2f}s fwd_bwd {t2-t1:.2f}s to_edge {t3-t2:.2f}s to_executorch {t4-t3:.2f}s "
          f"write {t5-t4:.2f}s total {t5-t0:.2f}s -> {path} ({os.path.getsize(path)/1e6:.2f} MB)")
