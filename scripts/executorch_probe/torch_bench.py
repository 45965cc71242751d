"""Torch eager: per-tower VJP forward + torch.autograd.grad, single thread, batch 1.

usage: python torch_bench.py [--n 500]
"""
import argparse
import os
import sys
import warnings

warnings.simplefilter("ignore")
import torch

sys.path.insert(0, os.path.dirname(__file__))
from common import example_inputs, make_brain, make_vjp  # noqa: E402
from measure import med_ms  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--n", type=int, default=500)
args = ap.parse_args()
torch.set_num_threads(1)


brain = make_brain()
for which in ("discomfort", "policy"):
    m = make_vjp(brain, which)
    ex = example_inputs(brain, which)
    ps = list(m.parameters())

    def step():
        return torch.autograd.grad(m(*ex), ps)

    def fwd():
        with torch.no_grad():
            return m(*ex)

    r = med_ms(step, args.n)
    f = med_ms(fwd, args.n)
    print(f"{which}: torch eager VJP fwd+grad median {r[0]:.3f} ms (p90 {r[1]:.3f}); no_grad fwd {f[0]:.3f} ms")

# whole brain forward + backward of every parameter (the number quoted in the brief, ~4.0 ms)
e, b, t = example_inputs(brain, "discomfort")[:3]
allp = list(brain.parameters())


def whole():
    out, h, hd = brain.split_forward(e, b, t)
    return torch.autograd.grad(out.sum(), allp, allow_unused=True)


def whole_fwd():
    with torch.no_grad():
        return brain.split_forward(e, b, t)


print(f"whole brain split_forward+grad median {med_ms(whole, args.n)[0]:.3f} ms; no_grad forward {med_ms(whole_fwd, args.n)[0]:.3f} ms")
