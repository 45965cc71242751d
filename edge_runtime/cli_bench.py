"""`edge-runtime bench ...`: the benchmark commands (each prints figures; --json for scripts)."""
from __future__ import annotations

import argparse
import os
import sys

from .bodies import command
from .config import Config
from .jsonout import dumps
from .cli_common import Parser, UsageError, _add_common, _positive, load_config


def add_bench_parsers(sub) -> None:
    b = sub.add_parser("bench", help="benchmarks that print figures")
    bsub = b.add_subparsers(dest="what", parser_class=Parser)
    ba = bsub.add_parser("arena", help="arena steps/s, rendering included")
    _add_common(ba)
    ba.add_argument("--steps", type=int, default=3000)
    ba.add_argument("--json", action="store_true")
    bs = bsub.add_parser("step", help="one agent step: forward and learn ms, peak RSS")
    _add_common(bs)
    bs.add_argument("--backend", choices=("torch", "onnx", "ort", "numpy"), default="torch",
                    help="torch (the default here, whatever model.backend says): torch autograd; "
                         "onnx: an exported brain (--policy) acting through ONNX Runtime, torch never imported; "
                         "ort / numpy: learning with model.backend = ort / numpy, and the torch backend measured "
                         "beside it in its own process (the record's `torch`)")
    bs.add_argument("--policy", default=None, metavar="brain.onnx", help="the exported brain (--backend onnx)")
    bs.add_argument("--steps", type=int, default=300)
    bs.add_argument("--warmup", type=int, default=50)
    bs.add_argument("--json", action="store_true")
    bl = bsub.add_parser("loop", help="the whole learning loop of a --sim run: learning steps/s and where the time goes")
    _add_common(bl)
    bl.add_argument("--steps", type=int, default=600, help="decisions measured")
    bl.add_argument("--warmup", type=int, default=200, help="decisions before the clock starts")
    bl.add_argument("--json", action="store_true")
    bp = bsub.add_parser("population", help="agent-decisions/s of N agents in one process against the same agents "
                                            "run alone (2 at a time), peak RSS per agent, Ray's selection round")
    _add_common(bp)
    bp.add_argument("--sizes", default="1,4,16,64", help="population sizes N, comma-separated")
    bp.add_argument("--steps", type=int, default=300, help="decisions per agent measured")
    bp.add_argument("--warmup", type=int, default=50, help="decisions per agent before the clock starts")
    bp.add_argument("--worlds", default="inline", choices=["process", "inline"], help="as `population --worlds`")
    bp.add_argument("--threads", type=int, default=None, help="the population's threads: numpy BLAS or torch (default as `population`)")
    bp.add_argument("--lone-jobs", type=int, default=2, help="lone runs at a time (default 2: the 2 cores)")
    bp.add_argument("--ray-size", type=int, default=16, help="the N whose record carries Ray's selection round (0: none)")
    bp.add_argument("--select-every", type=int, default=100, help="decisions between Ray selection rounds")
    bp.add_argument("--json", action="store_true")
    bs = bsub.add_parser("selection", help="populations with and without selection at the same agent-steps: "
                                           "take-off, and the best and median agents frozen beside the baselines")
    _add_common(bs)
    bs.add_argument("--size", type=int, default=8, help="agents per population")
    bs.add_argument("--steps", type=int, default=8000, help="decisions per agent")
    bs.add_argument("--seeds", default="1,2,3")
    bs.add_argument("--select", default="pbt", choices=["pbt", "tournament"], help="the method compared with none")
    bs.add_argument("--select-every", type=int, default=500)
    bs.add_argument("--lives", type=int, default=20, help="lives per frozen evaluation")
    bs.add_argument("--cap", type=int, default=None, help="body steps after which a life is censored")
    bs.add_argument("--take-off", type=float, default=1000.0, help="body steps the median agent's score must reach")
    bs.add_argument("--worlds", default="inline", choices=["process", "inline"])
    bs.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1), help="processes for the evaluations")
    bs.add_argument("--out", default=None, help="directory for the runs and results.json")
    bs.add_argument("--json", action="store_true")
    bk = bsub.add_parser("soak", help="resident memory over a long --sim run: samples, slope after warm-up, peak")
    _add_common(bk)
    bk.add_argument("--steps", type=int, default=100_000, help="decisions to run")
    bk.add_argument("--every", type=int, default=10_000, help="sample RSS every N decisions")
    bk.add_argument("--json", action="store_true")
    bw = bsub.add_parser("all", help="the README's figures table: runs each figure's own command, prints the table")
    bw.add_argument("--soak-steps", type=int, default=None, help="decisions for the soak row (default: its "
                    "command's 100000; fewer for a quick look, and the table then shows the command that ran)")
    bw.add_argument("--write-readme", metavar="README.md", default=None,
                    help="put the table between the '<!-- bench all: begin/end -->' markers of this file")
    bw.add_argument("--json", action="store_true")
    bv = bsub.add_parser("survival", help="learn per seed, then frozen evaluation against random and stationary")
    _add_common(bv)
    bv.add_argument("--body", default="arena", help="body to learn and evaluate in: arena (default) | godot | "
                    "gym:ENV_ID (learning, evaluation and baselines all meet the same world)")
    bv.add_argument("--seeds", default="1,2,3,4,5")
    bv.add_argument("--steps", type=int, default=50_000)
    bv.add_argument("--lives", type=int, default=30)
    bv.add_argument("--cap", type=int, default=None)
    bv.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1))
    bv.add_argument("--out", default=None, help="directory for the learned runs and the results JSON")
    bv.add_argument("--label", default=None, help="name for this configuration in the table (e.g. an ablation)")
    bv.add_argument("--json", action="store_true")

    bt = bsub.add_parser("adapt", help="a world that changes: learn in A, the world changes to B, keep learning; "
                         "frozen evaluations in B against a fresh learner, random and stationary")
    _add_common(bt)
    bt.add_argument("--change", required=True, help="the change: swap-colours | fast-hazards | dark (the arena's)")
    bt.add_argument("--body", default="arena", help="a body that can change its world (default: arena)")
    bt.add_argument("--seeds", default="1,2,3,4,5")
    bt.add_argument("--steps-a", type=int, default=25_000, help="decisions learned in world A")
    bt.add_argument("--steps-b", type=int, default=25_000, help="decisions learned in world B after the change")
    bt.add_argument("--eval-every", type=int, default=None, help="save and evaluate the brains every N decisions in "
                    "B (default: only at the end of B)")
    bt.add_argument("--lives", type=int, default=30)
    bt.add_argument("--cap", type=int, default=None)
    bt.add_argument("--greedy", action="store_true", help="evaluate with argmax actions instead of sampling")
    bt.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1))
    bt.add_argument("--out", default=None, help="directory for the runs, brains and results JSON")
    bt.add_argument("--json", action="store_true")
    bc = bsub.add_parser("console", help="control-loop rate with and without a console flooded with commands")
    _add_common(bc)
    bc.add_argument("--steps", type=int, default=400, help="decisions per measurement")
    bc.add_argument("--repeats", type=int, default=3, help="measurements per mode (alternated)")
    bc.add_argument("--json", action="store_true")
    bw2 = bsub.add_parser("view", help="what the live view (and --record) cost the learning loop: steps/s with and "
                          "without a page watching, in alternated pairs")
    _add_common(bw2)
    bw2.add_argument("--steps", type=int, default=600, help="decisions per measurement")
    bw2.add_argument("--repeats", type=int, default=3, help="measurements per mode (alternated)")
    bw2.add_argument("--clients", type=int, default=1, help="pages reading the event stream, each its own process")
    bw2.add_argument("--chunk", type=int, default=100, help="decisions per chunk of the interleaved figure")
    bw2.add_argument("--chunk-pairs", type=int, default=20, help="on/off chunk pairs per rider (0: no interleaved figure)")
    bw2.add_argument("--json", action="store_true")
    bp = bsub.add_parser("peer", help="a peer beside our rule: stable-baselines3 PPO with a +1-per-step-alive "
                         "reward, same worlds, same body steps, same frozen harness (pip install -e '.[peers]')")
    _add_common(bp)
    bp.add_argument("--peer", choices=("ppo",), default="ppo")
    bp.add_argument("--seeds", default="1,2,3")
    bp.add_argument("--steps", type=int, default=50_000, help="our decisions; PPO then gets the body steps ours lived "
                    "(ignored with --body-steps)")
    bp.add_argument("--body-steps", type=int, default=None, help="body steps for both learners")
    bp.add_argument("--lives", type=int, default=30)
    bp.add_argument("--cap", type=int, default=None)
    bp.add_argument("--jobs", type=int, default=max(1, os.cpu_count() or 1))
    bp.add_argument("--out", default=None, help="directory for both learners' runs and the results JSON")
    bp.add_argument("--ppo-n-steps", type=int, default=None, help="PPO's rollout length (SB3 default 2048)")
    bp.add_argument("--ppo-lr", type=float, default=None, help="PPO's learning rate (SB3 default 3e-4)")
    bp.add_argument("--ppo-ent-coef", type=float, default=None, help="PPO's entropy coefficient (SB3 default 0.0)")
    bp.add_argument("--only-peer", action="store_true", help="train and evaluate PPO alone (the settings search; "
                    "needs --body-steps)")
    bp.add_argument("--json", action="store_true")
    bg = bsub.add_parser("godot", help="Godot world steps/s and bytes per step, hex vs binary frames")
    _add_common(bg)
    bg.add_argument("--steps", type=int, default=300)
    bg.add_argument("--godot-project", default=None, metavar="DIR")
    bg.add_argument("--json", action="store_true")

    br = bsub.add_parser("rectify", help="stereo rectification cost per frame in the camera pipeline (calibration/)")
    br.add_argument("--reads", type=int, default=300)
    br.add_argument("--json", action="store_true")

    bd = bsub.add_parser("bad-day", help="a day in the life of the robot service on the virtual MCU: reboots, "
                         "garbage, silence, unplugs, console use, SIGTERM/SIGKILL restarts; prints the figures")
    bd.add_argument("--minutes", type=float, default=0.0,
                    help="keep cycling faults and restarts this long (0: one cycle each of SIGTERM, SIGKILL, SIGTERM)")
    bd.add_argument("--short", action="store_true", help="processes after the first run a short cycle (the CI test)")
    bd.add_argument("--seed", type=int, default=0)
    bd.add_argument("--out", default=None, help="work directory (board events, runtime logs, run dir, bad-day.json)")
    bd.add_argument("--json", action="store_true")



