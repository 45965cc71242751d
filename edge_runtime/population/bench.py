"""`edge-runtime bench population`: a population in one process against the same agents run alone.

For each N in --sizes, measured in this one benchmark run, each part in fresh processes:

    population   one process holds N agents (`Population`, worlds as --worlds, threads --threads, both
                 defaulting as `edge-runtime population` does);
                 `--warmup` decisions per agent, then the clock runs for `--steps` decisions per agent:
                 agent_decisions_per_s = N * steps / wall
    lone         the same N agents (seeds seed .. seed + N - 1, the same rule, config, learner and arena)
                 as N single-agent learning loops (`Runner`, no run directory: the lone loop at its fastest),
                 2 processes at a time on the 2 cores (--lone-jobs). Each process warms up alone, then both start their timed
                 `--steps` together: lone_agent_decisions_per_s = N * steps / (sum over the pairs of the slower
                 one's wall)

peak_rss_mb is the peak resident memory of the population's processes (the brains' process plus the worlds'
process, which live at the same time); rss_per_agent_mb = peak_rss_mb / N. lone_peak_rss_mb is one lone
process's peak (N lone runs hold N times that, or 2 times that when run 2 at a time).

With --ray-size N (default 16, 0 for none), N's record also carries Ray's overhead per selection round: the
same population as 2 Ray actors on a local Ray cluster (`ray.init(num_cpus=2)`), pbt every --select-every
decisions; the driver's round (scores gathered, copies moved actor to actor through the object store) in ms
and the bytes it moved, beside the same round inside one process.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time

from ..config import Config
from ..memory import vm_hwm_mb

WORKER = [sys.executable, "-m", "edge_runtime.population.bench"]


def _load(cfg_path: str) -> Config:
    return Config.load(cfg_path)


def worker_population(cfg_path, size, steps, warmup, seed, worlds, threads) -> dict:
    from .runner import Population

    pop = Population(_load(cfg_path), size, seed, worlds=worlds, threads=threads)
    try:
        if warmup:
            pop.run(warmup)
        t = time.perf_counter()
        pop.run(steps)
        wall = time.perf_counter() - t
        worlds_mb = pop.worlds.peak_rss_mb() if worlds == "process" else 0.0
        copy_ms = None
        if size >= 2:  # what a selection round costs inside one process: the scores, one copy (beside Ray's)
            t = time.perf_counter()
            pop.scores()
            pop.adopt(0, pop.export_agent(1), seed)
            copy_ms = (time.perf_counter() - t) * 1000
    finally:
        pop.close()
    return {"wall_s": wall, "agent_decisions_per_s": size * steps / wall, "local_round_one_copy_ms": copy_ms,
            "threads": pop.threads, "backend": pop.backend,
            "brains_rss_mb": vm_hwm_mb(), "worlds_rss_mb": worlds_mb}


def worker_lone(cfg_path, seed, steps, warmup) -> dict:
    """One single-agent learning loop; says `ready` after its warm-up and waits for `go` on stdin."""
    from ..bench import arena
    from ..hooks import Hook
    from ..runtime import Runner

    cfg = _load(cfg_path)
    marks = {}

    class Gate(Hook):
        def on_step(self, runner, sense, metrics):
            if runner.rule.steps == warmup and "t0" not in marks:
                print("ready", flush=True)
                sys.stdin.readline()
                marks["t0"] = time.perf_counter()

    with arena(cfg) as body:
        r = Runner(cfg, body, seed=seed, progress=False, hooks=[Gate()])
        if warmup == 0:
            print("ready", flush=True)
            sys.stdin.readline()
            marks["t0"] = time.perf_counter()
        r.run(warmup + steps)
        wall = time.perf_counter() - marks["t0"]
    return {"wall_s": wall, "peak_rss_mb": vm_hwm_mb()}


def _spawn(args: list[str]) -> subprocess.Popen:
    return subprocess.Popen(WORKER + [str(a) for a in args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})


def _result(p: subprocess.Popen) -> dict:
    out, _ = p.communicate()
    if p.returncode != 0:
        raise RuntimeError(f"bench population: worker {' '.join(p.args[3:])} failed (exit {p.returncode})")
    return json.loads(out.strip().splitlines()[-1])


def lone_runs(cfg_path, seeds, steps, warmup, jobs) -> dict:
    walls, rss = [], []
    for k in range(0, len(seeds), jobs):
        procs = [_spawn(["lone", cfg_path, s, steps, warmup]) for s in seeds[k:k + jobs]]
        for p in procs:  # all warmed up before any starts its clock
            if p.stdout.readline().strip() != "ready":
                p.kill()
                raise RuntimeError("bench population: a lone worker died in its warm-up")
        for p in procs:
            p.stdin.write("go\n")
            p.stdin.flush()
        res = [_result(p) for p in procs]
        walls.append(max(r["wall_s"] for r in res))
        rss += [r["peak_rss_mb"] for r in res]
    return {"lone_agent_decisions_per_s": len(seeds) * steps / sum(walls), "lone_peak_rss_mb": max(rss)}


def ray_round(cfg: Config, size, steps, seed, every) -> dict:
    from .ray_groups import run_on_ray
    from .selection import Selection

    with tempfile.TemporaryDirectory() as d:
        s = run_on_ray(cfg, size, steps, seed, None, d, Selection("pbt", every), address="local", groups=2,
                       worlds="inline", metrics_every=0)
    return {"ray_selection_round_ms": s["selection_round_ms"], "ray_round_one_copy_ms": s["round_one_copy_ms"],
            "ray_rounds": s["rounds"], "ray_replacements": s["replacements"],
            "ray_bytes_per_copy": s["bytes_per_copy"], "ray_bytes_per_round_max": s["bytes_per_round_max"],
            "ray_start_s": s["start_s"], "ray_agent_decisions_per_s": s["agent_decisions_per_s"]}


def bench_population(cfg: Config, sizes: list[int], steps: int, warmup: int, seed: int, worlds: str,
                     threads: int | None, lone_jobs: int, ray_size: int, select_every: int, out=sys.stderr) -> list:
    import tomli_w

    records = []
    with tempfile.TemporaryDirectory() as d:
        cfg_path = os.path.join(d, "config.toml")
        with open(cfg_path, "w") as f:  # the population and the lone runs: one config, so one learner
            f.write(tomli_w.dumps(cfg.to_dict()))
        for n in sizes:
            pop = _result(_spawn(["population", cfg_path, n, steps, warmup, seed, worlds, threads or 0]))
            lone = lone_runs(cfg_path, [seed + i for i in range(n)], steps, warmup, lone_jobs)
            peak = pop["brains_rss_mb"] + (pop["worlds_rss_mb"] if worlds == "process" else 0.0)
            rec = {"size": n, "agent_decisions_per_s": round(pop["agent_decisions_per_s"], 1),
                   "lone_agent_decisions_per_s": round(lone["lone_agent_decisions_per_s"], 1),
                   "speedup": round(pop["agent_decisions_per_s"] / lone["lone_agent_decisions_per_s"], 2),
                   "peak_rss_mb": round(peak, 1), "rss_per_agent_mb": round(peak / n, 1),
                   "brains_rss_mb": round(pop["brains_rss_mb"], 1),
                   "worlds_rss_mb": round(pop["worlds_rss_mb"], 1) if worlds == "process" else None,
                   "lone_peak_rss_mb": round(lone["lone_peak_rss_mb"], 1),
                   "local_round_one_copy_ms": None if pop["local_round_one_copy_ms"] is None
                   else round(pop["local_round_one_copy_ms"], 2),
                   "steps": steps, "warmup": warmup, "seed": seed, "worlds": worlds,
                   "threads": pop["threads"], "backend": pop["backend"], "lone_jobs": lone_jobs}
            if n == ray_size:
                rec.update(ray_round(cfg, n, max(4 * select_every, steps), seed, select_every))
            records.append(rec)
            out.write(f"N={n:3d}: population {rec['agent_decisions_per_s']:7.1f} agent-decisions/s, lone "
                      f"{rec['lone_agent_decisions_per_s']:6.1f} ({rec['speedup']}x), peak {rec['peak_rss_mb']} MB "
                      f"({rec['rss_per_agent_mb']} MB/agent)\n")
            out.flush()
    return records


def _main(argv):
    kind = argv[0]
    if kind == "population":
        cfg_path, size, steps, warmup, seed, worlds, threads = argv[1:]
        res = worker_population(cfg_path, int(size), int(steps), int(warmup), int(seed), worlds, int(threads) or None)
    elif kind == "lone":
        cfg_path, seed, steps, warmup = argv[1:]
        res = worker_lone(cfg_path, int(seed), int(steps), int(warmup))
    else:
        raise SystemExit(f"unknown worker {kind}")
    print(json.dumps(res), flush=True)


if __name__ == "__main__":
    _main(sys.argv[1:])
