"""`edge-runtime calibrate ...`: the calibration commands (the prompts of a live capture live here, never in
the library).

    edge-runtime calibrate stereo --images DIR --board chessboard:9x6:0.025 --out stereo.toml
    edge-runtime calibrate stereo --camera-config robot.toml --captures 20 --board ... --out stereo.toml
    edge-runtime calibrate board --board chessboard:9x6:0.025 --out board.png     (the board to print)
    edge-runtime calibrate synthetic --board ... --pairs 14 --out DIR              (pairs from a known rig)
    edge-runtime calibrate battery --log discharge.jsonl --out battery.toml
    edge-runtime calibrate battery --config robot.toml --record discharge.jsonl --out battery.toml
    edge-runtime calibrate touch --config robot.toml --seconds 5 --out touch.toml
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

from .board import Board, BoardError
from .stereo import MIN_PAIRS, CalibrationFailed, calibrate_stereo, load_pairs, rectified_row_error

PROG = "edge-runtime calibrate"


def _ask(prompt: str) -> str:
    """A prompt on stderr (stdout carries the result, e.g. --json), the answer from stdin."""
    print(prompt, end="", file=sys.stderr, flush=True)
    return input()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=PROG, description="stereo and board tools (docs/calibration.md)")
    sub = p.add_subparsers(dest="what")
    st = sub.add_parser("stereo", help="calibrate the stereo pair: intrinsics, distortion, R, T, rectification")
    src = st.add_mutually_exclusive_group(required=True)
    src.add_argument("--images", metavar="DIR", help="a folder of NAME-left.png / NAME-right.png pairs")
    src.add_argument("--camera-config", metavar="ROBOT.toml", help="capture live from this config's [camera]")
    st.add_argument("--captures", type=int, default=20, help="live: pairs to capture (default 20)")
    st.add_argument("--save-captures", metavar="DIR", default=None,
                    help="live: also save the captured pairs here (default: DIR next to --out)")
    st.add_argument("--board", required=True, help="chessboard:COLSxROWS:SQUARE or charuco:COLSxROWS:SQUARE:MARKER[:DICT]")
    st.add_argument("--out", required=True, metavar="stereo.toml")
    st.add_argument("--min-pairs", type=int, default=MIN_PAIRS)
    st.add_argument("--keep-outliers", action="store_true", help="do not drop views with outlying errors")
    st.add_argument("--json", action="store_true")
    bd = sub.add_parser("board", help="write the board image to print")
    bd.add_argument("--board", required=True)
    bd.add_argument("--out", required=True, metavar="board.png")
    bd.add_argument("--px-per-square", type=int, default=200)
    sy = sub.add_parser("synthetic", help="render stereo pairs of the board through a known camera rig")
    sy.add_argument("--board", required=True)
    sy.add_argument("--pairs", type=int, default=14)
    sy.add_argument("--seed", type=int, default=0)
    sy.add_argument("--noise", type=float, default=0.0, help="std of pixel noise added (grey levels)")
    sy.add_argument("--out", required=True, metavar="DIR")
    ba = sub.add_parser("battery", help="voltage -> energy: a monotone curve from a discharge log (robot.energy_curve)")
    bsrc = ba.add_mutually_exclusive_group(required=True)
    bsrc.add_argument("--log", help="a recorded discharge (JSONL or CSV: t, battery_mv[, current_ma])")
    bsrc.add_argument("--config", metavar="ROBOT.toml", help="record live from this config's [mcu] (motors off)")
    ba.add_argument("--record", metavar="LOG.jsonl", default=None, help="live: where to write the discharge log")
    ba.add_argument("--minutes", type=float, default=600.0, help="live: stop after this long at the latest "
                    "(it stops by itself when the board flags a low battery)")
    ba.add_argument("--knots", type=int, default=11, help="points of the curve (default 11)")
    ba.add_argument("--out", required=True, metavar="battery.toml", help="a [robot] table to merge into the config")
    ba.add_argument("--json", action="store_true")
    to = sub.add_parser("touch", help="per-channel baseline, noise and threshold from idle readings (robot.touch_threshold)")
    tsrc = to.add_mutually_exclusive_group(required=True)
    tsrc.add_argument("--log", help="recorded idle readings (JSONL with touch lists)")
    tsrc.add_argument("--config", metavar="ROBOT.toml", help="record live from this config's [mcu]")
    to.add_argument("--seconds", type=float, default=5.0, help="live: idle capture length")
    to.add_argument("--k", type=float, default=4.0, help="threshold = baseline + k * noise (default 4)")
    to.add_argument("--out", required=True, metavar="touch.toml", help="a [robot] table to merge into the config")
    to.add_argument("--json", action="store_true")
    return p


def _link(cfg_path: str):
    """A started McuLink to the config's board, and the in-process virtual board behind it for port = "virtual"."""
    from edge_runtime.config import Config
    from hardware.robot import connect_mcu

    return connect_mcu(Config.load(cfg_path).section("mcu"))