def cmd_bench_rectify(args) -> int:
    _positive("--reads", args.reads)
    return _print_figures(command("bench-rectify")(None, args), args.json)


def cmd_bench_godot(args) -> int:
    _positive("--steps", args.steps)
    return _print_figures(command("bench-godot")(load_config(args), args), args.json)


def cmd_bench_bad_day(args) -> int:
    if args.minutes < 0:
        raise UsageError(f"--minutes must be >= 0, got {args.minutes}")
    res = command("bench-bad-day")(args)
    _print_figures(res, args.json)
    return 0 if not res["violations"] else 1


def cmd_bench_console(args) -> int:
    _positive("--steps", args.steps)
    _positive("--repeats", args.repeats)
    from .console.bench import bench_console

    return _print_figures(bench_console(load_config(args), args.steps, args.repeats, args.seed), args.json)


def cmd_bench_peer(args) -> int:
    for name in ("--steps", "--body-steps", "--lives", "--cap", "--jobs", "--ppo-n-steps"):
        _positive(name, getattr(args, name[2:].replace("-", "_")))
    if args.ppo_lr is not None and not args.ppo_lr > 0:
        raise UsageError(f"--ppo-lr must be > 0, got {args.ppo_lr}")
    if args.ppo_ent_coef is not None and args.ppo_ent_coef < 0:
        raise UsageError(f"--ppo-ent-coef must be >= 0, got {args.ppo_ent_coef}")
    args.seed_list = _seeds(args.seeds)
    try:
        res = command("bench-peer")(load_config(args), args)
    except ValueError as e:
        raise UsageError(str(e)) from None
    print(dumps(res) if args.json else "")
    return 0


