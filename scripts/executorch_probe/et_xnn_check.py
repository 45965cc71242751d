"""XNNPACK-lowered training .pte: are gradients right, and do parameter updates reach the delegated weights?"""
import sys, os, warnings, statistics, time
warnings.simplefilter("ignore")
import torch
sys.path.insert(0, os.path.dirname(__file__))
from common import *
from executorch.extension.pybindings import portable_lib as pl
from executorch.extension.training import _load_for_executorch_for_training
pl._unsafe_reset_threadpool(1); torch.set_num_threads(1)
b = make_brain()
for which in ("discomfort", "policy"):
    m = make_vjp(b, which); ex = example_inputs(b, which)
    tm = _load_for_executorch_for_training(f"pte/{which}_xnn.pte")
    full = tm.model.run_method("forward", ex, clone_outputs=False)
    gi = tm.model.run_method("__et_training_gradients_index_forward", ())[0]
    pi = tm.model.run_method("__et_training_parameters_index_forward", ())[0]
    fqn = tm.model.run_method("__et_training_fqn_forward", ())
    print(which, "outputs", len(full), "grad idx", gi, "param idx", pi, "fqn", len(fqn))
    mp = dict(m.named_parameters())
    print("  param outputs shapes vs fqn:", [(f.split('.')[-2] + '.' + f.split('.')[-1], tuple(mp[f].shape), tuple(t.shape)) for f, t in zip(fqn, full[pi:]) if tuple(mp[f].shape) != tuple(t.shape)][:6])
    ps = [p for _, p in m.named_parameters()]
    tg = torch.autograd.grad(m(*ex), ps)
    eg = full[gi:pi]
    print("  grad parity at initial weights:", max(((a - t).abs().max() / t.abs().max().clamp_min(1e-12)).item() for a, t in zip(eg, tg)))
    # perturb every weight in torch; write back where ET exposes a parameter tensor of the same name/shape
    with torch.no_grad():
        for p in ps: p.mul_(1.5)
    written = 0
    for f, t in zip(fqn, full[pi:]):
        if tuple(t.shape) == tuple(mp[f].shape):
            t.copy_(mp[f]); written += 1
    full = tm.model.run_method("forward", ex, clone_outputs=False)
    tg = torch.autograd.grad(m(*ex), ps)
    print(f"  after x1.5 weights ({written} tensors written back): loss ET {full[0].item():.5g} torch {m(*ex).item():.5g}; grad parity",
          max(((a - t).abs().max() / t.abs().max().clamp_min(1e-12)).item() for a, t in zip(full[gi:pi], tg)))
    ts = []
    for i in range(400):
        t0 = time.perf_counter(); tm.model.run_method("forward", ex, clone_outputs=False); ts.append(time.perf_counter() - t0)
    print(f"  xnn raw run_method median {statistics.median(ts[50:])*1e3:.3f} ms")
    with torch.no_grad():
        for p in ps: p.div_(1.5)
