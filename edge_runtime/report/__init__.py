"""Run and benchmark reports: `edge-runtime report RUN_DIR|BENCH_DIR [--out report.html]`.

One self-contained HTML file (every plot embedded as a PNG data URL, no script, no network: it opens offline)
and the same plots as PNG files beside it, named `<report stem>-<plot>.png`. matplotlib draws with its Agg
backend on Figure objects of its own (no pyplot, no display).

What a directory is, is read from what it holds:
- a run directory (`run`, `--sim`, a benchmark's learned run): metrics.jsonl, lives.jsonl, run.json;
- a `bench survival` or `bench adapt` directory: results.json (with `verdict` and `records`; `change` for adapt).
"""
from __future__ import annotations

from pathlib import Path

from .data import ReportError, read_json


def report(src: str | Path, out: str | Path | None = None) -> dict:
    """Write the report of a run or benchmark directory. Returns {"html": path, "pngs": [paths], "kind": ...}."""
    src = Path(src)
    if not src.is_dir():
        raise ReportError(f"{src}: not a directory (a run directory or a bench directory is expected)")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ReportError("reports need matplotlib: pip install -e '.[report]' (the laptop and sim extras have it)") from None
    out = Path(out) if out else src / "report.html"
    if out.suffix.lower() != ".html":
        raise ReportError(f"--out {out}: the report is an .html file")
    out.parent.mkdir(parents=True, exist_ok=True)
    if (src / "results.json").is_file():
        from .bench_report import bench_report

        results = read_json(src / "results.json")
        if not isinstance(results, dict) or "records" not in results:
            raise ReportError(f"{src / 'results.json'}: not the results of `bench survival` or `bench adapt`")
        return bench_report(src, results, out)
    if (src / "metrics.jsonl").is_file() or (src / "lives.jsonl").is_file():
        from .run_report import run_report

        return run_report(src, out)
    raise ReportError(f"{src}: neither a run directory (metrics.jsonl, lives.jsonl) nor a bench directory (results.json)")
