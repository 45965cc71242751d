"""The exported brain (issue 17): `edge-runtime export` writes one ONNX model whose every output region matches
the torch brain's on senses recorded from a real run, and that acts through ONNX Runtime in a process that
never imports torch."""
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from edge_runtime.config import Config
from edge_runtime.evaluate import PolicyError, load_brain_policy, make_policy
from edge_runtime.export_onnx import config_sha256, export
from edge_runtime.onnx_policy import OnnxPolicy
from edge_runtime.runtime import Runner
from edge_runtime.senses import SenseEncoder
from sim_bridge.arena import Arena, ArenaConfig


@pytest.fixture(scope="module")
def brain(tmp_path_factory):
    """A brain that has learned for 400 decisions (its eye statistics, weights and thought are not the
    initial ones), and its export."""
    d = tmp_path_factory.mktemp("run")
    cfg = Config()
    with Arena(cfg.arena) as body:
        Runner(cfg, body, seed=5, run_dir=d / "run", progress=False).run(400)
    res = export(d / "run", d / "brain.onnx")
    return d / "run", d / "brain.onnx", res


def test_every_output_matches_torch_on_recorded_senses(brain):
    run, onnx_path, _ = brain
    arena = Arena()
    torch_pol = load_brain_policy(run, arena.spec, greedy=True)
    onnx_pol = OnnxPolicy(onnx_path, arena.spec, greedy=True)
    enc = SenseEncoder(arena.spec, torch_pol.model_cfg.input_hw)
    b = torch_pol.rule.brain
    worst = dict.fromkeys(("actions", "loss", "lr", "thought"), 0.0)
    n = same = 0
    for seed in (11, 12):  # two lives' worth of senses, as the torch brain lives them
        s = arena.reset(seed=seed)
        torch_pol.start_life(arena, seed)
        onnx_pol.start_life(arena, seed)
        for _ in range(150):
            onnx_pol.thought = torch_pol.rule.thought.numpy().copy()  # the same thought going in
            with torch.no_grad():
                eyes, bv = enc(s)
                ref = b.split(b(eyes, bv, torch_pol.rule.thought))
            got = onnx_pol.forward(s)
            for k in worst:
                worst[k] = max(worst[k], float(np.abs(got[k] - ref[k].numpy()).max()))
            a_torch = torch_pol(s)
            same += onnx_pol(s) == a_torch
            n += 1
            s = arena.act(a_torch)
            if s.dead:
                break
    assert n >= 200
    assert all(v <= 1e-4 for v in worst.values()), worst
    assert same == n  # identical greedy actions


def test_metadata_carries_the_body_and_config(brain):
    import onnx

    _, onnx_path, res = brain
    m = {p.key: p.value for p in onnx.load(str(onnx_path)).metadata_props}
    spec = json.loads(m["body_spec"])
    assert spec["name"] == "Arena" and spec["action_heads"] == {"drive": 3, "turn": 3}
    assert m["format"] == "edge-runtime-brain/1" and m["rule"] == "survival" and m["steps"] == "400"
    assert m["config_sha256"] == config_sha256(spec, json.loads(m["model_config"])) == res["config_sha256"]


def test_a_brain_for_another_body_or_a_bad_file_is_refused(brain, tmp_path):
    _, onnx_path, _ = brain
    other = Arena(ArenaConfig(n_touch=4)).spec
    with pytest.raises(PolicyError, match="made for body"):
        make_policy(str(onnx_path), other)
    import onnx

    m = onnx.load(str(onnx_path))
    for prop in m.metadata_props:
        if prop.key == "body_spec":  # an edit that would let the brain pass for another body's
            prop.value = prop.value.replace('"touch_channels": 8', '"touch_channels": 4')
    onnx.save(m, str(tmp_path / "edited.onnx"))
    with pytest.raises(PolicyError, match="does not match its config_sha256"):
        make_policy(str(tmp_path / "edited.onnx"), other)
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x00not onnx" * 10)
    with pytest.raises(PolicyError, match="not a loadable ONNX model"):
        make_policy(str(bad), Arena().spec)


def _cli(*args):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def _cli_without_torch(*args) -> dict:
    """The CLI in a fresh process that must end without torch in sys.modules; its last JSON line."""
    code = ("import sys\nfrom edge_runtime.cli import main\n"
            f"assert main({list(args)!r}) == 0\nassert 'torch' not in sys.modules, 'torch was imported'\n")
    p = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_eval_with_the_onnx_brain_never_imports_torch_and_lives_the_same_lives(brain):
    run, onnx_path, _ = brain
    got = _cli_without_torch("eval", "--policy", str(onnx_path), "--lives", "3", "--greedy", "--json")
    ref = _cli("eval", "--policy", str(run), "--lives", "3", "--greedy", "--json")
    assert got["lifespans"] == ref["lifespans"]  # greedy: the same actions, so the same lives


def test_bench_step_onnx_reports_a_torch_free_process(brain):
    _, onnx_path, _ = brain
    r = _cli("bench", "step", "--backend", "onnx", "--policy", str(onnx_path), "--steps", "30", "--warmup", "5", "--json")
    assert r["backend"] == "onnx" and r["forward_ms"] > 0 and r["peak_rss_mb"] > 0 and r["torch_imported"] is False


def test_run_with_the_onnx_brain_acts_without_torch_and_the_console_refuses_to_learn(brain, tmp_path):
    _, onnx_path, _ = brain
    summary = _cli_without_torch("--sim", "--policy", str(onnx_path), "--steps", "120", "--run-dir",
                                 str(tmp_path / "act"), "--no-progress")
    assert summary["steps"] == 120 and summary["rule"] == "onnx:brain.onnx" and summary["faults"] == 0
    assert not (tmp_path / "act" / "weights.pt").exists()  # nothing learned, nothing saved
    assert len((tmp_path / "act" / "metrics.jsonl").read_text().splitlines()) == 120

    from edge_runtime.console.loop import ConsoleHook
    from edge_runtime.console.server import CommandError
    from edge_runtime.onnx_policy import OnnxActor, sense_as_is

    arena = Arena()
    actor = OnnxActor(OnnxPolicy(onnx_path, arena.spec), seed=1)
    r = Runner(Config(), arena, rule=actor, encoder=sense_as_is, progress=False)
    s = arena.reset(seed=1)
    hook = ConsoleHook.__new__(ConsoleHook)
    hook._t0, hook._rate, hook.waiting_for = 0.0, None, None
    for cmd, args in (("learn", ["on"]), ("lr", ["0.1", "0.5"]), ("rollback", [])):
        with pytest.raises(CommandError, match="only acts, with an exported brain"):
            hook.run_command(r, s, {}, cmd, args)
    assert hook.run_command(r, s, {}, "learn", []) == "learning off"
    assert "learning off" in hook.run_command(r, s, {}, "status", [])


def test_learning_with_model_backend_ort_says_what_to_install_where_onnxruntime_cannot_learn(tmp_path):
    """The plain onnxruntime package (what `.[onnx]` installs, for acting) has no gradient kernels: asking it to
    learn is a config error naming the key and the package to install. (With the training build, the same
    command learns: tests/test_ort_training.py.)"""
    from onnxruntime.capi import _pybind_state as C

    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "--sim", "--steps", "3", "--no-progress",
                        "--run-dir", str(tmp_path / "run"), "--set", "model.backend=ort"],
                       capture_output=True, text=True, timeout=300)
    if hasattr(C, "GradientGraphBuilder"):
        assert p.returncode == 0, p.stderr
    else:
        assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1, p.stderr
        assert "model.backend = ort" in p.stderr and "onnxruntime-training-cpu" in p.stderr
