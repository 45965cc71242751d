"""`bench loop` and `bench soak`: the whole learning loop of a `--sim` run, timed and weighed.

Both run what `edge-runtime --sim` runs (the arena, the config given, the checkpoint hook, metrics written to a
run directory), on `runtime.threads` threads (torch's, or the numpy learner's BLAS; default 1: one core).

bench loop: learning steps/s after a warm-up, and where each step's time goes. The parts are timed by wrapping
the runner's own pieces (nothing is re-implemented here):
    senses   the eyes rendered (the arena renders when they are first looked at) and encoded for the brain
    decide   the forward pass and the action (rule.decide)
    body     the action applied, action repeat included (body.act)
    learn    the rule's update (rule.learn), death rollbacks included
    metrics  the metrics line written (every runtime.metrics_every decisions)
    hooks    every hook's on_step and on_death (checkpoints included)
    other    the rest of the loop (its bookkeeping, respawns)

bench soak: resident memory every `--every` decisions over a long run, the slope after the warm-up (least
squares, MB per 10k decisions), the peak, and where the memory goes.
"""
from __future__ import annotations

import functools
import subprocess
import sys
import tempfile
import time

import numpy as np

from .bench import arena, peak_rss_mb
from .config import Config, learner_backend
from .hooks import Hook

PARTS = ("senses", "decide", "body", "learn", "metrics", "hooks")


def rss_mb() -> float:
    """Resident memory of this process now (not the peak)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * (4096 / 2**20)


class _Clock(Hook):
    """Starts the clock when the warm-up decisions are done; rides last, so it sees every other hook's time."""

    def __init__(self, warmup: int, timers: dict):
        self.warmup, self.timers = warmup, timers
        self.t0 = self.t1 = None
        self.body0 = 0

    def on_step(self, runner, sense, metrics):
        if runner.rule.steps == self.warmup and self.t0 is None:
            for k in self.timers:
                self.timers[k] = 0.0
            self.t0, self.body0 = time.perf_counter(), runner.body_steps
        self.t1 = time.perf_counter()


def _timed(fn, timers: dict, part: str):
    @functools.wraps(fn)
    def wrapper(*a, **k):
        t = time.perf_counter()
        try:
            return fn(*a, **k)
        finally:
            timers[part] += time.perf_counter() - t
    return wrapper


def _runner(cfg: Config, body, run_dir: str, seed: int, extra_hooks: list):
    from .checkpoint import checkpoint_hooks
    from .runtime import Runner

    hooks, seed = checkpoint_hooks(cfg, body.spec, run_dir, resume="no", seed=seed)
    return Runner(cfg, body, seed=seed, run_dir=run_dir, progress=False, hooks=hooks + extra_hooks)


def bench_loop(cfg: Config, steps: int, warmup: int, seed: int) -> dict:
    timers = dict.fromkeys(PARTS, 0.0)
    clock = _Clock(warmup, timers)
    with arena(cfg) as body, tempfile.TemporaryDirectory() as run_dir:
        r = _runner(cfg, body, run_dir, seed, [])
        body.act = _timed(body.act, timers, "body")
        r.enc = _timed(r.enc, timers, "senses")
        r.rule.decide = _timed(r.rule.decide, timers, "decide")
        r.rule.learn = _timed(r.rule.learn, timers, "learn")
        r._write_metrics = _timed(r._write_metrics, timers, "metrics")
        for h in r.hooks:
            h.on_step = _timed(h.on_step, timers, "hooks")
            h.on_death = _timed(h.on_death, timers, "hooks")
        r.hooks.append(clock)  # untimed: it only reads the clock
        r.run(warmup + steps)
        wall = clock.t1 - clock.t0
        body_steps = r.body_steps - clock.body0
        numpy_backend = r.rule.net.name == "numpy"
        params = r.rule.brain.n_params() if numpy_backend else sum(p.numel() for p in r.rule.brain.parameters())
    ms = {k: round(v / steps * 1000, 3) for k, v in timers.items()}
    ms["other"] = round(wall / steps * 1000 - sum(ms.values()), 3)
    return {"learning_steps_per_s": round(steps / wall, 2), "body_steps_per_s": round(body_steps / wall, 1),
            "ms_per_step": round(wall / steps * 1000, 3), "breakdown_ms": ms, "steps": steps, "warmup": warmup,
            "rule": cfg.rule.name, "params": params, "threads": cfg.runtime.threads,
            "action_repeat": cfg.runtime.repeat_for(body.spec), "peak_rss_mb": round(peak_rss_mb(), 1),
            "backend": r.rule.net.name, "checkpoints": cfg.section("checkpoint").enabled,
            "torch": sys.modules["torch"].__version__ if "torch" in sys.modules else None}


