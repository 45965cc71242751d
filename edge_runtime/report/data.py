"""Reading what runs and benchmarks wrote, and the small statistics the plots share."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np


class ReportError(ValueError):
    pass


def read_json(path: Path):
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ReportError(f"{path}: cannot be read as JSON ({e})") from None


def read_jsonl(path: Path) -> tuple[list[dict], int]:
    """The records of a JSONL file and how many lines could not be read (a run killed mid-write leaves a torn
    last line: it is counted and shown in the report, never silently dropped)."""
    recs, bad = [], 0
    if not Path(path).is_file():
        return recs, bad
    with open(path) as f:
        for line in f:
            if not line.strip():
                continue
            try:
                r = json.loads(line)
            except ValueError:
                bad += 1
                continue
            if isinstance(r, dict):
                recs.append(r)
            else:
                bad += 1
    return recs, bad


def column(recs: list[dict], key: str) -> tuple[np.ndarray, np.ndarray]:
    """(steps, values) of the records that carry `key` with a number (null, as JSON writes a NaN, is skipped)."""
    xs = [(r["step"], r[key]) for r in recs if isinstance(r.get(key), (int, float)) and not isinstance(r.get(key), bool)
          and "step" in r]
    if not xs:
        return np.zeros(0), np.zeros(0)
    a = np.asarray(xs, dtype=np.float64)
    return a[:, 0], a[:, 1]


def rolling(values: np.ndarray, window: int, how: str = "mean", at: np.ndarray | None = None) -> np.ndarray:
    """Trailing rolling mean or median over up to `window` values (shorter at the start), at every index or only
    at the indices `at` (a median is computed only where it is drawn: a week-long run has millions of steps)."""
    n = len(values)
    idx = np.arange(n) if at is None else np.asarray(at)
    if n == 0:
        return values
    if how == "mean":
        c = np.cumsum(np.insert(values, 0, 0.0))
        lo = np.maximum(idx + 1 - window, 0)
        return (c[idx + 1] - c[lo]) / (idx + 1 - lo)
    return np.array([np.median(values[max(0, i + 1 - window):i + 1]) for i in idx])


def thin_index(n: int, most: int = 4000) -> np.ndarray:
    """The indices of at most `most` points for a line plot (every k-th): a week-long run's metrics stay drawable."""
    return np.arange(0, n, max(1, int(np.ceil(n / most))))


def thin(x: np.ndarray, y: np.ndarray, most: int = 4000) -> tuple[np.ndarray, np.ndarray]:
    i = thin_index(len(x), most)
    return x[i], y[i]
