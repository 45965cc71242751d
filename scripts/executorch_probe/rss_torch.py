"""Fresh process: torch eager per-step update (both towers' VJP fwd + autograd.grad + in-place update).
usage: python rss_torch.py"""
import sys, os, time
from measure import hwm
print("start VmHWM/VmRSS MB", hwm())
import torch
torch.set_num_threads(1)
print("after import torch", hwm())
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import example_inputs, make_brain, make_vjp
brain = make_brain()
print("after building brain (edge_runtime + sim_bridge imported)", hwm())
mods = {w: make_vjp(brain, w) for w in ("discomfort", "policy")}
inputs = {w: example_inputs(brain, w) for w in mods}
params = {w: list(m.parameters()) for w, m in mods.items()}
def step():
    for w, m in mods.items():
        gs = torch.autograd.grad(m(*inputs[w]), params[w])
        with torch.no_grad():
            for p, g in zip(params[w], gs):
                p.add_(g, alpha=-1e-4)
step()
print("after first step", hwm())
N = 500
t0 = time.perf_counter()
for i in range(N):
    step()
print(f"per step (both towers + update) {(time.perf_counter()-t0)/N*1e3:.3f} ms; final VmHWM/VmRSS MB", hwm())
