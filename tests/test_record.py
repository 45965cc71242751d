"""`--record FILE.rrd`: a real rerun recording, read back with rerun's own CLI (`rerun rrd verify/print`)."""
import json
import re
import shutil
import subprocess
import sys
from collections import Counter

import pytest


def rrd_rows(path) -> Counter:
    """Rows per entity path in a .rrd, as `rerun rrd print -v` lists its chunks."""
    rerun = shutil.which("rerun")
    assert rerun, "the rerun SDK's CLI (pip install -e '.[record]') is needed"
    v = subprocess.run([rerun, "rrd", "verify", str(path)], capture_output=True, text=True, timeout=120)
    assert v.returncode == 0, v.stderr
    out = subprocess.run([rerun, "rrd", "print", "-v", str(path)], capture_output=True, text=True, timeout=120).stdout
    rows = Counter()
    for n, entity in re.findall(r"with (\d+) rows .*? - (/\S+) - data columns", out):
        rows[entity] += int(n)
    return rows


def test_a_sim_run_records_every_decision(tmp_path):
    rrd = tmp_path / "life.rrd"
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "--sim", "--steps", "150", "--no-progress",
                        "--run-dir", str(tmp_path / "run"), "--record", str(rrd), "--set", "arena.n_hazards=8",
                        "--set", "arena.hazard_damage=0.3"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    rows = rrd_rows(rrd)
    lives = len((tmp_path / "run" / "lives.jsonl").read_text().splitlines())
    assert lives >= 1
    per_decision = ["/eyes/left", "/eyes/right", "/body", "/heads/drive", "/heads/turn", "/regions/loss",
                    "/regions/lr", "/regions/thought", "/metrics/self_loss", "/metrics/entropy", "/metrics/td_error"]
    for e in per_decision:  # every decision, plus the one static row (formats, series names) where there is one
        assert rows[e] - (1 if e in ("/eyes/left", "/eyes/right", "/body", "/heads/drive", "/heads/turn",
                                     "/regions/thought") else 0) == 150, (e, rows[e])
    assert rows["/lives/lifespan"] == lives == rows["/lives/event"]
    json.loads(r.stdout)


@pytest.mark.parametrize("path, needle", [("x.txt", "is a .rrd file"), ("/nonexistent/dir/x.rrd", "no such directory")])
def test_bad_record_paths_one_line_exit_2(tmp_path, path, needle):
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "--sim", "--steps", "1", "--record", path,
                        "--run-dir", str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and needle in r.stderr, r.stderr
