"""bench loop, bench soak and bench all (issue 21): the figures come out, add up, and fill the README table."""
import json
import subprocess
import sys

import pytest

from edge_runtime import bench_all


def run(*args):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_bench_loop_times_every_part_and_they_add_up(backend):
    r = run("bench", "loop", "--steps", "40", "--warmup", "10", "--set", f"model.backend={backend}", "--json")
    assert r["backend"] == backend and (r["torch"] is None) == (backend == "numpy")
    assert r["checkpoints"] is True  # as a --sim run
    b = r["breakdown_ms"]
    assert set(b) == {"senses", "decide", "body", "learn", "metrics", "hooks", "other"}
    for part in ("senses", "decide", "body", "learn"):
        assert b[part] > 0, part
    assert b["learn"] > b["body"]  # a learning step costs more than four arena steps
    assert sum(b.values()) == pytest.approx(r["ms_per_step"], abs=0.01)
    assert r["learning_steps_per_s"] == pytest.approx(1000 / r["ms_per_step"], rel=0.01)
    assert r["body_steps_per_s"] > r["learning_steps_per_s"]  # action repeat
    assert r["steps"] == 40 and r["threads"] == 1 and r["peak_rss_mb"] > 0


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_bench_soak_samples_rss_and_says_where_memory_goes(backend):
    r = run("bench", "soak", "--steps", "60", "--every", "20", "--set", f"model.backend={backend}", "--json")
    assert r["backend"] == backend
    assert [s for s, _ in r["rss_mb"]] == [0, 20, 40, 60]
    assert all(m > 50 for _, m in r["rss_mb"])
    assert r["slope_mb_per_10k_after_warmup"] is not None
    w = r["where_the_memory_goes"]
    assert w["python_and_torch_mb"] > w["python_mb"] > 0
    # parameters and traces are float32 tensors of the same shapes: the same size; a snapshot holds both
    assert w["traces_mb"] == pytest.approx(w["parameters_mb"], abs=0.02)
    assert w["rollback_ring_mb"] == pytest.approx(w["parameters_mb"] + w["traces_mb"], abs=0.05)
    assert r["peak_rss_mb"] >= max(m for _, m in r["rss_mb"]) - 1


def test_bench_all_rows_read_what_their_commands_print(tmp_path):
    """Each row's formatter meets its command's real --json output (short runs of the same commands)."""
    short = {"bench arena": ["--steps", "200"], "bench loop": ["--steps", "20", "--warmup", "5"],
             "bench step": ["--steps", "10", "--warmup", "2"], "bench soak": ["--steps", "40", "--every", "10"],
             "eval": ["--lives", "2"], "bench rectify": ["--reads", "5"], "bench view": ["--steps", "20", "--repeats", "1", "--chunk", "10", "--chunk-pairs", "1"]}
    rows = []
    for figure, command, show in bench_all.ROWS:
        args = command.split()
        key = " ".join(args[:2]) if args[0] == "bench" else args[0]
        args = [a for a in args if a != "--json"]
        # drop the row's own length arguments, keep the rest (--rule, --policy, --seed)
        keep, skip = [], False
        for a in args:
            if skip:
                skip = False
            elif a in ("--steps", "--every", "--lives", "--warmup", "--reads", "--repeats", "--chunk", "--chunk-pairs"):
                skip = True
            else:
                keep.append(a)
        raw = run(*keep, *short[key], "--json")
        rows.append({"figure": figure, "value": show(raw), "command": "edge-runtime " + command})
        assert rows[-1]["value"]
    readme = tmp_path / "README.md"
    readme.write_text(f"# t\n\nbefore\n{bench_all.BEGIN}\nold table\n{bench_all.END}\nafter\n")
    bench_all.write_readme(readme, {"rows": rows, "wall_s": 1.0, "date": "2026-12-07", "how": "edge-runtime bench all"})
    text = readme.read_text()
    assert "old table" not in text and text.startswith("# t\n\nbefore\n") and text.endswith("after\n")
    assert text.count("`edge-runtime bench arena --steps 10000 --json`") == 1
    assert len([l for l in text.splitlines() if l.startswith("| ") and "edge-runtime" in l]) == len(bench_all.ROWS)


def test_bench_all_refuses_a_readme_without_markers(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# no markers\n")
    with pytest.raises(ValueError, match="markers"):
        bench_all.write_readme(readme, {"rows": [], "wall_s": 0, "date": "x", "how": "x"})


def test_bench_step_numpy_learns_in_a_process_without_torch_and_measures_torch_beside_it():
    r = run("bench", "step", "--backend", "numpy", "--steps", "20", "--warmup", "5", "--json")
    assert r["backend"] == "numpy" and r["torch_imported"] is False and r["params"] == 327198
    assert r["forward_ms"] > 0 and r["learn_ms"] > 0 and set(r["torch"]) >= {"forward_ms", "learn_ms", "peak_rss_mb"}
    assert r["peak_rss_mb"] < r["torch"]["peak_rss_mb"]  # (no figure held here: bench step prints them)
