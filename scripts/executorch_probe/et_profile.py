"""Per-operator profile of the ET joint graph via ETDump + devtools Inspector.
usage: /tmp/etv/bin/python et_profile.py <tower> [suffix]"""
import os, sys, warnings, collections
warnings.simplefilter("ignore")
import torch
sys.path.insert(0, os.path.dirname(__file__))
from common import example_inputs, make_brain
from executorch.extension.pybindings import portable_lib as pl
pl._unsafe_reset_threadpool(1)
torch.set_num_threads(1)
which = sys.argv[1]; suffix = sys.argv[2] if len(sys.argv) > 2 else ""
brain = make_brain()
ex = example_inputs(brain, which)
m = pl._load_for_executorch(f"/tmp/et_work/pte/{which}{suffix}.pte", enable_etdump=True, debug_buffer_size=0)
for _ in range(30):
    m.run_method("forward", ex, clone_outputs=False)
path = f"/tmp/et_work/prof/{which}{suffix}.etdp"
m.write_etdump_result_to_file(path)
from executorch.devtools import Inspector
ins = Inspector(etdump_path=path)
tot = collections.defaultdict(float); cnt = collections.Counter()
for blk in ins.event_blocks:
    if blk.name != "Execute": continue
    for ev in blk.events:
        if ev.perf_data is None: continue
        name = ev.name
        tot[name] += ev.perf_data.p50
        cnt[name] += 1
grand = sum(v for k, v in tot.items() if k not in ("Method::execute", "Program::load_method", "Method::init"))
for k, v in sorted(tot.items(), key=lambda kv: -kv[1])[:25]:
    print(f"{v:9.3f} ms  {cnt[k]:4d}  {k}")
print("sum of op medians", grand)
