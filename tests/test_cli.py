import json
import subprocess
import sys
from pathlib import Path

import pytest

from edge_runtime.cli import main


def run(*args, cwd=None):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=600)
    return p.returncode, p.stdout, p.stderr


def test_sim_learns_and_writes_a_run_directory(tmp_path):
    d = tmp_path / "run"
    rc, out, err = run("--sim", "--steps", "30", "--seed", "3", "--run-dir", str(d))
    assert rc == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 30 and summary["rule"] == "survival"
    assert summary["backend"] == "numpy"  # model.backend = auto at the default config
    for f in ("config.toml", "body_spec.json", "metrics.jsonl", "weights.npz", "summary.json"):
        assert (d / f).exists(), f
    lines = [json.loads(l) for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert len(lines) == 30
    for k in ("step", "hp", "energy", "self_loss", "self_lr", "lr_eff", "entropy", "entropy_w", "td_error", "rollbacks"):
        assert k in lines[-1]
    assert "st/s" in err and "med life" in err  # the live progress line


def test_sim_seed_v1_rule_runs(tmp_path):
    rc, out, err = run("--sim", "--steps", "20", "--rule", "seed-v1", "--run-dir", str(tmp_path / "r"))
    assert rc == 0, err
    assert json.loads(out.strip().splitlines()[-1])["rule"] == "seed-v1"


def test_config_file_is_used_and_snapshotted(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text("[arena]\nn_food = 2\n[rule]\nname = 'seed-v1'\n")
    d = tmp_path / "r"
    rc, out, err = run("--sim", "--steps", "5", "--config", str(cfg), "--run-dir", str(d))
    assert rc == 0, err
    snap = (d / "config.toml").read_text()
    assert "n_food = 2" in snap and 'name = "seed-v1"' in snap


@pytest.mark.parametrize("text,needle", [
    ("[arena]\nn_fod = 2\n", "arena.n_fod"),
    ("[arena]\nn_food = 'many'\n", "arena.n_food"),
    ("[rule]\nname = 'magic'\n", "rule.name"),
    ("[nonsense]\nx = 1\n", "nonsense"),
    ("[arena\n", "not valid TOML"),
])
def test_bad_config_one_line_naming_the_problem(tmp_path, text, needle, capsys):
    cfg = tmp_path / "bad.toml"
    cfg.write_text(text)
    rc = main(["--sim", "--steps", "5", "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("argv,needle", [
    (["--sim", "--steps", "abc"], "--steps"),
    (["--sim", "--steps", "-3"], "--steps"),
    (["eval", "--policy", "random", "--lives", "0"], "--lives"),
    (["eval", "--policy", "/no/such/run", "--lives", "2"], "/no/such/run"),
    (["bench", "nothing"], "nothing"),
    (["--sim", "--set", "rule.lam=2.0"], "rule.lam"),
    (["--sim", "--rule", "nope"], "rule.name"),
    (["--frobnicate"], "frobnicate"),
])
def test_bad_arguments_one_line_exit_2(argv, needle, capsys):
    rc = main(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert needle in err and len(err.strip().splitlines()) == 1


@pytest.mark.parametrize("policy", ["random", "stationary", "oracle"])
def test_eval_baselines_json(policy):
    rc, out, err = run("eval", "--policy", policy, "--lives", "3", "--seed", "5", "--cap", "600", "--json")
    assert rc == 0, err
    r = json.loads(out)
    for k in ("median_lifespan", "deaths_per_10k", "lives", "p25", "p75", "censored", "food_per_life", "hazard_hits_per_life"):
        assert k in r
    assert r["lives"] == 3 and len(r["lifespans"]) == 3
    assert all(0 < n <= 600 for n in r["lifespans"])


def test_eval_is_deterministic_and_ranks_policies():
    a = json.loads(run("eval", "--policy", "stationary", "--lives", "4", "--seed", "2", "--json")[1])
    b = json.loads(run("eval", "--policy", "stationary", "--lives", "4", "--seed", "2", "--json")[1])
    assert a["lifespans"] == b["lifespans"]
    o = json.loads(run("eval", "--policy", "oracle", "--lives", "4", "--seed", "2", "--cap", "1500", "--json")[1])
    assert o["median_lifespan"] > 2 * a["median_lifespan"]


def test_eval_a_learned_run(tmp_path):
    d = tmp_path / "r"
    assert run("--sim", "--steps", "10", "--run-dir", str(d))[0] == 0
    for extra in ([], ["--greedy"]):
        rc, out, err = run("eval", "--policy", str(d), "--lives", "2", "--seed", "1", "--cap", "300", "--json", *extra)
        assert rc == 0, err
        assert json.loads(out)["lives"] == 2


def test_eval_rejects_a_corrupt_weights_file(tmp_path, capsys):
    w = tmp_path / "weights.pt"
    w.write_bytes(b"\x00garbage" * 10)
    assert main(["eval", "--policy", str(w), "--lives", "1"]) == 2
    assert "not a readable weights file" in capsys.readouterr().err


def test_bench_arena_and_step_print_json():
    rc, out, err = run("bench", "arena", "--steps", "200", "--json")
    assert rc == 0, err
    assert json.loads(out)["steps_per_s"] > 0
    rc, out, err = run("bench", "step", "--steps", "20", "--warmup", "5", "--json")
    assert rc == 0, err
    r = json.loads(out)
    assert r["forward_ms"] > 0 and r["learn_ms"] > 0 and r["peak_rss_mb"] > 0


def test_bench_survival_tiny(tmp_path):
    rc, out, err = run("bench", "survival", "--rule", "survival,seed-v1", "--seeds", "1,2", "--steps", "20", "--lives", "2",
                       "--cap", "300", "--jobs", "2", "--out", str(tmp_path), "--json")
    assert rc == 0, err
    r = json.loads(out)
    labels = {(x["seed"], x["label"], x["mode"]) for x in r["records"]}
    for s in (1, 2):
        for lab in ("survival", "seed-v1"):
            assert (s, lab, "sample") in labels and (s, lab, "greedy") in labels
        assert (s, "random", "sample") in labels and (s, "stationary", "sample") in labels
    assert "survival/sample" in r["verdict"]
    assert (tmp_path / "table.txt").exists()


def test_eval_a_flash_checkpoint_file_and_a_run_dir_without_weights(tmp_path):
    d = tmp_path / "r"
    assert run("--sim", "--steps", "8", "--run-dir", str(d))[0] == 0
    ckpts = sorted((d / "checkpoints").glob("ckpt-*.bin"))
    assert ckpts
    rc, out, err = run("eval", "--policy", str(ckpts[0]), "--lives", "1", "--seed", "1", "--cap", "100", "--json")
    assert rc == 0, err
    (d / "weights.npz").unlink()  # (the default learner's weights)
    rc, out, err = run("eval", "--policy", str(d), "--lives", "1", "--seed", "1", "--cap", "100", "--json")
    assert rc == 0, err
    ckpts[0].write_bytes(ckpts[0].read_bytes()[:-10])  # torn
    for c in ckpts[1:]:
        c.unlink()
    rc, out, err = run("eval", "--policy", str(d), "--lives", "1", "--cap", "100")
    assert rc == 2 and "no valid checkpoint" in err


@pytest.mark.parametrize("section,key", [("robot", "bump_damag"), ("camera", "fsp"), ("mcu", "bauds"),
                                         ("godot", "prot"), ("gym", "eyes"), ("checkpoint", "evry_s"),
                                         ("console", "writeable"), ("service", "status"), ("arena", "sise")])
def test_every_section_is_checked_when_the_config_loads(tmp_path, section, key, capsys):
    """A misspelt key in any section fails at load with one line naming it, before any body or device starts."""
    f = tmp_path / "c.toml"
    extra = {"camera": 'backend = "replay"\n', "mcu": 'port = "virtual"\n'}.get(section, "")
    f.write_text(f"[{section}]\n{extra}{key} = 1\n")
    assert main(["eval", "--policy", "random", "--lives", "1", "--config", str(f)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{section}.{key}: unknown key" in err[0]
