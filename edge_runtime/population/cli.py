"""`edge-runtime population`: the command's options and what it prints.

    edge-runtime population --size N --steps S [--body arena] [--seed S] [--run-dir DIR]
                            [--select none|pbt|tournament] [--select-every G] [--select-fraction F]
                            [--ray auto|local|ADDRESS [--groups K]] [--worlds process|inline] [--threads T] [--json]

Prints the summary as JSON on stdout (--json: only that); the run directory holds lives, metrics, lineage
and every agent's weights (agents/NN/weights.npz on the numpy learner, the default; weights.pt on torch's).
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from ..cli_common import UsageError, _add_common, load_config
from ..config import ConfigError, learner_backend
from ..jsonout import dumps
from .selection import METHODS, Selection


def add_parser(sub):
    p = sub.add_parser("population", help="N agents learning at once in one process (or across machines on Ray), "
                                          "optionally with selection by survival")
    _add_common(p)
    p.add_argument("--size", type=int, required=True, help="agents (each its own brain, life and world)")
    p.add_argument("--steps", type=int, required=True, help="decisions per agent")
    p.add_argument("--body", default=None, help="body kind of every agent's world: arena (default) | godot | gym:ENV_ID")
    p.add_argument("--run-dir", default=None, help="where to write lives, metrics, lineage and weights "
                                                   "(default: runs/population-<time>)")
    p.add_argument("--select", default="none", choices=METHODS, help="selection by recent survival (default none)")
    p.add_argument("--select-every", type=int, default=500, metavar="G", help="decisions between selection rounds")
    p.add_argument("--select-fraction", type=float, default=0.25, help="share of agents replaced per round")
    p.add_argument("--sigma", type=float, default=0.01, help="weight noise of a copy, relative to each tensor's std")
    p.add_argument("--ray", default=None, metavar="auto|local|ADDRESS",
                   help="run groups of agents as Ray actors: auto or ADDRESS joins a running cluster "
                        "(ray.init(address=...)), local starts one here; selection across groups by this driver")
    p.add_argument("--groups", type=int, default=2, help="with --ray: Ray actors the agents are split over")
    p.add_argument("--worlds", default="inline", choices=["process", "inline"],
                   help="inline (default): all agents one batch, the worlds stepped here between batches; process: "
                        "the worlds in their own process, stepping for one half while the other half learns")
    p.add_argument("--threads", type=int, default=None,
                   help="threads of the brains' arithmetic: numpy's BLAS, or torch's (default: every core, less one with --worlds process; "
                        "with --ray: 1 per actor)")
    p.add_argument("--metrics-every", type=int, default=10, help="one metrics line per agent every K decisions")
    p.add_argument("--json", action="store_true", help="print only the JSON summary")
    p.add_argument("--no-progress", action="store_true")


def cmd_population(args) -> int:
    if args.size < 1 or args.steps < 1:
        raise UsageError("--size and --steps must be >= 1")
    cfg = load_config(args)
    if cfg.rule.name != "survival":
        raise UsageError(f"population: runs the survival rule, not {cfg.rule.name!r}")
    if cfg.model.towers == "shared":
        raise UsageError("population: model.towers = shared: the survival rule runs split towers (split or auto)")
    backend = learner_backend(cfg.model, cfg.rule.name)
    if backend not in ("numpy", "torch"):
        raise UsageError(f"population: model.backend = {backend} runs one agent; a population batches its agents on "
                         "the numpy learner (model.backend = auto, the default, or numpy) or on torch")
    try:  # the population learns on the learner a lone run of this config would: numpy's by default
        if backend == "numpy":
            from ..numpy_learner.brain import supported

            supported(cfg.model)
    except ConfigError as e:
        raise UsageError(str(e)) from None
    try:
        sel = Selection(args.select, args.select_every, args.select_fraction, sigma=args.sigma)
    except ValueError as e:
        raise UsageError(str(e)) from None
    run_dir = Path(args.run_dir or f"runs/population-{time.strftime('%Y%m%d-%H%M%S')}")
    if args.ray:
        from .ray_groups import RayUnavailable, run_on_ray

        if not 1 <= args.groups <= args.size:
            raise UsageError(f"--groups: must be in 1..--size ({args.size}), got {args.groups}")
        try:
            summary = run_on_ray(cfg, args.size, args.steps, args.seed, args.body, run_dir, sel, address=args.ray,
                                 groups=args.groups, worlds=args.worlds, threads=args.threads,
                                 metrics_every=args.metrics_every)
        except RayUnavailable as e:
            raise UsageError(str(e)) from None
    else:
        from .runner import Population

        pop = Population(cfg, args.size, args.seed, args.body, run_dir, sel, metrics_every=args.metrics_every,
                         worlds=args.worlds, threads=args.threads, progress=not (args.json or args.no_progress))
        summary = None
        try:
            summary = pop.run(args.steps)
        finally:
            pop.close(summary)
    summary["run_dir"] = str(run_dir)
    print(dumps(summary, indent=None if args.json else 1))
    if not args.json:
        ext = "npz" if summary.get("backend") == "numpy" else "pt"
        print(f"weights: {run_dir}/agents/NN/weights.{ext}  best agent {summary['best_agent']}, median agent "
              f"{summary['median_agent']}  (edge-runtime eval --policy {run_dir}/agents/{summary['best_agent']:02d})",
              file=sys.stderr)
    return 0
