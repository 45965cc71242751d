"""Battery and touch calibration: from the MCU's raw readings to what the body feels.

    edge-runtime calibrate battery --log discharge.jsonl --out battery.toml
    edge-runtime calibrate battery --config robot.toml --record discharge.jsonl [--minutes M] --out battery.toml
    edge-runtime calibrate touch   --config robot.toml --seconds 5 [--k 4] --out touch.toml   (or --log idle.jsonl)

Battery. A discharge log holds the MCU's battery reading (mV) over time, from a full charge until the board's
low-battery cut-off (or until the log ends), under a steady load. The energy left at each moment is the share
of the discharge still to come: the time share, or, when the log has `current_ma`, the charge share (coulomb
counting). The readings are smoothed (a running median) and the energy is fitted as a monotone function of
the reading (pool-adjacent-violators: a higher voltage never means less energy), then summarised as a
piecewise-linear curve of `knots` points: `robot.energy_curve = [[mV, energy], ...]`. The curve maps what the
board *reports*, so an ADC's gain and offset errors are calibrated away with the pack's own curve.

Touch. With nothing touching the robot, each channel's readings give its baseline and noise; the threshold is
baseline + k * noise (k = 4 by default: an idle channel crosses it about once in 30,000 readings).
`robot.touch_threshold = [...]`: at or below it a channel reads 0, above it rises linearly to 1 at 255.

Log format (what --record writes; one JSON object per line): {"t": seconds, "battery_mv": int, "touch": [...],
"flags": int}, optionally "current_ma" (the pack's total current, mA). A CSV with a header `t,battery_mv[,current_ma]` is read too.
"""
from __future__ import annotations

import csv
import json
import time
from pathlib import Path

import numpy as np

from hardware import protocol as P


class SensorCalibrationError(ValueError):
    """Not enough (or not the right) data to calibrate from; the message says what is missing."""


# ------------------------------------------------------------------ logs
def read_log(path: str | Path) -> list[dict]:
    p = Path(path)
    if not p.exists():
        raise SensorCalibrationError(f"--log {p}: no such file")
    text = p.read_text()
    rows = []
    if p.suffix.lower() == ".csv":
        for i, r in enumerate(csv.DictReader(text.splitlines())):
            try:
                row = {"t": float(r["t"]), "battery_mv": float(r["battery_mv"])}
                if r.get("current_ma") not in (None, ""):
                    row["current_ma"] = float(r["current_ma"])
            except (KeyError, TypeError, ValueError) as e:
                raise SensorCalibrationError(f"--log {p}: line {i + 2}: needs t and battery_mv ({e})") from None
            rows.append(row)
        return rows
    for i, line in enumerate(text.splitlines()):
        if not line.strip():
            continue
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError as e:
            raise SensorCalibrationError(f"--log {p}: line {i + 1}: not JSON ({e})") from None
    return rows


def record(link, seconds: float, out: str | Path | None = None, until_low_battery: bool = False,
           progress=None) -> list[dict]:
    """Every new sensor report of a started McuLink for `seconds` (or until the board flags a low battery)."""
    rows = []
    f = open(out, "w", buffering=1) if out else None
    t0 = last = time.monotonic()
    try:
        while time.monotonic() - t0 < seconds:
            rep = link.wait_report(last, timeout=1.0)
            if rep is None:
                continue
            last = rep.t
            m = rep.msg
            # (no current_ma: the board reports its motors' currents, not the pack's; motors are off here)
            row = {"t": round(rep.t - t0, 4), "battery_mv": m.battery_mv, "touch": list(m.touch), "flags": m.flags}
            rows.append(row)
            if f:
                f.write(json.dumps(row) + "\n")
            if progress and len(rows) % 500 == 0:
                progress(row)
            if until_low_battery and m.flags & P.FLAG_LOW_BATTERY:
                break
    finally:
        if f:
            f.close()
    return rows


# ------------------------------------------------------------------ battery
def _running_median(x: np.ndarray, k: int) -> np.ndarray:
    if k <= 1 or len(x) < k:
        return x
    pad = k // 2
    xp = np.pad(x, pad, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(xp, k), axis=1)


