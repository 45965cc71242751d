"""The `edge-runtime` command.

    edge-runtime --sim [--steps N] [--seed S] [--rule NAME] [--config FILE.toml] [--run-dir DIR]
    edge-runtime run --config FILE.toml [--steps N] ...
    edge-runtime eval --policy random|stationary|oracle|RUN_DIR|WEIGHTS [--body NAME] --lives N --seed S [--json]
    edge-runtime population --size N --steps S [--select pbt|tournament|none] [--ray auto|ADDRESS] ...
    edge-runtime bench arena|step|loop|soak|population|selection|survival|adapt|console|godot|bad-day [--json] ...

Bad arguments and bad config files print one line naming the problem and exit 2.
"""
from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

from .bodies import BodyError, choose, command, make_body
from .cli_bench import BENCH_COMMANDS, add_bench_parsers
from .cli_common import Parser, UsageError, _add_common, _positive, load_config
from .cli_export import cmd_export
from .config import Config, ConfigError
from .jsonout import dumps

PROG = "edge-runtime"
log = logging.getLogger("edge_runtime")


def build_parser() -> Parser:
    p = Parser(prog=PROG, description="On-device learning runtime: a MobileNetV3 agent that learns every step from what its body feels.")
    sub = p.add_subparsers(dest="cmd", parser_class=Parser)

    r = sub.add_parser("run", help="run a body with learning on (the robot, or --sim for the built-in arena)")
    _add_common(r)
    r.add_argument("--sim", action="store_true", help="the built-in arena on this machine")
    r.add_argument("--body", default=None, help="body to run: arena (default) | robot | godot | gym:ENV_ID "
                   "(the installed body kinds)")
    r.add_argument("--godot-project", default=None, metavar="DIR",
                   help="with --body godot: a Godot project directory or exported game (default: the bundled arena)")
    r.add_argument("--steps", type=int, default=None, help="decisions to learn for (default: until Ctrl-C)")
    r.add_argument("--run-dir", default=None, help="where to write config, metrics and weights (default: runs/<time>)")
    r.add_argument("--no-progress", action="store_true")
    r.add_argument("--resume", default=None, metavar="RUN_DIR",
                   help="continue the run in RUN_DIR from its newest valid checkpoint (its config.toml unless --config)")
    r.add_argument("--continue", dest="cont", action="store_true",
                   help="with --run-dir: continue from its newest valid checkpoint if there is one, else move what is "
                        "there aside (DIR.old-<time>) and start fresh (what the service does, so a restart keeps "
                        "what the robot learned)")
    r.add_argument("--fresh", action="store_true",
                   help="with --run-dir: if DIR holds a run, move it aside to DIR.old-<time> and start a new brain "
                        "(without --fresh or --continue an existing run is never touched)")
    r.add_argument("--policy", default=None, metavar="brain.onnx",
                   help="act with an exported brain through ONNX Runtime: no learning, torch never imported")
    r.add_argument("--greedy", action="store_true", help="with --policy: argmax actions instead of sampling")
    r.add_argument("--console", default=None, metavar="DEVICE|stdio",
                   help="serve the debug console on a serial device (/dev/ttyGS0, a pty...) or on stdin/stdout")
    r.add_argument("--view", nargs="?", const="127.0.0.1:8765", default=None, metavar="[HOST:]PORT",
                   help="serve the live view (eyes, body, intentions, lives) as a web page; alone: 127.0.0.1:8765 "
                        "(this machine only); a host other than loopback needs --view-token")
    r.add_argument("--view-token", default=None, metavar="TOKEN",
                   help="the secret the page is opened with (http://HOST:PORT/?token=TOKEN); required off loopback")
    r.add_argument("--record", default=None, metavar="FILE.rrd",
                   help="record eyes, body and output regions of every decision for the rerun viewer "
                        "(pip install -e '.[record]')")

    e = sub.add_parser("eval", help="frozen evaluation of a policy over N lives")
    _add_common(e)
    e.add_argument("--policy", required=True, help="random | stationary | oracle | RUN_DIR | weights file | "
                   "brain.onnx (acted with through ONNX Runtime, torch never imported)")
    e.add_argument("--body", default=None, help="body to evaluate in: arena | godot | gym:ENV_ID | ... "
                   "(default: the one the config's sections select, else the arena)")
    e.add_argument("--lives", type=int, default=30)
    e.add_argument("--cap", type=int, default=None, help="body steps after which a life is censored")
    e.add_argument("--greedy", action="store_true", help="argmax actions instead of sampling (brains only)")
    e.add_argument("--json", action="store_true")

    x = sub.add_parser("export", help="write a learned brain as one ONNX model (docs: edge_runtime/export_onnx.py), "
                       "or ONNX Runtime's training graphs for model.backend = ort (--training DIR)")
    x.add_argument("src", nargs="?", metavar="RUN_DIR|WEIGHTS", help="a run directory, weights.npz or .pt, or a checkpoint "
                   "file (with --training: optional, else the model comes from --config/--set and --body)")
    x.add_argument("--out", metavar="brain.onnx", help="the frozen brain as one ONNX model")
    x.add_argument("--training", metavar="DIR", help="the graphs model.backend = ort learns with (docs/onnx.md); "
                   "run with model.ort_artifacts = DIR")
    x.add_argument("--body", default=None, help="with --training and no RUN_DIR: the body whose spec the model is "
                   "built for (default arena)")
    _add_common(x)
    x.add_argument("--json", action="store_true")

    rp = sub.add_parser("report", help="one self-contained HTML report (and its plots as PNGs) of a run or bench "
                        "directory")
    rp.add_argument("src", metavar="RUN_DIR|BENCH_DIR", help="a run directory (metrics.jsonl, lives.jsonl) or the "
                    "--out directory of bench survival / bench adapt (results.json)")
    rp.add_argument("--out", default=None, metavar="report.html", help="where to write it (default: SRC/report.html); "
                    "the PNGs go beside it as <name>-<plot>.png")
    rp.add_argument("--json", action="store_true")

    add_bench_parsers(sub)

    ck = sub.add_parser("checkpoints", help="inspect the flash checkpoint store")
    cksub = ck.add_subparsers(dest="what", parser_class=Parser)
    cv = cksub.add_parser("verify", help="check both slots; exit 1 when no valid checkpoint exists")
    cv.add_argument("dir", metavar="DIR", help="a run directory or its checkpoints/ directory")
    cv.add_argument("--json", action="store_true")

    from .population.cli import add_parser as add_population_parser

    add_population_parser(sub)
    sv = sub.add_parser("install-service", help="write (or print) the systemd unit for this installation")
    sv.add_argument("--config", default=None, metavar="FILE.toml", help="the config the service runs with (default /etc/edge-runtime/robot.toml)")
    sv.add_argument("--dry-run", action="store_true", help="print the unit instead of writing it")
    sv.add_argument("--unit-dir", default="/etc/systemd/system", help="where to write edge-runtime.service")
    sv.add_argument("--watchdog", type=int, default=30, metavar="SECONDS", help="WatchdogSec= (default 30)")

    sub.add_parser("virtual-mcu", help="a virtual microcontroller behind a pty: prints its device path (see --help)")
    sub.add_parser("calibrate", help="stereo calibration and the board to print (see calibrate --help)")
    co = sub.add_parser("console", help="talk to a runtime's debug console over a serial device (Ctrl-] quits)")
    co.add_argument("device", metavar="DEVICE")
    co.add_argument("--baud", type=int, default=115200)
    co.add_argument("--cmd", dest="lines", action="append", default=[], metavar="LINE", help="send LINE, print the reply, exit (repeatable)")
    co.add_argument("--prompt", default="edge> ", help="the console's prompt (for --cmd)")
    co.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for each reply (for --cmd)")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] in (["virtual-mcu"], ["calibrate"]):  # their own options (hardware/virtual_mcu.py, calibration/cli.py)
        try:
            serve = command(argv[0])
        except BodyError as e:
            print(f"{PROG}: error: {e}", file=sys.stderr)
            return 2
        return serve(argv[1:])
    # `edge-runtime --sim ...` is `edge-runtime run --sim ...`
    if not argv or argv[0].startswith("-") and argv[0] not in ("-h", "--help"):
        argv = ["run"] + argv
    try:
        args = build_parser().parse_args(argv)
        if args.cmd is None:
            raise UsageError("a command is needed (run, eval, bench) or --sim")
        from .service import setup_logging

        setup_logging(getattr(args, "log_level", "INFO"))  # <N> syslog priorities when stderr is the journal
        if args.cmd == "run":
            return cmd_run(args)
        if args.cmd == "eval":
            return cmd_eval(args)
        if args.cmd == "export":
            return cmd_export(args)
        if args.cmd == "report":
            return cmd_report(args)
        if args.cmd == "bench":
            if args.what is None:
                raise UsageError("bench needs one of: " + ", ".join(BENCH_COMMANDS))
            return BENCH_COMMANDS[args.what](args)
        if args.cmd == "population":
            from .population.cli import cmd_population

            return cmd_population(args)
        if args.cmd == "install-service":
            return cmd_install_service(args)
        if args.cmd == "console":
            return cmd_console(args)
        if args.cmd == "checkpoints":
            if args.what is None:
                raise UsageError("checkpoints needs: verify")
            return cmd_checkpoints_verify(args)
    except UsageError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except ConfigError as e:
        print(f"{PROG}: config error: {e}", file=sys.stderr)
        return 2
    except BodyError as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    except ConnectionError as e:  # a body's link failed mid-run (Godot quit, a socket dropped)
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 1
    return 0


