"""Fresh process: ExecuTorch per-step update (both towers' VJP forward_backward + in-place parameter update).
usage: /tmp/etv/bin/python rss_et.py [suffix]   (suffix _fold = permute-folded .pte)"""
import sys, time
from measure import hwm, rss_inputs
suffix = sys.argv[1] if len(sys.argv) > 1 else "_fold"
print("start VmHWM/VmRSS MB", hwm())
import torch  # the pybindings link libtorch.so and hand back torch tensors: torch is required at run time
print("after import torch", hwm())
from executorch.extension.pybindings import portable_lib as pl
from executorch.extension.training import _load_for_executorch_for_training
pl._unsafe_reset_threadpool(1); torch.set_num_threads(1)
print("after import executorch", hwm())
tms = {w: _load_for_executorch_for_training(f"/tmp/et_work/pte/{w}{suffix}.pte") for w in ("discomfort", "policy")}
inputs = rss_inputs()
for w, tm in tms.items():
    tm.forward_backward("forward", inputs[w])
print("after load + first step", hwm())
t0 = time.perf_counter()
N = 500
for i in range(N):
    for w, tm in tms.items():
        tm.forward_backward("forward", inputs[w])
        ps, gs = tm.named_parameters(), tm.named_gradients()
        with torch.no_grad():
            for k, p in ps.items():
                p.add_(gs[k], alpha=-1e-4)  # the rule's in-place update, straight into ExecuTorch's weights
dt = (time.perf_counter() - t0) / N
print(f"per step (both towers + update) {dt*1e3:.3f} ms; final VmHWM/VmRSS MB", hwm())
print("torch imported:", "torch" in sys.modules, "| edge_runtime imported:", "edge_runtime" in sys.modules)
