"""What a calibrated battery and calibrated touch sensors mean to the robot body (the fitting is in
calibration/sensors.py, `edge-runtime calibrate battery|touch`).

    [robot]
    energy_curve = [[6550, 0.0], [7020, 0.1], ..., [8350, 1.0]]   # filtered battery mV -> energy, monotone
    touch_threshold = [31.0, 44.5, ...]                           # per channel, raw 0..255: idle baseline + k noise

Without them the robot keeps its first mapping: energy linear from robot.empty_mv to robot.full_mv, touch = raw/255.
"""
from __future__ import annotations

import numpy as np

from edge_runtime.config import check


def check_energy_curve(curve, where: str = "robot.energy_curve") -> None:
    if not curve:
        return
    check(len(curve) >= 2 and all(len(p) == 2 for p in curve), where, "needs at least two [mV, energy] points")
    mv = [p[0] for p in curve]
    e = [p[1] for p in curve]
    check(all(b > a for a, b in zip(mv, mv[1:])), where, "mV must increase from point to point")
    check(all(b >= a for a, b in zip(e, e[1:])), where, "energy must not decrease as mV increases (monotone)")
    check(all(0.0 <= x <= 1.0 for x in e), where, "energies must be in [0, 1]")


def check_touch_threshold(thr, where: str = "robot.touch_threshold") -> None:
    check(all(0 <= t < 255 for t in thr), where, "thresholds are raw levels in [0, 255)")


def energy_from_mv(mv: float, curve) -> float:
    """Energy 0..1 of a filtered battery voltage on a calibrated curve (flat beyond its ends)."""
    pts = np.asarray(curve, float)
    return float(np.interp(mv, pts[:, 0], pts[:, 1]))


def touch_from_raw(raw: np.ndarray, threshold: np.ndarray) -> np.ndarray:
    """Raw 0..255 per channel to 0..1: nothing at or below the channel's threshold, then linear up to 255."""
    return np.clip((raw - threshold) / (255.0 - threshold), 0.0, 1.0).astype(np.float32)