def cmd_checkpoints_verify(args) -> int:
    from .checkpoint import format_verify, verify

    res = verify(args.dir)
    print(dumps(res) if args.json else format_verify(res))
    return 0 if res["valid"] else 1


def cmd_run(args) -> int:
    if not args.sim and not args.config and not args.resume and not args.body:
        raise UsageError("run needs --sim (built-in arena), --body NAME or --config FILE.toml")
    if args.godot_project and args.body != "godot":
        raise UsageError("--godot-project goes with --body godot")
    _positive("--steps", args.steps)
    if args.cont and (args.resume or not args.run_dir):
        raise UsageError("--continue goes with --run-dir DIR (and not with --resume)")
    if args.fresh and (args.resume or args.cont or not args.run_dir):
        raise UsageError("--fresh goes with --run-dir DIR (and not with --resume or --continue)")
    if args.resume:
        if args.run_dir and Path(args.run_dir).resolve() != Path(args.resume).resolve():
            raise UsageError("--resume RUN_DIR continues in RUN_DIR: drop --run-dir")
        if not Path(args.resume).is_dir():
            raise UsageError(f"--resume {args.resume}: no such run directory")
        if not args.config and (Path(args.resume) / "config.toml").exists():
            args.config = str(Path(args.resume) / "config.toml")
    cfg = load_config(args)
    if args.godot_project:
        cfg = cfg.replace("godot", project=args.godot_project)
    if args.policy:
        return _run_acting(args, cfg)
    if args.greedy:
        raise UsageError("--greedy goes with --policy brain.onnx (a learning run samples its actions)")
    from .checkpoint import (CheckpointError, checkpoint_hooks, pin_backend_to_checkpoint, run_dir_holds_a_run,
                             set_run_aside)
    from .runtime import Runner

    run_dir = args.resume or args.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-{cfg.rule.name}-s{args.seed}"
    if args.cont and not cfg.section("checkpoint").enabled:
        raise UsageError("--continue needs checkpoints ([checkpoint] enabled = false leaves nothing to continue from)")
    if not args.resume:
        held = run_dir_holds_a_run(cfg, run_dir)  # None, or what is there ("a checkpoint at step 5000", ...)
        if held and not (args.cont or args.fresh):
            raise UsageError(f"--run-dir {run_dir} holds a run ({held}); add --continue to go on from its newest "
                             f"checkpoint, or --fresh to move it aside to {run_dir}.old-<time> and start a new brain")
        if held and (args.fresh or held.startswith("no valid checkpoint")):  # --continue with nothing to continue from
            where = set_run_aside(cfg, run_dir)
            log.warning("%s held a run (%s): moved aside to %s; starting fresh", run_dir, held, where)
    resume = "yes" if args.resume else ("auto" if args.cont else "no")
    cfg = pin_backend_to_checkpoint(cfg, run_dir, resume)
    body = make_body(cfg, "arena" if args.sim else args.body)
    with body:
        try:
            hooks, seed = checkpoint_hooks(cfg, body.spec, run_dir, resume=resume, seed=args.seed)
        except CheckpointError as e:
            raise UsageError(str(e)) from None
        hooks += service_hooks(args, cfg, cfg.model.input_hw)
        runner = Runner(cfg, body, seed=seed, run_dir=run_dir, progress=not args.no_progress and args.console != "stdio",
                        hooks=hooks)
        brain = runner.rule.brain
        log.info("%s: rule %s on %s, %d parameters, run dir %s", body.spec.name, runner.rule.name, runner.rule.net.name,
                 brain.n_params() if runner.rule.net.name == "numpy" else sum(p.numel() for p in brain.parameters()),
                 run_dir)
        summary = runner.run(args.steps)
    print(dumps(summary))
    if args.sim:
        _sim_report(run_dir)
    return 0