def _sensors(args) -> int:
    from .sensors import SensorCalibrationError, fit_energy_curve, fit_touch, read_log, record, robot_snippet

    try:
        if args.log:
            rows = read_log(args.log)
        else:
            link, vmcu = _link(args.config)
            try:
                if args.what == "battery":
                    print(f"recording the discharge (motors off) until the board flags a low battery or "
                          f"{args.minutes:g} min{'; log: ' + args.record if args.record else ''}", file=sys.stderr)
                    rows = record(link, args.minutes * 60, args.record, until_low_battery=True,
                                  progress=lambda r: print(f"  t {r['t']:.0f} s: {r['battery_mv']} mV", file=sys.stderr))
                else:
                    _ask(f"touch: take your hands off the robot, nothing touching it; Enter records {args.seconds:g} s: ")
                    rows = record(link, args.seconds)
            finally:
                link.close()
                if vmcu:
                    vmcu.close()
        if args.what == "battery":
            if args.knots < 2:
                raise SensorCalibrationError("--knots must be >= 2")
            curve = fit_energy_curve(rows, args.knots)
            Path(args.out).write_text(robot_snippet(energy_curve=curve))
            res = {"out": args.out, "readings": len(rows), "energy_curve": curve}
            text = (f"{args.out}: robot.energy_curve, {len(curve)} points from {len(rows)} readings, "
                    f"{curve[0][0]:.0f} mV (empty) .. {curve[-1][0]:.0f} mV (full); merge it into the [robot] section")
        else:
            t = fit_touch(rows, args.k)
            Path(args.out).write_text(robot_snippet(touch_threshold=t["threshold"]))
            res = {"out": args.out, **t}
            text = (f"{args.out}: robot.touch_threshold for {len(t['threshold'])} channels from {t['readings']} idle "
                    f"readings (baseline + {args.k:g} x noise): "
                    + ", ".join(f"{b:.0f}+-{n:.1f} -> {th:.0f}" for b, n, th in zip(t["baseline"], t["noise"], t["threshold"])))
    except (SensorCalibrationError, ConnectionError) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    print(json.dumps(res) if args.json else text)
    return 0