def _isotonic(y: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Pool adjacent violators: the non-decreasing fit of y (in this order) closest in weighted squares."""
    vals, wts, sizes = [], [], []
    for v, ww in zip(y, w):
        vals.append(v)
        wts.append(ww)
        sizes.append(1)
        while len(vals) > 1 and vals[-2] > vals[-1]:
            v2, w2, s2 = vals.pop(), wts.pop(), sizes.pop()
            vals[-1] = (vals[-1] * wts[-1] + v2 * w2) / (wts[-1] + w2)
            wts[-1] += w2
            sizes[-1] += s2
    return np.repeat(vals, sizes)


def fit_energy_curve(rows: list[dict], knots: int = 11, smooth: int = 25) -> list[list[float]]:
    """[[mV, energy], ...] with mV increasing and energy non-decreasing, from a discharge log (see the module doc)."""
    rows = [r for r in rows if "battery_mv" in r and "t" in r]
    if len(rows) < max(50, 3 * knots):
        raise SensorCalibrationError(f"a discharge log needs at least {max(50, 3 * knots)} readings, got {len(rows)}")
    t = np.array([r["t"] for r in rows], float)
    mv = np.array([r["battery_mv"] for r in rows], float)
    if np.any(np.diff(t) < 0):
        raise SensorCalibrationError("the log's times go backwards: one discharge, in order, is needed")
    if all("current_ma" in r for r in rows):
        i = np.array([r["current_ma"] for r in rows], float)
        q = np.concatenate([[0.0], np.cumsum(0.5 * (i[1:] + i[:-1]) * np.diff(t))])  # charge drawn so far
        used = q / q[-1] if q[-1] > 0 else (t - t[0]) / (t[-1] - t[0])
    else:
        used = (t - t[0]) / (t[-1] - t[0])
    energy = 1.0 - used
    mv_s = _running_median(mv, smooth)
    if mv_s.max() - mv_s.min() < 100:
        raise SensorCalibrationError(f"the battery reading only moved {mv_s.max() - mv_s.min():.0f} mV: not a "
                                     "discharge (record from full to the board's cut-off)")
    order = np.argsort(mv_s, kind="stable")
    e_fit = _isotonic(energy[order], np.ones(len(order)))
    mv_sorted = mv_s[order]
    # knots at evenly spaced energies, read off the monotone fit
    levels = np.linspace(0.0, 1.0, knots)
    out = []
    for e in levels:
        j = int(np.searchsorted(e_fit, e, side="left"))
        j = min(max(j, 0), len(mv_sorted) - 1)
        m = float(mv_sorted[j])
        if out and m <= out[-1][0]:
            continue  # the reading did not resolve this step of energy: fewer points, still monotone
        out.append([round(m, 1), round(float(e), 4)])
    if len(out) < 2:
        raise SensorCalibrationError("the fit collapsed to one point: the log does not show a discharge")
    out[0][1], out[-1][1] = 0.0, 1.0
    return out


# ------------------------------------------------------------------ touch
def fit_touch(rows: list[dict], k: float = 4.0) -> dict:
    """Per channel: baseline (mean), noise (std) and threshold (baseline + k * noise) of idle touch readings."""
    samples = [r["touch"] for r in rows if r.get("touch")]
    if len(samples) < 20:
        raise SensorCalibrationError(f"touch calibration needs at least 20 idle readings, got {len(samples)}")
    n = len(samples[0])
    if any(len(s) != n for s in samples):
        raise SensorCalibrationError("the readings do not all have the same number of touch channels")
    x = np.array(samples, float)
    base, noise = x.mean(0), x.std(0)
    thr = np.minimum(base + k * np.maximum(noise, 0.5), 254.0)
    return {"baseline": [round(float(v), 2) for v in base], "noise": [round(float(v), 2) for v in noise],
            "threshold": [round(float(v), 2) for v in thr], "k": k, "readings": len(samples)}


def robot_snippet(**robot) -> str:
    """A [robot] table to merge into the robot's config."""
    import tomli_w

    return tomli_w.dumps({"robot": robot})