def _run_acting(args, cfg) -> int:
    """run --policy brain.onnx: the runtime loop with an actor in place of a rule (no torch, no checkpoints)."""
    if args.resume or args.cont:
        raise UsageError("--policy acts with a fixed brain: there is nothing to --resume or --continue")
    if not str(args.policy).endswith(".onnx"):
        raise UsageError(f"--policy {args.policy}: run acts only with an exported brain (brain.onnx, from `edge-runtime "
                         "export`); to learn from a run, use --resume RUN_DIR")
    from .evaluate import PolicyError
    from .onnx_policy import OnnxActor, OnnxPolicy, sense_as_is
    from .runtime import Runner

    run_dir = args.run_dir or f"runs/{time.strftime('%Y%m%d-%H%M%S')}-onnx-s{args.seed}"
    if Path(run_dir).exists() and any(Path(run_dir).iterdir()) and not args.fresh:
        raise UsageError(f"--run-dir {run_dir} is not empty; add --fresh to move it aside")
    if args.fresh and Path(run_dir).exists():
        Path(run_dir).rename(f"{run_dir}.old-{time.strftime('%Y%m%d-%H%M%S')}")
    body = make_body(cfg, "arena" if args.sim else args.body)
    with body:
        try:
            pol = OnnxPolicy(args.policy, body.spec, greedy=args.greedy)
        except PolicyError as e:
            raise UsageError(str(e)) from None
        pol.prepare(cfg)
        runner = Runner(cfg, body, seed=args.seed, run_dir=run_dir, rule=OnnxActor(pol, args.seed),
                        encoder=sense_as_is, progress=not args.no_progress and args.console != "stdio",
                        hooks=service_hooks(args, cfg, pol.hw))
        log.info("%s: acting with %s (ONNX Runtime, no learning), run dir %s", body.spec.name, args.policy, run_dir)
        summary = runner.run(args.steps)
    print(dumps(summary))
    if args.sim:
        _sim_report(run_dir)
    return 0