def cmd_bench_view(args) -> int:
    for name in ("--steps", "--repeats", "--clients", "--chunk"):
        _positive(name, getattr(args, name[2:]))
    if args.chunk_pairs < 0:
        raise UsageError(f"--chunk-pairs must be >= 0, got {args.chunk_pairs}")
    from .view.bench import bench_view

    return _print_figures(bench_view(load_config(args), args.steps, args.repeats, args.seed, args.clients, args.chunk,
                                     args.chunk_pairs), args.json)


def _print_figures(res: dict, as_json: bool) -> int:
    print(dumps(res) if as_json else "\n".join(f"{k}: {v}" for k, v in res.items()))
    return 0


def cmd_bench_arena(args) -> int:
    _positive("--steps", args.steps)
    from .bench import bench_arena

    return _print_figures(bench_arena(load_config(args), args.steps, args.seed), args.json)


def cmd_bench_loop(args) -> int:
    _positive("--steps", args.steps)
    if args.warmup < 0:
        raise UsageError(f"--warmup must be >= 0, got {args.warmup}")
    from .bench_loop import bench_loop

    return _print_figures(bench_loop(load_config(args), args.steps, args.warmup, args.seed), args.json)


def cmd_bench_population(args) -> int:
    for name in ("--steps", "--lone-jobs", "--select-every"):
        _positive(name, getattr(args, name[2:].replace("-", "_")))
    if args.warmup < 0 or args.ray_size < 0:
        raise UsageError("--warmup and --ray-size must be >= 0")
    try:
        sizes = [int(x) for x in args.sizes.split(",") if x.strip()]
    except ValueError:
        raise UsageError(f"--sizes: expected comma-separated integers, got {args.sizes!r}") from None
    if not sizes or min(sizes) < 1:
        raise UsageError("--sizes: every N must be >= 1")
    if args.ray_size and args.ray_size in sizes and args.ray_size < 2:
        raise UsageError("--ray-size: needs N >= 2 (two Ray actors)")
    from .population.bench import bench_population

    recs = bench_population(load_config(args), sizes, args.steps, args.warmup, args.seed, args.worlds, args.threads,
                            args.lone_jobs, args.ray_size, args.select_every)
    print(dumps(recs) if args.json else "\n".join(dumps(r) for r in recs))
    return 0