def _capture(cfg_path: str, board: Board, n: int, save: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Live pairs from the configured cameras at their capture size, one per Enter (q ends early)."""
    from edge_runtime.config import Config
    from hardware.camera_backends import BACKENDS

    cam_cfg = Config.load(cfg_path).section("camera")
    backend = BACKENDS[cam_cfg.backend](cam_cfg)
    backend.open()
    save.mkdir(parents=True, exist_ok=True)
    pairs: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    try:
        while len(pairs) < n:
            answer = _ask(f"pair {len(pairs) + 1}/{n}: hold the board still in view of both cameras, a new angle "
                           "and distance each time; Enter captures, q stops: ")
            if answer.strip().lower() == "q":
                break
            raw = backend.read()
            a = board.find(cv2.cvtColor(raw.left, cv2.COLOR_BGR2GRAY))
            b = board.find(cv2.cvtColor(raw.right, cv2.COLOR_BGR2GRAY))
            if a is None or b is None:
                eye = "either eye" if a is None and b is None else "the left eye" if a is None else "the right eye"
                print(f"  board not found in {eye}: not kept, try again", file=sys.stderr)
                continue
            name = f"pair-{len(pairs):03d}"
            cv2.imwrite(str(save / f"{name}-left.png"), raw.left)
            cv2.imwrite(str(save / f"{name}-right.png"), raw.right)
            pairs[name] = (raw.left, raw.right)
            print(f"  kept {name} ({len(a[0])} and {len(b[0])} corners)", file=sys.stderr)
    finally:
        backend.close()
    return pairs


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.what is None:
        _parser().print_help()
        return 2
    if args.what in ("battery", "touch"):
        return _sensors(args)
    try:
        board = Board.parse(args.board)
        if args.what == "board":
            img = board.image(args.px_per_square)
            cv2.imwrite(args.out, img)
            print(f"{args.out}: {img.shape[1]}x{img.shape[0]} px; print at 100% and measure one square: it must be "
                  f"{board.square * 1000:g} mm (or pass the size you measured)")
            return 0
        if args.what == "synthetic":
            from .synthetic import StereoRig, stereo_pairs, write_pairs

            files = write_pairs(args.out, stereo_pairs(board, StereoRig(), args.pairs, args.seed, args.noise))
            print(f"{args.out}: {len(files) // 2} pairs")
            return 0
        if args.min_pairs < 1 or args.captures < 1:
            raise CalibrationFailed("--min-pairs and --captures must be >= 1")
        if args.images:
            pairs = load_pairs(args.images)
        else:
            save = Path(args.save_captures or Path(args.out).with_suffix("").as_posix() + "-captures")
            pairs = _capture(args.camera_config, board, args.captures, save)
        cal = calibrate_stereo(pairs, board, args.min_pairs, drop_outliers=not args.keep_outliers)
        cal.save(args.out)
    except (BoardError, CalibrationFailed) as e:
        print(f"{PROG}: error: {e}", file=sys.stderr)
        return 2
    used = [v["name"] for v in cal.views if v["used"]]
    rows = rectified_row_error(cal, {n: pairs[n] for n in used}, board)
    dropped = [v["name"] for v in cal.views if not v["used"]]
    summary = {"out": args.out, "image_size": list(cal.image_size), "rms_px": round(cal.rms, 4),
               "rms_left_px": round(cal.rms_left, 4), "rms_right_px": round(cal.rms_right, 4),
               "baseline_m": round(cal.baseline_m, 5), "fx_left": round(float(cal.m["K1"][0, 0]), 2),
               "fx_right": round(float(cal.m["K2"][0, 0]), 2), "rectified_rows_max_px": round(rows["max_px"], 4),
               "rectified_rows_rms_px": round(rows["rms_px"], 4), "pairs_used": len(used), "dropped_outliers": dropped,
               "failed": cal.failed}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"{args.out}: RMS reprojection error {cal.rms:.3f} px (left {cal.rms_left:.3f}, right {cal.rms_right:.3f}) "
              f"over {len(used)} pairs; baseline {cal.baseline_m * 1000:.1f} mm; fx {summary['fx_left']} / "
              f"{summary['fx_right']} px at {cal.image_size[0]}x{cal.image_size[1]}; rectified, the board's corners lie "
              f"on the same row in both eyes to {rows['max_px']:.2f} px (RMS {rows['rms_px']:.2f})")
        for v in cal.views:
            print(f"  {v['name']}: left {v['left_px']:.3f} px, right {v['right_px']:.3f} px"
                  + ("" if v["used"] else "  (dropped: outlier)"))
        for f in cal.failed:
            print(f"  {f} (not used)")
        if cal.rms > 1.0:
            print("  warning: RMS above 1 px: check the square size, focus and that the board is flat", file=sys.stderr)
    return 0
