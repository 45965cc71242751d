"""Two commits side by side: the learning loop's steps/s (or the arena's), and the weights after a fixed run.

    python scripts/speed_ab.py --base 5b1301b [--head HEAD|WORKTREE] [--what loop|arena] [--rounds 4]
                               [--steps 600] [--warmup 200] [--head-set SECTION.KEY=VALUE ...]

--head-set changes the head's config only (e.g. model.backend=torch: the base's default loop against the
head's torch learner). Each side's default config is its own: from model.backend = auto on, a head's default
learner is numpy where a base before it learned on torch, and the weights then differ by construction.

Each commit is checked out in a temporary git worktree and imported from there (PYTHONPATH). In every
round both run at the same time, each pinned to its own core (taskset), so both meet the same machine
(this 2-core VM's speed drifts by +-20% over minutes; one after the other would measure the drift);
the cores swap every round. `--what loop` runs the default `--sim` loop: the arena, the default config,
the checkpoint hook and metrics written to a run directory, one thread (runtime.threads: torch's, or numpy's BLAS). `--what arena` runs
`bench arena` (random actions, both eyes rendered every step; --steps body steps).

Also printed: whether the weights after a fixed 500-step run from seed 3 are bit for bit the same in
both (a speed-up that changes rounding is then re-checked by `bench survival`, see the README).
Needs git and taskset (util-linux); prints one JSON object.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
from edge_runtime.cli_common import parse_value  # noqa: E402  (torch-free: the measuring runs import their own tree)

MEASURE = r"""
import hashlib, json, sys, tempfile, time
import numpy as np
from edge_runtime.checkpoint import checkpoint_hooks
from edge_runtime.config import Config
from edge_runtime.runtime import Runner
from sim_bridge.arena import Arena
mode, steps, warmup, overrides = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), json.loads(sys.argv[4])
cfg = Config.from_dict(overrides) if overrides else Config()
with Arena(cfg.arena) as body, tempfile.TemporaryDirectory() as d:
    if mode == "arena":
        from edge_runtime.bench import bench_arena
        print(json.dumps({"steps_per_s": bench_arena(cfg, steps, 0)["steps_per_s"]}))
    elif mode == "weights":
        r = Runner(cfg, body, seed=3, progress=False)
        r.run(steps)
        h = hashlib.sha256()
        for k, v in r.rule.brain.state_dict().items():
            a = v if isinstance(v, np.ndarray) else v.detach().contiguous().numpy()  # numpy learner / torch Brain
            h.update(k.encode()); h.update(np.ascontiguousarray(a).tobytes())
        print(json.dumps({"weights_sha256": h.hexdigest()}))
    else:
        from edge_runtime.hooks import Hook

        class Clock(Hook):  # starts the clock once the warm-up decisions are done
            t0 = t1 = None

            def on_step(self, runner, sense, metrics):
                if runner.rule.steps == warmup:
                    self.t0 = time.perf_counter()
                self.t1 = time.perf_counter()

        clock = Clock()
        hooks, seed = checkpoint_hooks(cfg, body.spec, d, resume="no", seed=1)
        r = Runner(cfg, body, seed=seed, run_dir=d, progress=False, hooks=hooks + [clock])
        r.run(warmup + steps)
        print(json.dumps({"steps_per_s": steps / (clock.t1 - clock.t0)}))
"""


def worktree(rev: str, where: Path) -> Path:
    subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", "-f", str(where), rev], check=True,
                   capture_output=True)
    return where


def launch(tree: Path, core: int | None, *args) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(tree), OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-c", MEASURE, *map(str, args)]
    if core is not None:
        cmd = ["taskset", "-c", str(core)] + cmd
    return subprocess.Popen(cmd, env=env, cwd=tree, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def result(p: subprocess.Popen) -> dict:
    out, err = p.communicate()
    if p.returncode != 0:
        raise SystemExit(f"speed_ab: a measurement failed:\n{err}")
    return json.loads(out.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--base", required=True, help="the commit to compare against")
    ap.add_argument("--head", default="HEAD", help="a commit, or WORKTREE: this checkout as it is, uncommitted changes too")
    ap.add_argument("--what", choices=("loop", "arena"), default="loop")
    ap.add_argument("--rounds", type=int, default=4)
    ap.add_argument("--steps", type=int, default=600, help="learning steps measured per run")
    ap.add_argument("--warmup", type=int, default=200, help="learning steps before the clock starts")
    ap.add_argument("--head-set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                    help="a config value for the head only (repeatable), e.g. model.backend=numpy")
    a = ap.parse_args(argv)
    head_cfg: dict = {}
    for item in a.head_set:
        key, _, value = item.partition("=")
        section, _, name = key.partition(".")
        if not (section and name and value):
            raise SystemExit(f"speed_ab: --head-set {item!r}: expected SECTION.KEY=VALUE")
        head_cfg.setdefault(section, {})[name] = parse_value(value)  # as --set reads it
    cfgs = {"base": "{}", "head": json.dumps(head_cfg)}
    with tempfile.TemporaryDirectory() as tmp:
        trees = {"base": worktree(a.base, Path(tmp) / "base"),
                 "head": REPO if a.head == "WORKTREE" else worktree(a.head, Path(tmp) / "head")}
        try:
            rates = {"base": [], "head": []}
            mode, unit = ("rate", "learning") if a.what == "loop" else ("arena", "body")
            for i in range(a.rounds):
                cores = (0, 1) if i % 2 == 0 else (1, 0)
                ps = {k: launch(trees[k], c, mode, a.steps, a.warmup, cfgs[k]) for k, c in zip(("base", "head"), cores)}
                for k, p in ps.items():
                    rates[k].append(round(result(p)["steps_per_s"], 2))
                print(f"round {i + 1}: base {rates['base'][-1]} head {rates['head'][-1]} {unit} steps/s", file=sys.stderr)
            sha = {k: result(launch(t, None, "weights", 500, 0, cfgs[k]))["weights_sha256"] for k, t in trees.items()}
        finally:
            for t in trees.values():
                if t != REPO:
                    subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(t)],
                                   capture_output=True)
    med = {k: statistics.median(v) for k, v in rates.items()}
    print(json.dumps({"what": a.what, "base": a.base, "head": a.head, "head_set": a.head_set, "rounds": a.rounds, "steps": a.steps,
                      "warmup": a.warmup, "steps_per_s": rates, "median_steps_per_s": med,
                      "speedup": round(med["head"] / med["base"], 3),
                      "weights_after_500_identical": sha["base"] == sha["head"], "weights_sha256": sha}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