def cmd_bench_selection(args) -> int:
    for name in ("--size", "--steps", "--select-every", "--lives", "--jobs"):
        _positive(name, getattr(args, name[2:].replace("-", "_")))
    if args.size < 2:
        raise UsageError("--size: selection needs at least 2 agents")
    from .population.selection_bench import bench_selection

    res = bench_selection(load_config(args), args.size, args.steps, _seeds(args.seeds), args.select,
                          args.select_every, args.lives, args.cap, args.take_off, args.out, args.worlds, args.jobs)
    print(dumps(res) if args.json else "")
    return 0


def cmd_bench_soak(args) -> int:
    _positive("--steps", args.steps)
    _positive("--every", args.every)
    from .bench_loop import bench_soak

    return _print_figures(bench_soak(load_config(args), args.steps, args.every, args.seed), args.json)


def cmd_bench_all(args) -> int:
    if args.soak_steps is not None:
        _positive("--soak-steps", args.soak_steps)
    from .bench_all import bench_all, markdown, write_readme

    if args.write_readme and not os.path.isfile(args.write_readme):
        raise UsageError(f"--write-readme {args.write_readme}: no such file")
    res = bench_all(args.soak_steps)
    if args.write_readme:
        write_readme(args.write_readme, res)
    print(dumps(res) if args.json else markdown(res))
    return 0


def cmd_bench_step(args) -> int:
    _positive("--steps", args.steps)
    if args.backend == "onnx":
        if not args.policy:
            raise UsageError("--backend onnx needs --policy brain.onnx (make one with `edge-runtime export RUN_DIR "
                             "--out brain.onnx`)")
        from .evaluate import PolicyError
        from .onnx_policy import bench_onnx_step

        try:
            return _print_figures(bench_onnx_step(load_config(args), args.policy, args.steps, args.warmup, args.seed),
                                  args.json)
        except PolicyError as e:
            raise UsageError(str(e)) from None
    if args.policy:
        raise UsageError("--policy goes with --backend onnx (the torch step bench measures a fresh brain)")
    from .bench import bench_step

    # the flag names the learner measured, whatever the config's model.backend (auto included) says
    args.set = list(args.set or []) + [f"model.backend={args.backend}"]
    cfg = load_config(args)
    if args.backend == "torch":
        return _print_figures(bench_step(cfg, args.steps, args.warmup, args.seed), args.json)
    return _print_figures(_bench_step_beside_torch(args, cfg), args.json)


