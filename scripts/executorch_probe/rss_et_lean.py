"""Fresh process, lean: ExecuTorch runtime without the exporter. `executorch.exir` (imported only for a warnings
decorator by portable_lib / the training module) is stubbed, and the TrainingModule's output slicing is done here.
usage: /tmp/etv/bin/python rss_et_lean.py [suffix]"""
import sys, time, types
from measure import hwm, rss_inputs
suffix = sys.argv[1] if len(sys.argv) > 1 else "_fold"
print("start VmHWM/VmRSS MB", hwm())
import torch  # still required: _C links libtorch.so / libtorch_python.so and returns torch tensors
print("after import torch", hwm())
exir = types.ModuleType("executorch.exir"); exir.__path__ = []
w = types.ModuleType("executorch.exir._warnings")
class ExperimentalWarning(DeprecationWarning): pass
w.ExperimentalWarning = ExperimentalWarning
w.experimental = lambda msg: (lambda obj: obj)
sys.modules["executorch.exir"] = exir; sys.modules["executorch.exir._warnings"] = w
from executorch.extension.pybindings import portable_lib as pl
pl._unsafe_reset_threadpool(1); torch.set_num_threads(1)
print("after import executorch runtime", hwm())

class Tower:
    """What TrainingModule does, without cloning: user outputs | gradients | parameters (aliases of the weights)."""
    def __init__(self, path):
        self.m = pl._load_for_executorch(path)
        self.gi = self.m.run_method("__et_training_gradients_index_forward", ())[0]
        self.pi = self.m.run_method("__et_training_parameters_index_forward", ())[0]
        self.fqn = self.m.run_method("__et_training_fqn_forward", ())
        self.params = None
    def step(self, inputs):
        out = self.m.run_method("forward", inputs, clone_outputs=False)
        if self.params is None:
            self.params = out[self.pi:]
        return out[0], out[self.gi:self.pi]   # grads alias planned memory: valid until the next call

tms = {w: Tower(f"/tmp/et_work/pte/{w}{suffix}.pte") for w in ("discomfort", "policy")}
inputs = rss_inputs()
for w, tm in tms.items():
    tm.step(inputs[w])
print("after load + first step", hwm())
N = 500
t0 = time.perf_counter()
for i in range(N):
    for w, tm in tms.items():
        loss, gs = tm.step(inputs[w])
        with torch.no_grad():
            for p, gr in zip(tm.params, gs):
                p.add_(gr, alpha=-1e-4)
print(f"per step (both towers + update) {(time.perf_counter()-t0)/N*1e3:.3f} ms; final VmHWM/VmRSS MB", hwm())
print("executorch.exir stubbed; modules with 'executorch' loaded:", sorted(m for m in sys.modules if m.startswith("executorch")))
