"""`edge-runtime bench view`: what watching costs the control loop.

Identical runs (same seed, same world, same brain from scratch), one per mode in each repeat, the order
rotated from repeat to repeat so that the machine's drift and any order effect fall on every mode alike:
    off      no view
    watched  the live view with `clients` pages reading the event stream, each in a process of its own (as a
             browser on a laptop would be); frames at the view's rate (10 per second)
    record   --record to a .rrd file (when the rerun SDK is installed; else said so)
The figure is the median over pairs of (rate with / rate without); the bar is a cost <= 5 %. On a shared
machine that ratio carries the machine's drift (identical runs differ by 10-20 % here), so the cost is also
accounted for directly: the time the loop spends in the rider's hook per decision, plus the CPU time of every
other thread of the process (the view's server, rerun's writers) per decision, against the loop's own CPU
time per decision without a rider.
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .hook import ViewHook
from .server import ViewServer

READER = r"""
import sys, urllib.request
frames = 0
with urllib.request.urlopen(sys.argv[1], timeout=30) as r:
    for line in r:
        if line.startswith(b"data:"):
            frames += 1
"""


def _median(xs):
    s = sorted(xs)
    n = len(s)
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) / 2


def _timed(fn, spent: list[float]):
    def timed(*a):
        t = time.perf_counter()
        fn(*a)
        spent[0] += time.perf_counter() - t

    return timed


def bench_view(cfg, steps: int = 600, repeats: int = 3, seed: int = 0, clients: int = 1) -> dict:
    from ..runtime import timed_arena_run

    try:
        from ..record import RecordError, RecordHook

        import rerun  # noqa: F401

        modes = ("off", "watched", "record")
    except ImportError:
        modes = ("off", "watched")
    rates = {m: [] for m in modes}
    cpu = {m: [] for m in modes}
    other = {m: [] for m in modes}
    in_hook = {m: [] for m in modes}
    frames = []
    with tempfile.TemporaryDirectory() as tmp:
        for rep in range(repeats):
            for mode in modes[rep % len(modes):] + modes[:rep % len(modes)]:  # each mode in each place in turn
                hooks, procs, server = [], [], None
                if mode == "watched":
                    server = ViewServer("127.0.0.1", 0).start()
                    procs = [subprocess.Popen([sys.executable, "-c", READER, f"http://127.0.0.1:{server.port}/events"])
                             for _ in range(clients)]
                    deadline = time.time() + 30
                    while server.clients < clients and time.time() < deadline:
                        time.sleep(0.01)
                    if server.clients < clients:
                        raise RuntimeError(f"bench view: {clients} reader(s) did not connect")
                    hooks.append(ViewHook(server, cfg.model.input_hw))
                elif mode == "record":
                    try:
                        hooks.append(RecordHook(Path(tmp) / f"r{rep}.rrd", cfg.model.input_hw))
                    except RecordError as e:
                        raise RuntimeError(f"bench view: {e}") from None
                spent = [0.0]
                for h in hooks:
                    h.on_step = _timed(h.on_step, spent)
                try:
                    s, ms, others = timed_arena_run(cfg, steps, seed, hooks)
                    cpu[mode].append(ms)
                    other[mode].append(others)
                    in_hook[mode].append(round(spent[0] / steps * 1e3, 4))
                    rates[mode].append(s["steps_per_s"])
                    if server is not None:
                        frames.append(round(server.frames_sent / clients / s["wall_s"], 1))
                finally:
                    for p in procs:
                        p.kill()
                        p.wait()
    res = {"steps": steps, "repeats": repeats, "clients": clients, "modes": list(modes)}
    for m in modes:
        res[f"rate_{m}"] = rates[m]
        res[f"median_rate_{m}"] = _median(rates[m])
        res[f"loop_cpu_ms_per_step_{m}"] = _median(cpu[m])
    for m in modes[1:]:
        ratio = _median([b / a for a, b in zip(rates["off"], rates[m])])
        res[f"median_pair_ratio_{m}_vs_off"] = round(ratio, 3)
        res[f"cost_pct_{m}"] = round((1 - ratio) * 100, 1)
        res[f"hook_ms_per_step_{m}"] = _median(in_hook[m])
        res[f"other_threads_cpu_ms_per_step_{m}"] = round(_median(other[m]) - _median(other["off"]), 4)
        res[f"direct_cost_pct_{m}"] = round(100 * (res[f"hook_ms_per_step_{m}"] + res[f"other_threads_cpu_ms_per_step_{m}"])
                                            / res["loop_cpu_ms_per_step_off"], 2)
    res["frames_per_s_per_client"] = _median(frames)
    if "record" not in modes:
        res["record"] = "not measured: the rerun SDK is not installed (pip install -e '.[record]')"
    return res