def service_hooks(args, cfg, eyes_hw) -> list:
    """The debug console (--console), the live view (--view), the recording (--record) and, under systemd
    ($NOTIFY_SOCKET), the notify/watchdog hook. `eyes_hw`: the size the brain sees its eyes at."""
    from .console import ConsoleHook
    from .service import ServiceHook

    hooks = []
    vc = cfg.section("view")
    if args.view_token is not None and args.view is None and not vc.listen:
        raise UsageError("--view-token goes with --view [HOST:]PORT (or a [view] listen address in the config)")
    if args.view is not None or vc.listen:
        from .view import ViewHook, ViewServer, parse_view_address
        from .view.server import ViewError

        token = args.view_token
        if token is None and vc.token_file:
            try:
                token = Path(vc.token_file).read_text().splitlines()[0].strip()
            except (OSError, IndexError) as e:
                raise ConfigError(f"view.token_file: cannot read a token from {vc.token_file} "
                                  f"({getattr(e, 'strerror', None) or 'empty file'})") from None
        try:
            host, port = parse_view_address(args.view if args.view is not None else vc.listen)
            server = ViewServer(host, port, token=token or None, max_clients=vc.max_clients,
                                send_timeout_s=vc.send_timeout_s)
            hooks.append(ViewHook(server, eyes_hw, hz=vc.hz))
        except ViewError as e:
            raise UsageError(str(e)) from None
    if args.record:
        from .record import RecordError, RecordHook

        try:
            hooks.append(RecordHook(args.record, eyes_hw))
        except RecordError as e:
            raise UsageError(str(e)) from None
    if args.console:
        try:
            hooks.append(ConsoleHook.from_config(args.console, cfg))
        except OSError as e:
            raise UsageError(f"--console {args.console}: {e.strerror or e}") from None
    sh = ServiceHook.from_env(cfg)
    if sh is not None:
        hooks.append(sh)
    return hooks


