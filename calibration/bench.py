"""`edge-runtime bench rectify`: what rectification costs per stereo frame in the camera pipeline.

A stereo calibration is made from synthetic pairs of a known rig (calibration/synthetic.py) at the capture
size; then the same replayed captures are read through StereoCamera at the eye size, once without and once
with `camera.calibration`, alternating, and the median time per read() is compared.
"""
from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import cv2

from hardware.camera import CameraConfig, StereoCamera
from hardware.camera_backends import BACKENDS

from .board import Board
from .stereo import calibrate_stereo
from .synthetic import StereoRig, stereo_pairs


def bench_rectify(eye_hw: tuple[int, int] = (48, 64), capture: tuple[int, int] = (640, 480), reads: int = 300) -> dict:
    board = Board.parse("chessboard:9x6:0.025")
    rig = StereoRig(size=capture)
    pairs = stereo_pairs(board, rig, 8, seed=3)
    with tempfile.TemporaryDirectory() as d:
        cal = calibrate_stereo({f"p{i}": p for i, p in enumerate(pairs)}, board)
        cal_path = Path(d) / "stereo.toml"
        cal.save(cal_path)
        for side, k in (("left", 0), ("right", 1)):
            (Path(d) / side).mkdir()
            for i, p in enumerate(pairs):
                cv2.imwrite(str(Path(d) / side / f"{i:03d}.png"), cv2.cvtColor(p[k], cv2.COLOR_GRAY2BGR))
        times = {"plain": [], "rectified": []}
        cams = {}
        for mode in times:
            cfg = CameraConfig(backend="replay", left=str(Path(d) / "left"), right=str(Path(d) / "right"),
                               stale_limit=10**6, calibration=str(cal_path) if mode == "rectified" else "")
            cams[mode] = StereoCamera(BACKENDS["replay"](cfg), eye_hw, cfg).open()
        try:
            for i in range(reads + 20):
                for mode, cam in cams.items():
                    t = time.perf_counter()
                    cam.read()
                    if i >= 20:
                        times[mode].append(time.perf_counter() - t)
        finally:
            for cam in cams.values():
                cam.close()
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    return {"capture": list(capture), "eye_hw": list(eye_hw), "reads": reads,
            "read_ms_plain": round(med["plain"], 3), "read_ms_rectified": round(med["rectified"], 3),
            "rectify_ms_per_stereo_frame": round(med["rectified"] - med["plain"], 3),
            "calibration_rms_px": round(cal.rms, 4)}


def bench_command(cfg, args) -> dict:
    return bench_rectify(reads=args.reads)