def _bench_step_beside_torch(args, cfg) -> dict:
    """The ort or numpy backend in this process, then the torch backend on the same config in a child process:
    each peak RSS is its own process's, and both come from one run."""
    import json
    import subprocess

    from .bench import bench_step

    res = bench_step(cfg, args.steps, args.warmup, args.seed)
    cmd = [sys.executable, "-m", "edge_runtime.cli", "bench", "step", "--backend", "torch", "--json", "--steps",
           str(args.steps), "--warmup", str(args.warmup), "--seed", str(args.seed)]
    cmd += ["--config", args.config] if args.config else []
    for item in args.set or []:
        if not item.startswith(("model.backend=", "model.ort_artifacts=")):
            cmd += ["--set", item]
    cmd += ["--rule", args.rule] if args.rule else []  # (the child's --backend torch sets model.backend)
    out = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        raise UsageError(f"bench step: the torch backend's run failed: {out.stderr.strip()[-400:]}")
    res["torch"] = {k: v for k, v in json.loads(out.stdout).items()
                    if k in ("forward_ms", "learn_ms", "step_ms", "peak_rss_mb", "build_s")}
    t = res["torch"]
    res["learn_ms_vs_torch"] = round(res["learn_ms"] / t["learn_ms"], 3)
    res["forward_ms_vs_torch"] = round(res["forward_ms"] / t["forward_ms"], 3)
    res["peak_rss_vs_torch"] = round(res["peak_rss_mb"] / t["peak_rss_mb"], 3)
    return res


def _seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise UsageError(f"--seeds {text!r}: expected a comma-separated list of integers") from None
    if not seeds:
        raise UsageError("--seeds: at least one seed")
    return seeds


def cmd_bench_adapt(args) -> int:
    for name in ("--steps-a", "--steps-b", "--eval-every", "--lives", "--cap", "--jobs"):
        _positive(name, getattr(args, name[2:].replace("-", "_")))
    seeds = _seeds(args.seeds)
    every = args.eval_every or args.steps_b
    cfg = load_config(args)
    from .adapt import bench_adapt
    from .bodies import kind
    from .evaluate import PolicyError

    kind(args.body)
    try:
        res = bench_adapt(cfg, args.change, seeds, args.steps_a, args.steps_b, every, args.lives, args.cap, args.jobs,
                          args.out, body=args.body, greedy=args.greedy)
    except (PolicyError, ValueError) as e:
        raise UsageError(str(e)) from None
    print(dumps(res) if args.json else "")
    return 0


def cmd_bench_survival(args) -> int:
    _positive("--steps", args.steps)
    _positive("--lives", args.lives)
    _positive("--jobs", args.jobs)
    seeds = _seeds(args.seeds)
    rules = (args.rule or "survival").split(",")
    cfg = load_config(argparse.Namespace(**{**vars(args), "rule": None}))
    for r in rules:
        Config.from_dict({**cfg.to_dict(), "rule": {**cfg.to_dict()["rule"], "name": r}})  # validates the names
    from .bench import bench_survival
    from .bodies import kind
    from .evaluate import PolicyError

    kind(args.body)  # an unknown body name fails here, in one line
    try:
        res = bench_survival(cfg, rules, seeds, args.steps, args.lives, args.cap, args.jobs, args.out, args.label,
                             body=args.body)
    except PolicyError as e:
        raise UsageError(str(e)) from None
    print(dumps(res) if args.json else "")
    return 0


BENCH_COMMANDS = {"arena": cmd_bench_arena, "step": cmd_bench_step, "loop": cmd_bench_loop, "soak": cmd_bench_soak,
                  "population": cmd_bench_population, "selection": cmd_bench_selection,
                  "all": cmd_bench_all, "survival": cmd_bench_survival,
                  "adapt": cmd_bench_adapt, "console": cmd_bench_console, "view": cmd_bench_view, "peer": cmd_bench_peer, "godot": cmd_bench_godot,
                  "rectify": cmd_bench_rectify,
                  "bad-day": cmd_bench_bad_day}
