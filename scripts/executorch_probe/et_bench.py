"""ExecuTorch training runtime: per-tower VJP forward_backward timing, write-back cost, gradient parity.

usage: /tmp/etv/bin/python et_bench.py [--n 500] [--suffix ""|_decomp]
"""
import argparse
import os
import sys
import time
import warnings

warnings.simplefilter("ignore")
import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import example_inputs, make_brain, make_vjp  # noqa: E402
from measure import med_ms  # noqa: E402

from executorch.extension.pybindings import portable_lib  # noqa: E402
from executorch.extension.training import _load_for_executorch_for_training  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=500)
ap.add_argument("--suffix", default="")
args = ap.parse_args()

torch.set_num_threads(1)
print("ET threadpool threads before:", portable_lib._threadpool_get_thread_count())
portable_lib._unsafe_reset_threadpool(1)
print("ET threadpool threads after:", portable_lib._threadpool_get_thread_count())


def max_rel(a, b):
    """max |a-b| / max(|b|) per tensor, worst over tensors (scale-aware); also elementwise rel with floor."""
    worst_t, worst_e = 0.0, 0.0
    for k in b:
        d = (a[k] - b[k]).abs()
        worst_t = max(worst_t, (d.max() / b[k].abs().max().clamp_min(1e-12)).item())
        worst_e = max(worst_e, (d / (b[k].abs() + 1e-6 * b[k].abs().max() + 1e-12)).max().item())
    return worst_t, worst_e


brain = make_brain()
params = dict(brain.named_parameters())
for which in ("discomfort", "policy"):
    path = f"/tmp/et_work/pte/{which}{args.suffix}.pte"
    t0 = time.perf_counter()
    tm = _load_for_executorch_for_training(path)
    load_s = time.perf_counter() - t0
    m = make_vjp(brain, which)
    ex = example_inputs(brain, which)
    out = tm.forward_backward("forward", ex)
    et_params, et_grads = tm.named_parameters(), tm.named_gradients()
    names = list(et_params)
    assert set(names) == {n for n, _ in m.named_parameters()}, "fqn mismatch"

    def torch_grads(inputs):
        loss = m(*inputs)
        ps = [p for _, p in m.named_parameters()]
        gs = torch.autograd.grad(loss, ps)
        return loss.detach(), {n: g for (n, _), g in zip(m.named_parameters(), gs)}

    tl, tg = torch_grads(ex)
    et_g = {k: v.clone() for k, v in tm.named_gradients().items()}
    print(f"\n== {which}: {len(names)} param tensors, {sum(p.numel() for p in et_params.values())} floats, load {load_s*1e3:.1f} ms")
    print(f"loss ET {out[0].item():.6g} torch {tl.item():.6g}")
    print("grad parity (max|d|/max|g| per tensor, elementwise rel):", max_rel(et_g, tg))

    # aliasing check: do named_parameters() alias the program's weights? write new values, rerun, compare to torch
    with torch.no_grad():
        for n, p in m.named_parameters():
            p.add_(torch.randn_like(p) * 0.01 * (p.abs().mean() + 1e-3))  # a "learning step" on the brain
    mparams = dict(m.named_parameters())

    def write_back():
        for n, t in et_params.items():
            t.copy_(mparams[n])

    write_back()
    tm.forward_backward("forward", ex)
    et_params2 = tm.named_parameters()
    print("named_parameters() same objects after rerun:", all(et_params2[k] is et_params[k] for k in names))
    ex2 = example_inputs(brain, which, seed=1)
    out2 = tm.forward_backward("forward", ex2)
    tl2, tg2 = torch_grads(ex2)
    et_g2 = {k: v.clone() for k, v in tm.named_gradients().items()}
    print(f"after write-back: loss ET {out2[0].item():.6g} torch {tl2.item():.6g}; grad parity:", max_rel(et_g2, tg2))

    # timings
    fb = med_ms(lambda: tm.forward_backward("forward", ex), args.n)
    raw = med_ms(lambda: tm.model.run_method("forward", ex, clone_outputs=False), args.n)
    wb = med_ms(write_back, args.n)

    def step():
        write_back()
        tm.forward_backward("forward", ex)
        return tm.named_gradients()

    st = med_ms(step, args.n)
    # alternative zero-copy: point the brain's parameters at ET's memory (p.data = et tensor)
    print(f"ET forward_backward            median {fb[0]:.3f} ms (p90 {fb[1]:.3f})")
    print(f"ET raw run_method (no clones)  median {raw[0]:.3f} ms (p90 {raw[1]:.3f})")
    print(f"ET param write-back copy_ x{len(names)}  median {wb[0]:.3f} ms (p90 {wb[1]:.3f})")
    print(f"ET write-back + fwd_bwd        median {st[0]:.3f} ms (p90 {st[1]:.3f})")
