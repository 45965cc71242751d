"""Torch values for the C++ runner's check line (same sin-pattern inputs, initial weights)."""
import os, sys, math, warnings
warnings.simplefilter("ignore")
import torch
sys.path.insert(0, os.path.dirname(__file__))
from common import make_brain, make_vjp
def pat(shape, k):
    n = math.prod(shape)
    return torch.sin(0.37 * torch.arange(n, dtype=torch.float32) + k).reshape(shape)
b = make_brain()
for w, shapes in (("discomfort", [(1, 6, 24, 32), (1, 10), (1, 112), (1, 8)]),
                  ("policy", [(1, 6, 24, 32), (1, 10), (1, 112), (1, 330), (1, 118)])):
    m = make_vjp(b, w); x = [pat(s, k) for k, s in enumerate(shapes)]
    loss = m(*x); gs = torch.autograd.grad(loss, list(m.parameters()))
    print(f"{w}: loss {loss.item():.7g} sum|g| {sum(g.abs().sum().item() for g in gs):.7g}")
