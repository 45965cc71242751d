"""Strict JSON for every file and `--json` output: NaN and infinities become null, numpy scalars plain numbers.

Python's json module writes bare `NaN`/`Infinity` by default, which no strict
JSON parser (JavaScript's JSON.parse, jq, Go, Rust serde) accepts. A median
of no lives is "no value", so it is written as null.
"""
from __future__ import annotations

import json
import math


def strict(obj):
    """A copy of obj with non-finite floats as None (dicts, lists, tuples walked; numpy scalars unwrapped)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [strict(v) for v in obj]
    if hasattr(obj, "item") and getattr(obj, "shape", None) == ():  # numpy / torch scalar
        return strict(obj.item())
    return obj


def dumps(obj, **kw) -> str:
    """json.dumps that never writes NaN/Infinity. Plain data goes straight through (metrics are written every
    step); only what json refuses (a NaN, a numpy scalar) is walked and cleaned."""
    try:
        return json.dumps(obj, allow_nan=False, **kw)
    except (ValueError, TypeError):
        return json.dumps(strict(obj), allow_nan=False, **kw)
