"""`edge-runtime report`: run and bench directories to one self-contained HTML file and PNGs, opened in a real
browser as a person would."""
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from browser import decode_png, headless_chromium, looks_like_a_plot
from edge_runtime.config import Config
from edge_runtime.report import ReportError, report
from edge_runtime.runtime import Runner
from sim_bridge.arena import Arena, ArenaConfig

RESULTS = Path(__file__).resolve().parent.parent / "docs" / "results"


def cli(*args):
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A real learning run with several deaths (a harsh arena), as one of a bench's runs (seed 1): the bench's
    results.json sits in its parent, so the report can draw the baselines."""
    bench = tmp_path_factory.mktemp("bench")
    shutil.copy(RESULTS / "bench-25k-results.json", bench / "results.json")
    d = bench / "survival-s1"
    cfg = Config()
    arena = Arena(ArenaConfig(n_hazards=8, hazard_damage=0.3))
    with arena:
        Runner(cfg, arena, seed=1, run_dir=d, progress=False).run(400)
    return d


def test_run_report_has_every_plot_and_they_are_real(run_dir):
    res = report(run_dir)
    names = [Path(p).name for p in res["pngs"]]
    assert names == [f"report-{n}.png" for n in ("lifespans", "hits", "self_loss", "self_lr", "lr_eff", "entropy",
                                                  "td_error", "rollbacks_faults")]
    assert res["lives"] >= 2
    for p in res["pngs"]:
        looks_like_a_plot(decode_png(Path(p).read_bytes()))
    html = Path(res["html"]).read_text()
    assert html.count("data:image/png;base64,") == len(res["pngs"])  # self-contained: every plot inside
    assert "<script" not in html and "http://" not in html and "https://" not in html  # opens offline
    assert "stationary: frozen median" not in html  # (legend text is inside the PNG, not the page)


def test_run_report_draws_the_baselines_of_its_bench(run_dir):
    from edge_runtime.report.run_report import baselines_beside

    recs = json.loads((run_dir.parent / "results.json").read_text())["records"]
    want = {r["policy"]: r["median_lifespan"] for r in recs if r["seed"] == 1 and r["policy"] in ("random", "stationary")}
    assert baselines_beside(run_dir, 1) == want and len(want) == 2
    assert baselines_beside(run_dir, 99) == {}


def test_the_report_opens_in_a_real_browser(run_dir, tmp_path):
    res = report(run_dir, tmp_path / "r.html")
    assert Path(res["pngs"][0]).parent == tmp_path  # the PNGs go beside the report
    b = headless_chromium()
    try:
        b.get(Path(res["html"]).as_uri())
        loaded = b.execute_script("return Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
        assert loaded == [True] * len(res["pngs"])
        figure = b.find_element("id", "lifespans")
        looks_like_a_plot(decode_png(figure.screenshot_as_png))
        cells = b.execute_script("return Array.from(document.querySelectorAll('table td')).map(c => c.textContent)")
        lives = [json.loads(x) for x in (run_dir / "lives.jsonl").read_text().splitlines()]
        assert cells[2] == str(len(lives))  # "lives ended", as lives.jsonl has them
    finally:
        b.quit()


@pytest.mark.parametrize("name, kind, plots", [("bench-25k", "bench-survival", 4), ("adapt-swap-colours", "bench-adapt", 6)])
def test_bench_reports_table_and_plots(tmp_path, name, kind, plots):
    shutil.copy(RESULTS / f"{name}-results.json", tmp_path / "results.json")
    r = cli("report", str(tmp_path), "--json")
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["kind"] == kind and len(res["pngs"]) == plots
    if kind == "bench-adapt":
        assert Path(res["pngs"][0]).name == "report-recovery.png"
    for p in res["pngs"]:
        looks_like_a_plot(decode_png(Path(p).read_bytes()))
    html = Path(res["html"]).read_text()
    n_records = len(json.loads((tmp_path / "results.json").read_text())["records"])
    assert html.count("<tr><td>") == n_records  # the per-seed table: one row per frozen evaluation
    assert re.search(r"\d/5 seeds reach 2x", html)


def test_a_torn_last_line_is_counted_not_hidden(run_dir, tmp_path):
    d = tmp_path / "torn"
    shutil.copytree(run_dir, d)
    with open(d / "metrics.jsonl", "a") as f:
        f.write('{"step": 401, "self_lo')  # what a killed process leaves
    res = report(d)
    assert "unreadable lines skipped: 1 in metrics.jsonl" in Path(res["html"]).read_text()


def test_bad_sources_one_line_exit_2(tmp_path):
    for args, needle in (([str(tmp_path / "nope")], "not a directory"), ([str(tmp_path)], "neither a run directory"),
                         ([str(tmp_path), "--out", "x.txt"], "is an .html file")):
        r = cli("report", *args)
        assert r.returncode == 2 and needle in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    (tmp_path / "results.json").write_text("{not json")
    with pytest.raises(ReportError, match="cannot be read as JSON"):
        report(tmp_path)


def test_a_sim_run_ends_by_printing_its_report(tmp_path):
    r = cli("--sim", "--steps", "30", "--run-dir", str(tmp_path / "run"), "--no-progress")
    assert r.returncode == 0, r.stderr
    assert f"report: {tmp_path / 'run' / 'report.html'}" in r.stderr
    assert (tmp_path / "run" / "report-lifespans.png").is_file()
    json.loads(r.stdout)  # stdout stays the summary alone, for scripts