def cmd_install_service(args) -> int:
    from .service import DEFAULT_CONFIG, UNIT_NAME, find_executable, render_unit

    _positive("--watchdog", args.watchdog)
    config = str(Path(args.config).resolve()) if args.config else DEFAULT_CONFIG
    if Path(config).exists():
        Config.load(config)  # a broken config fails here, not at boot
    elif not args.dry_run:
        log.warning("%s does not exist yet: the service will fail to start until it does", config)
    unit = render_unit(find_executable(), config, watchdog_s=args.watchdog)
    if args.dry_run:
        sys.stdout.write(unit)
        return 0
    dest = Path(args.unit_dir) / UNIT_NAME
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_text(unit)
    except OSError as e:
        raise UsageError(f"cannot write {dest}: {e.strerror} (root needed for /etc/systemd/system; or --dry-run)") from None
    print(f"wrote {dest}\nnext: systemctl daemon-reload && systemctl enable --now {UNIT_NAME}")
    return 0


def cmd_console(args) -> int:
    from .console import client_commands, terminal

    _positive("--baud", args.baud)
    try:
        if args.lines:
            for reply in client_commands(args.device, args.lines, args.prompt, args.timeout, args.baud):
                print(reply)
            return 0
        return terminal(args.device, args.baud)
    except (TimeoutError, EOFError) as e:
        raise UsageError(str(e)) from None
    except OSError as e:
        raise UsageError(f"{args.device}: {e.strerror or e}") from None


def cmd_report(args) -> int:
    from .report import ReportError, report

    try:
        res = report(args.src, args.out)
    except ReportError as e:
        raise UsageError(str(e)) from None
    print(dumps(res) if args.json else f"report: {res['html']} ({len(res['pngs'])} plots as PNGs beside it)")
    return 0


def _sim_report(run_dir) -> None:
    """The end of a --sim run: its report, and where it is (a missing matplotlib is said, not hidden)."""
    from .report import ReportError, report

    try:
        res = report(run_dir)
    except ReportError as e:
        log.warning("no report written: %s", e)
        return
    log.info("report: %s", res["html"])  # (the log, not print: under systemd each stderr line carries a priority)


def cmd_eval(args) -> int:
    _positive("--lives", args.lives)
    _positive("--cap", args.cap)
    cfg = load_config(args)
    from .evaluate import PolicyError, check_mortal, evaluate, format_row, make_policy

    k, arg = choose(cfg, args.body)
    body = k.make(cfg, arg)
    try:
        check_mortal(body)
        policy = make_policy(args.policy, body.spec, greedy=args.greedy, policies=k.policies)
    except PolicyError as e:
        body.close()
        raise UsageError(str(e)) from None
    res = evaluate(policy, lambda: body, cfg, args.lives, args.seed, cap=args.cap)
    if args.json:
        print(dumps(res))
    else:
        print(format_row(res))
    return 0


if __name__ == "__main__":
    sys.exit(main())
