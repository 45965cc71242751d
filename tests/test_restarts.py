"""Restarts as a robot owner meets them: reusing a run directory, console overrides across `--continue`,
strict JSON in every file."""
import json
import signal
import subprocess
import sys

from test_console import PROMPT, Term


def run_cli(*args, timeout=240):
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True,
                          timeout=timeout)


def strict_load(text: str):
    """A strict JSON parser: Python's accepts NaN/Infinity, JSON does not."""
    def refuse(name):
        raise ValueError(f"not JSON: {name}")
    return json.loads(text, parse_constant=refuse)


def test_an_existing_run_is_never_overwritten(tmp_path):
    d = tmp_path / "run"
    p = run_cli("--sim", "--steps", "4", "--seed", "1", "--run-dir", str(d), "--no-progress")
    assert p.returncode == 0, p.stderr
    before = {f: (d / f).read_bytes() for f in ("weights.npz", "metrics.jsonl", "summary.json")}
    slots = {f.name: f.read_bytes() for f in (d / "checkpoints").glob("ckpt-*.bin")}
    p = run_cli("--sim", "--steps", "4", "--seed", "2", "--run-dir", str(d), "--no-progress")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "holds a run (a checkpoint at step 4" in p.stderr and "--continue" in p.stderr and "--fresh" in p.stderr
    assert {f: (d / f).read_bytes() for f in before} == before
    assert {f.name: f.read_bytes() for f in (d / "checkpoints").glob("ckpt-*.bin")} == slots
    # --fresh: the old run moves aside whole, the new brain starts in an empty directory
    p = run_cli("--sim", "--steps", "3", "--seed", "2", "--run-dir", str(d), "--fresh", "--no-progress")
    assert p.returncode == 0, p.stderr
    aside = list(tmp_path.glob("run.old-*"))
    assert len(aside) == 1 and (aside[0] / "weights.npz").read_bytes() == before["weights.npz"]
    assert len((d / "metrics.jsonl").read_text().splitlines()) == 3
    assert run_cli("--sim", "--steps", "3", "--run-dir", str(d), "--fresh", "--continue").returncode == 2


def test_summary_and_stdout_are_strict_json_when_no_life_ended(tmp_path):
    d = tmp_path / "run"
    p = run_cli("--sim", "--steps", "2", "--run-dir", str(d), "--no-progress")
    assert p.returncode == 0, p.stderr
    for text in ((d / "summary.json").read_text(), p.stdout.strip().splitlines()[-1]):
        s = strict_load(text)
        assert s["lives_completed"] == 0 and s["median_lifespan_learning"] is None
        assert isinstance(s["body"], dict) and "food" in s["body"]
    for name in ("metrics.jsonl", "run.json", "body_spec.json"):
        for line in (d / name).read_text().splitlines() if name.endswith("jsonl") else [(d / name).read_text()]:
            strict_load(line)


def start(d, term, *extra):
    return subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "--sim", "--run-dir", str(d), "--continue",
                             "--no-progress", "--console", term.path, "--set", "console.writable=true",
                             "--set", "checkpoint.min_interval_s=0", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_console_overrides_survive_a_restart_through_continue(tmp_path):
    """`lr` used to edit the config: the next checkpoint carried it and `--continue` refused to load it."""
    d = tmp_path / "run"
    term = Term()
    proc = None
    try:
        proc = start(d, term)
        term.read_until(b"type help\r\n" + PROMPT, 60)
        assert "range [0.4, 0.9]" in term.cmd("lr 0.4 0.9")
        assert term.cmd("learn off") == "learning off"
        assert term.cmd("motors stop").startswith("motors stopped")
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert strict_load(out.strip().splitlines()[-1])["overrides"] == {"learning": False, "lr_min": 0.4,
                                                                           "lr_max": 0.9, "motors_held": True}
        assert "lr_min = 0.5" in (d / "config.toml").read_text()  # the run's config is untouched
        proc = start(d, term)
        term.read_until(b"type help\r\n" + PROMPT, 60)
        assert "range [0.4, 0.9]" in term.cmd("lr")
        assert term.cmd("learn") == "learning off"
        assert term.cmd("overrides") == "overrides learning False, lr_min 0.4, lr_max 0.9, motors_held True"
        assert term.cmd("overrides clear").startswith("overrides cleared")
        assert "range [0.5, 1]" in term.cmd("lr") and term.cmd("learn") == "learning on"
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        assert "console overrides in effect (from the checkpoint)" in err
        assert "resumed from checkpoint" in err
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
        term.close()