class _RssProbe(Hook):
    def __init__(self, every: int):
        self.every = every
        self.samples: list[tuple[int, float]] = []

    def on_start(self, runner):
        self.samples.append((0, round(rss_mb(), 2)))

    def on_step(self, runner, sense, metrics):
        if runner.rule.steps % self.every == 0:
            self.samples.append((runner.rule.steps, round(rss_mb(), 2)))


def _import_torch_mb() -> dict:
    """Resident memory of a bare interpreter, and after `import torch` (a fresh process: this one may not have it).
    python_and_torch_mb is None where torch is not installed (a board learning with numpy alone)."""
    code = ("import resource, sys\n"
            "def rss():\n    return int(open('/proc/self/statm').read().split()[1]) * 4096 / 2**20\n"
            "a = rss()\ntry:\n    import torch\nexcept ImportError:\n    print(a, 'none'); raise SystemExit\n"
            "print(a, rss())")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    return {"python_mb": round(float(out[0]), 1),
            "python_and_torch_mb": None if out[1] == "none" else round(float(out[1]), 1)}


def _tensor_mb(tensors) -> float:
    """torch tensors or numpy arrays (the numpy learner's)."""
    return round(sum(t.nbytes if isinstance(t, np.ndarray) else t.numel() * t.element_size() for t in tensors) / 2**20, 2)


def bench_soak(cfg: Config, steps: int, every: int, seed: int, warmup_frac: float = 0.2) -> dict:
    probe = _RssProbe(every)
    t = time.perf_counter()
    numpy_backend = learner_backend(cfg.model, cfg.rule.name) == "numpy"
    if not numpy_backend:
        import torch  # noqa: F401  (before the baseline: "+brain, rule and ring" must not count torch's import)
    with arena(cfg) as body, tempfile.TemporaryDirectory() as run_dir:
        before_runner = rss_mb()
        r = _runner(cfg, body, run_dir, seed, [probe])
        after_runner = rss_mb()
        rule = r.rule
        brain = rule.brain
        if numpy_backend:
            params = brain.flats()
            stats = [brain.eye_norm.mean, brain.eye_norm.m2] if brain.eye_norm is not None else []
        else:
            params, stats = list(brain.parameters()), list(brain.buffers())
        where = {
            **_import_torch_mb(),
            "this_process_before_the_brain_mb": round(before_runner, 1),
            "brain_rule_and_ring_built_mb": round(after_runner - before_runner, 1),
            "parameters_mb": _tensor_mb(params),
            "eye_statistics_mb": _tensor_mb(stats),
            # what a snapshot holds besides the parameters and the thought: the rule's traces
            "traces_mb": _tensor_mb([t for k, ts in rule.snapshot_tensors().items() if k not in ("params", "thought")
                                     for t in ts]),
            "rollback_ring_mb": round(rule.ring.nbytes() / 2**20, 2),
            "rollback_ring_full_mb": round(rule.ring.nbytes() / 2**20 / max(len(rule.ring), 1) * cfg.rule.rollback_depth, 2),
        }
        r.run(steps)
        learned = r.rule.steps
    wall = time.perf_counter() - t
    after = [(s, m) for s, m in probe.samples if s >= warmup_frac * steps]
    xs, ys = np.array([s for s, _ in after], float), np.array([m for _, m in after], float)
    slope = float(np.polyfit(xs, ys, 1)[0] * 10_000) if len(xs) >= 2 else None
    return {"steps": learned, "every": every, "rss_mb": probe.samples,
            "slope_mb_per_10k_after_warmup": None if slope is None else round(slope, 3),
            "warmup_steps": int(warmup_frac * steps), "peak_rss_mb": round(peak_rss_mb(), 1),
            "where_the_memory_goes": where, "wall_s": round(wall, 1), "rule": cfg.rule.name, "backend": rule.net.name}


def timed_arena_run(cfg: Config, steps: int, seed: int, hooks: list[Hook]) -> tuple[dict, float, float]:
    """A fresh brain in the built-in arena for `steps` decisions with `hooks`: (summary, the loop thread's CPU ms
    per decision, the other threads' CPU ms per decision). What the benchmarks that compare a loop with and
    without a rider (console, view) run."""
    from .runtime import Runner

    with arena(cfg) as body:
        runner = Runner(cfg, body, seed=seed, progress=False, hooks=hooks)
        c0, p0 = time.thread_time(), time.process_time()
        summary = runner.run(steps)
        loop, proc = time.thread_time() - c0, time.process_time() - p0
        return summary, round(loop / steps * 1e3, 3), round((proc - loop) / steps * 1e3, 3)
