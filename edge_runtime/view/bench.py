"""`edge-runtime bench view`: what watching costs the control loop.

Identical runs (same seed, same world, same brain from scratch), one per mode in each repeat, the order
rotated from repeat to repeat so that the machine's drift and any order effect fall on every mode alike:
    off      no view
    watched  the live view with `clients` pages reading the event stream, each in a process of its own (as a
             browser on a laptop would be); frames at the view's rate (10 per second)
    record   --record to a .rrd file (when the rerun SDK is installed; else said so)
The figure is the median over pairs of (rate with / rate without); the bar is a cost <= 5 %. On a shared
machine that ratio carries the machine's drift (identical runs differ by 10-20 % here), so two more figures:

    interleaved  one run per rider, the rider switched on and off every `chunk` decisions in ABBA order
                 (on-off, off-on, ...); each pair of neighbouring chunks gives one ratio (rate on / rate off):
                 neighbours are a second apart, so the drift between them is small, and the learning state is
                 the same run's
    direct       the time the loop spends in the rider's hook per decision, plus the CPU time of every other
                 thread of the process (the view's server, rerun's writers) per decision, against the loop's
                 own CPU time per decision without a rider
"""
from __future__ import annotations

import subprocess
import sys
import tempfile
import time
from pathlib import Path
from statistics import median

import numpy as np

from ..hooks import Hook
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


def _timed(fn, spent: list[float]):
    def timed(*a):
        t = time.perf_counter()
        fn(*a)
        spent[0] += time.perf_counter() - t

    return timed


class _Gate(Hook):
    """A rider switched on and off during one run: on_step reaches it only while `on`; start and stop always."""

    def __init__(self, rider: Hook):
        self.rider = rider
        self.on = True

    def on_start(self, runner):
        self.rider.on_start(runner)

    def on_step(self, runner, sense, metrics):
        if self.on:
            self.rider.on_step(runner, sense, metrics)

    def on_death(self, runner, lifespan):
        self.rider.on_death(runner, lifespan)

    def on_stop(self, runner, summary):
        self.rider.on_stop(runner, summary)


class _Chunks(Hook):
    """Times chunks of `chunk` decisions and flips the gate in ABBA order; the first chunk is a warm-up."""

    def __init__(self, gate: _Gate, chunk: int):
        self.gate, self.chunk = gate, chunk
        self.n = 0
        self.t = None
        self.times: list[tuple[bool, float]] = []  # (rider on, seconds) per chunk after the warm-up

    def on_start(self, runner):
        self.t = time.perf_counter()
        self.gate.on = False

    def on_step(self, runner, sense, metrics):
        self.n += 1
        if self.n % self.chunk:
            return
        now = time.perf_counter()
        k = self.n // self.chunk - 1  # 0 = the warm-up
        if k >= 1:
            self.times.append((self.gate.on, now - self.t))
        pair, second = divmod(k, 2)  # the next chunk is k + 1: chunks 1,2 = pair 0 (on, off); 3,4 = pair 1 (off, on)
        self.gate.on = (second == 0) == (pair % 2 == 0)
        self.t = time.perf_counter()


def interleaved(cfg, rider: Hook, chunk: int, pairs: int, seed: int) -> dict:
    """One run with `rider` switched on and off every `chunk` decisions; ratios of neighbouring chunks."""
    from ..bench_loop import timed_arena_run

    gate = _Gate(rider)
    chunks = _Chunks(gate, chunk)
    timed_arena_run(cfg, chunk * (1 + 2 * pairs), seed, [gate, chunks])
    ratios = []
    for i in range(0, len(chunks.times) - 1, 2):
        (on_a, ta), (on_b, tb) = chunks.times[i], chunks.times[i + 1]
        if on_a != on_b:
            t_on, t_off = (ta, tb) if on_a else (tb, ta)
            ratios.append(t_off / t_on)  # rate on / rate off
    q = np.percentile(ratios, [25, 50, 75]) if ratios else [float("nan")] * 3
    return {"pairs": len(ratios), "chunk": chunk, "median_ratio": round(float(q[1]), 4),
            "ratio_p25_p75": [round(float(q[0]), 4), round(float(q[2]), 4)],
            "cost_pct": round((1 - float(q[1])) * 100, 2)}


def bench_view(cfg, steps: int = 600, repeats: int = 3, seed: int = 0, clients: int = 1, chunk: int = 100,
               chunk_pairs: int = 20) -> dict:
    from ..bench_loop import timed_arena_run

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
        res[f"median_rate_{m}"] = median(rates[m])
        res[f"loop_cpu_ms_per_step_{m}"] = median(cpu[m])
    for m in modes[1:]:
        ratio = median([b / a for a, b in zip(rates["off"], rates[m])])
        res[f"median_pair_ratio_{m}_vs_off"] = round(ratio, 3)
        res[f"cost_pct_{m}"] = round((1 - ratio) * 100, 1)
        res[f"hook_ms_per_step_{m}"] = median(in_hook[m])
        res[f"other_threads_cpu_ms_per_step_{m}"] = round(median(other[m]) - median(other["off"]), 4)
        res[f"direct_cost_pct_{m}"] = round(100 * (res[f"hook_ms_per_step_{m}"] + res[f"other_threads_cpu_ms_per_step_{m}"])
                                            / res["loop_cpu_ms_per_step_off"], 2)
    res["frames_per_s_per_client"] = median(frames)
    if chunk_pairs:
        server = ViewServer("127.0.0.1", 0).start()
        procs = [subprocess.Popen([sys.executable, "-c", READER, f"http://127.0.0.1:{server.port}/events"])
                 for _ in range(clients)]
        try:
            deadline = time.time() + 30
            while server.clients < clients and time.time() < deadline:
                time.sleep(0.01)
            res["interleaved_watched"] = interleaved(cfg, ViewHook(server, cfg.model.input_hw), chunk, chunk_pairs, seed)
        finally:
            for p in procs:
                p.kill()
                p.wait()
        if "record" in modes:
            with tempfile.TemporaryDirectory() as tmp:
                res["interleaved_record"] = interleaved(cfg, RecordHook(Path(tmp) / "i.rrd", cfg.model.input_hw),
                                                        chunk, chunk_pairs, seed)
    if "record" not in modes:
        res["record"] = "not measured: the rerun SDK is not installed (pip install -e '.[record]')"
    return res
