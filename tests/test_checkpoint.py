"""Flash checkpoint store: format, corruption, ENOSPC, SIGKILL crash trials, timer/request/stop saves, resume."""
import errno
import importlib.util
import io
import json
import logging
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from edge_runtime import checkpoint as ck
from edge_runtime.checkpoint import (HEADER_SIZE, CheckpointConfig, CheckpointHook, CheckpointStore,
                                     CheckpointWriteError, NoValidCheckpoint)
from edge_runtime.cli import main
from edge_runtime.config import Config, ConfigError
from edge_runtime.runtime import Runner
from sim_bridge.arena import Arena

ROOT = Path(__file__).resolve().parents[1]


def payload(step):
    return ck.encode({"step": step, "data": torch.full((1000,), float(step))})


@pytest.fixture
def two(tmp_path):
    """A store with sequence 1 in slot A and sequence 2 in slot B."""
    s = CheckpointStore(tmp_path)
    assert s.save(payload(10), 10).slot == "A"
    assert s.save(payload(20), 20).slot == "B"
    return s


# ---------------------------------------------------------------------------- format
def test_header_layout_and_roundtrip(tmp_path):
    s = CheckpointStore(tmp_path)
    info = s.save(payload(7), 7)
    data = s.slot_path("A").read_bytes()
    assert HEADER_SIZE == 84 and data[:8] == b"ERCKPT\r\n"
    magic, ver, hsize, flags, seq, step, plen = struct.unpack_from("<8sHHIQQQ", data)
    assert (ver, hsize, seq, step, plen) == (1, 84, 1, 7, len(data) - 84) == (1, 84, info.sequence, info.step, info.bytes - 84)
    got, state = s.load()
    assert got.slot == "A" and state["step"] == 7 and torch.equal(state["data"], torch.full((1000,), 7.0))
    # the next save goes to the other slot, the one after back to A: the newest always survives a torn write
    assert [s.save(payload(k), k).slot for k in (8, 9, 10)] == ["B", "A", "B"]
    assert s.load()[0].sequence == 4


def _corrupt(path: Path, how: str):
    data = bytearray(path.read_bytes())
    if how == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif how == "truncated_header":
        path.write_bytes(data[:40])
    elif how == "header_bitflip":
        data[17] ^= 0x04  # inside the sequence number
        path.write_bytes(data)
    elif how == "payload_bitflip":
        data[HEADER_SIZE + (len(data) - HEADER_SIZE) // 2] ^= 0x01
        path.write_bytes(data)
    elif how == "wrong_magic":
        data[:8] = b"NOTACKPT"
        path.write_bytes(data)
    elif how == "wrong_version":  # a well-formed header from a future format: CRC recomputed
        struct.pack_into("<H", data, 8, 2)
        struct.pack_into("<I", data, 80, zlib.crc32(bytes(data[:80])))
        path.write_bytes(data)
    elif how == "zero_length":
        path.write_bytes(b"")
    elif how == "missing":
        path.unlink()
    elif how == "trailing":
        path.write_bytes(bytes(data) + b"\0" * 10)
    else:
        raise ValueError(how)


CORRUPTIONS = {
    "truncated": "truncated", "truncated_header": "truncated header", "header_bitflip": "header CRC32 mismatch",
    "payload_bitflip": "payload SHA-256 mismatch", "wrong_magic": "wrong magic", "wrong_version": "format version 2",
    "zero_length": "zero length", "missing": "missing", "trailing": "trailing bytes",
}


@pytest.mark.parametrize("how", list(CORRUPTIONS))
def test_corrupt_newest_slot_falls_back_to_the_other(two, how, caplog):
    _corrupt(two.slot_path("B"), how)
    caplog.set_level(logging.INFO, logger="edge_runtime.checkpoint")
    info, state = two.load()
    assert (info.slot, info.sequence, info.step, state["step"]) == ("A", 1, 10, 10)
    line = [r.getMessage() for r in caplog.records if "slot B" in r.getMessage()]
    assert len(line) == 1 and CORRUPTIONS[how] in line[0] and "using slot A (sequence 1, step 10)" in line[0], line
    # and the next save overwrites the bad slot, never the good one
    assert two.save(payload(30), 30).slot == "B" and two.load()[0].sequence == 2


@pytest.mark.parametrize("how", ["header_bitflip", "payload_bitflip", "truncated"])
def test_corrupt_older_slot_is_reported_newest_still_wins(two, how):
    _corrupt(two.slot_path("A"), how)
    res = ck.verify(two.dir)
    assert res["valid"] and res["slot"] == "B" and res["sequence"] == 2
    assert [s["valid"] for s in res["slots"]] == [False, True]


def test_no_valid_checkpoint_names_both_slots(two):
    _corrupt(two.slot_path("A"), "payload_bitflip")
    _corrupt(two.slot_path("B"), "wrong_magic")
    with pytest.raises(NoValidCheckpoint, match=r"slot A: payload SHA-256 mismatch.*slot B: wrong magic"):
        two.load()


def test_loading_never_runs_pickled_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    torch.save({"model": {}, "x": Evil()}, buf)
    s = CheckpointStore(tmp_path)
    s.save(payload(1), 1)
    s.save(buf.getvalue(), 2)  # checksums are fine: only the payload's content is hostile
    info, state = s.load()
    assert info.sequence == 1 and not marker.exists()
    assert not ck.verify(tmp_path)["slots"][1]["valid"] and "not plain tensor data" in ck.verify(tmp_path)["slots"][1]["error"]
    with pytest.raises(ck.CheckpointError):
        ck.decode(buf.getvalue())
    assert not marker.exists()


def test_a_numpy_payload_round_trips_and_never_runs_pickled_code(tmp_path):
    """A numpy learner's payload (b"ERNPZ\\n" + .npz): arrays and plain values come back as they went in; an
    object array (pickled) in it, or a torn archive, is refused and the other slot is used."""
    state = {"meta": {"step": 3, "backend": "numpy"}, "model": {"w": np.arange(6, dtype=np.float32).reshape(2, 3)},
             "rule": {"z": [np.ones(2, np.float32), 1.5, "x"], "n": 7}, "runner": {"lifespans": np.array([4, 5])}}
    enc = bytes(ck.encode(state))
    assert enc.startswith(ck.fileformat.NUMPY_PAYLOAD)
    back = ck.decode(enc)
    assert back["meta"] == state["meta"] and back["rule"]["n"] == 7 and back["rule"]["z"][1:] == [1.5, "x"]
    assert (back["model"]["w"] == state["model"]["w"]).all() and back["model"]["w"].dtype == np.float32
    assert (back["runner"]["lifespans"] == [4, 5]).all()

    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    buf = io.BytesIO()
    buf.write(ck.fileformat.NUMPY_PAYLOAD)
    sk = json.dumps({"model": {"__array__": "a0"}}).encode()
    np.savez(buf, __skeleton__=np.frombuffer(sk, np.uint8), a0=np.array([Evil()], dtype=object))
    s = CheckpointStore(tmp_path)
    s.save(ck.encode(state), 1)
    s.save(buf.getvalue(), 2)
    info, got = s.load()
    assert info.sequence == 1 and not marker.exists() and got["meta"]["step"] == 3
    assert "not plain array data" in ck.verify(tmp_path)["slots"][1]["error"]
    with pytest.raises(ck.CheckpointError, match="not plain array data"):
        ck.decode(enc[:len(enc) // 2])
    assert not marker.exists()


# ---------------------------------------------------------------------------- disk full
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_enospc_is_reported_and_previous_checkpoint_intact(two, monkeypatch, where):
    before = {s: two.slot_path(s).read_bytes() for s in "AB"}
    real_write = os.write

    def full_write(fd, data):  # the device fills up part way through the temp file
        if len(data) > 4096:
            return real_write(fd, bytes(data[:4096]))
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    def full_fsync(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    if where == "write":
        monkeypatch.setattr(os, "write", full_write)
    else:
        monkeypatch.setattr(os, "fsync", full_fsync)
    with pytest.raises(CheckpointWriteError) as e:
        two.save(payload(30), 30)
    monkeypatch.undo()
    msg = str(e.value)
    assert "No space left on device" in msg and "ENOSPC" in msg
    assert "previous checkpoint (slot B (sequence 2, step 20)) is intact" in msg
    assert {s: two.slot_path(s).read_bytes() for s in "AB"} == before
    assert not list(two.dir.glob("*.tmp"))
    assert two.load()[0].sequence == 2 and two.saves == 2


def test_enospc_on_a_real_tiny_tmpfs(tmp_path):
    """The real thing where the machine allows it (root, mount permitted): a 1.5 MB tmpfs holds one ~0.9 MB
    checkpoint, the second save runs out of space part way through the temp file."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1500k", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root); the monkeypatched ENOSPC tests cover the logic")
    try:
        s = CheckpointStore(mnt / "ck")
        big = ck.encode({"step": 1, "data": torch.zeros(230_000)})
        s.save(big, 1)
        before = s.slot_path("A").read_bytes()
        with pytest.raises(CheckpointWriteError, match=r"No space left on device \(errno 28, ENOSPC\); the previous checkpoint"):
            s.save(big, 2)
        assert s.slot_path("A").read_bytes() == before and not list(s.dir.glob("*.tmp"))
        assert s.load()[0].sequence == 1
    finally:
        subprocess.run(["umount", str(mnt)], capture_output=True)


def test_hook_keeps_running_when_a_save_fails(tmp_path, monkeypatch, caplog):
    cfg = Config()
    runner, hook, clock = _runner_with_hook(tmp_path, cfg, every_s=600, background=False)
    monkeypatch.setattr(os, "write", lambda fd, d: (_ for _ in ()).throw(OSError(errno.ENOSPC, "No space left on device")))
    assert hook.save_now() is None
    assert "No space left on device" in hook.status()["last_error"]
    assert any(r.levelno == logging.ERROR and "No space left" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    runner.rule.steps += 1
    hook.on_stop(runner, {})  # the failed save did not count: the stop save still happens
    assert hook.store.load()[0].step == runner.rule.steps


# ---------------------------------------------------------------------------- SIGKILL at random moments
def _crash_module():
    spec = importlib.util.spec_from_file_location("crash_checkpoint", ROOT / "scripts" / "crash_checkpoint.py")
    m = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(m)
    return m


def test_sigkill_during_saves_always_leaves_a_valid_checkpoint(tmp_path):
    res = _crash_module().run(24, str(tmp_path / "store"), seed=1, payload_kb=900, max_delay_s=0.25, write_mbps=20)
    assert res["failed"] == 0, res["failures"]
    assert res["trials"] == 24 and res["saves_acknowledged"] > 0
    assert res["trials_killed_mid_write"] >= 3  # the kills did land inside writes


def test_crash_harness_catches_a_non_atomic_writer(tmp_path):
    """Negative control: overwriting the slot in place does leave torn files, and the harness says so."""
    res = _crash_module().run(8, str(tmp_path / "store"), seed=2, payload_kb=900, max_delay_s=0.25, write_mbps=20,
                              unsafe_inplace=True)
    assert res["failed"] >= 1 and res["trials_with_a_torn_slot_file"] >= 1


def test_a_second_writer_is_locked_out(tmp_path):
    a, b = CheckpointStore(tmp_path), CheckpointStore(tmp_path)
    a.lock()
    with pytest.raises(ck.CheckpointError, match="in use by another process"):
        b.lock()
    a.unlock()
    b.lock()
    b.unlock()


# ---------------------------------------------------------------------------- the hook: timer, request, stop
class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t


def _runner_with_hook(tmp_path, cfg, resume_state=None, **ckw):
    body = Arena(cfg.arena)
    clock = Clock()
    hook = CheckpointHook(CheckpointStore(tmp_path / "ck"), CheckpointConfig(**ckw), resume_state=resume_state, clock=clock,
                          handle_sigint=False)
    runner = Runner(cfg, body, seed=3, progress=False, hooks=[hook])
    runner.sense = body.reset(seed=3)
    hook.on_start(runner)
    return runner, hook, clock


def test_timer_request_min_interval_and_stop(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="edge_runtime.checkpoint")
    runner, hook, clock = _runner_with_hook(tmp_path, Config(), every_s=600, min_interval_s=60, background=False)
    start = [r.getMessage() for r in caplog.records]
    assert any("rollback ring: depth 2" in m and "MB of RAM when full" in m for m in start)
    assert any("MB/day from the timer" in m for m in start)
    sense = runner.sense
    step = lambda t: (setattr(clock, "t", t), hook.on_step(runner, sense, {}))  # noqa: E731
    step(599)
    assert hook.store.saves == 0
    step(600)
    assert hook.store.saves == 1 and hook.last.slot == "A"
    hook.request_save()
    step(650)  # 50 s after the last save: the wear guard defers it
    assert hook.store.saves == 1 and hook.status()["save_pending"]
    step(660)
    assert hook.store.saves == 2 and not hook.status()["save_pending"]
    clock.t = 2000
    hook.on_step(runner, type(sense)(lambda: None, touch=sense.touch, hp=0.0, energy=0.0, dead=True, t=0, frame_id=0), {})
    assert hook.store.saves == 2  # never from a dead body
    step(2001)
    assert hook.store.saves == 3
    hook.on_stop(runner, {})  # nothing learned since the last save: no extra write
    assert hook.store.saves == 3
    st = hook.status()
    assert st["bytes_per_day_timer"] == int(86400 / 600 * st["bytes_per_save"]) and st["bytes_per_save"] > 100_000


def test_background_writer_and_save_on_stop(tmp_path):
    runner, hook, clock = _runner_with_hook(tmp_path, Config(), every_s=1, min_interval_s=1, background=True)
    clock.t = 5
    hook.on_step(runner, runner.sense, {})
    hook.join()
    assert hook.store.saves == 1
    runner.rule.steps += 5
    hook.on_stop(runner, {})
    info, state = hook.store.load()
    assert info.sequence == 2 and info.step == state["meta"]["step"] == runner.rule.steps


def test_checkpoint_config_errors_name_the_field():
    with pytest.raises(ConfigError, match=r"checkpoint.every_s: must be >= checkpoint.min_interval_s"):
        Config.from_dict({"checkpoint": {"every_s": 10, "min_interval_s": 60}})
    with pytest.raises(ConfigError, match=r"checkpoint.evry_s: unknown key"):
        Config.from_dict({"checkpoint": {"evry_s": 10}})


# ---------------------------------------------------------------------------- resume
def _state(rule, body):
    return ([p.detach().clone() for p in rule.brain.parameters()], [z.clone() for z in rule.z_pi + rule.z_d],
            rule.gen.get_state().clone(), rule.thought.clone(), rule.steps, body.pos.copy(), body.heading,
            body.rng.bit_generator.state, body.food.copy(), body.hazards.copy())


def _same(a, b):
    for x, y in zip(a, b):
        if isinstance(x, list):
            assert all(torch.equal(u, v) for u, v in zip(x, y))
        elif isinstance(x, torch.Tensor):
            assert torch.equal(x, y)
        elif hasattr(x, "shape"):
            assert (x == y).all()
        else:
            assert x == y


def test_resume_is_bit_exact_with_an_uninterrupted_run(tmp_path):
    """torch's learner (the numpy one's: tests/test_numpy_learner.py)."""
    cfg = Config.from_dict({"model": {"backend": "torch"}})
    mk = lambda d: CheckpointHook(CheckpointStore(d), CheckpointConfig(every_s=0, min_interval_s=0), handle_sigint=False)  # noqa: E731
    straight = Runner(cfg, Arena(cfg.arena), seed=5, progress=False)
    straight.run(24)
    half = Runner(cfg, Arena(cfg.arena), seed=5, progress=False, hooks=[mk(tmp_path)])
    half.run(12)
    assert straight.lifespans == [] and straight.rule.deaths == 0  # precondition: the RAM ring is not used after resume
    info, state = CheckpointStore(tmp_path).load()
    assert info.step == 12
    ck.check_matches(state, cfg, half.body.spec)
    body2 = Arena(cfg.arena)  # a new process: new body, new brain built from scratch
    hook2 = mk(tmp_path)
    hook2.resume_state = state
    resumed = Runner(cfg, body2, seed=5, progress=False, hooks=[hook2])
    resumed.run(12)
    assert resumed.rule.steps == 24 and resumed.body_steps == straight.body_steps
    _same(_state(resumed.rule, body2), _state(straight.rule, straight.body))
    assert CheckpointStore(tmp_path).load()[0].step == 24


@pytest.mark.parametrize("backend", ["torch", "numpy"])
def test_resume_after_deaths_restores_counters_and_lifespans(tmp_path, backend):
    cfg = Config.from_dict({"model": {"backend": backend}, "arena": {"energy_drain": 0.05}})  # short lives
    mk = lambda: CheckpointHook(CheckpointStore(tmp_path), CheckpointConfig(every_s=0, min_interval_s=0), handle_sigint=False)  # noqa: E731
    a = Runner(cfg, Arena(cfg.arena), seed=1, progress=False, hooks=[mk()])
    a.run(60)
    assert a.lifespans, "precondition: some lives ended"
    _, state = CheckpointStore(tmp_path).load()
    h = mk()
    h.resume_state = state
    b = Runner(cfg, Arena(cfg.arena), seed=1, progress=False, hooks=[h])
    b.run(5)
    assert b.lifespans[: len(a.lifespans)] == a.lifespans and b.rule.steps == a.rule.steps + 5
    assert b.rule.deaths >= a.rule.deaths and len(b.rule.ring) >= 1


def test_mismatch_is_refused_saying_what_differs(tmp_path):
    cfg = Config()
    runner, hook, _ = _runner_with_hook(tmp_path, cfg, every_s=0, min_interval_s=0, background=False)
    hook.save_now()
    _, state = hook.store.load()
    assert ck.differences(state, cfg, runner.body.spec) == []
    assert ck.differences(state, cfg.replace("runtime", threads=2), runner.body.spec) == []  # operational only
    other = cfg.replace("rule", gamma=0.9).replace("model", hidden=64)
    d = ck.differences(state, other, runner.body.spec)
    assert d == ["model.hidden: checkpoint 128, now 64", "rule.gamma: checkpoint 0.99, now 0.9"]
    spec2 = Arena(cfg.replace("arena", eye_w=48).arena).spec
    with pytest.raises(ck.CheckpointMismatch, match=r"arena.eye_w: checkpoint \d+, now 48.*body.eye_shape"):
        ck.check_matches(state, cfg.replace("arena", eye_w=48), spec2)


# ---------------------------------------------------------------------------- CLI
def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "edge_runtime.cli", *args], capture_output=True, text=True, timeout=300, **kw)


def test_cli_verify_json_and_exit_codes(two, tmp_path, capsys):
    assert main(["checkpoints", "verify", str(two.dir), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["valid"] is True and res["sequence"] == 2 and res["step"] == 20 and len(res["slots"]) == 2
    empty = tmp_path / "empty"
    empty.mkdir()
    assert main(["checkpoints", "verify", str(empty), "--json"]) == 1
    res = json.loads(capsys.readouterr().out)
    assert res["valid"] is False and res["sequence"] is None and [s["error"] for s in res["slots"]] == ["missing", "missing"]
    _corrupt(two.slot_path("A"), "zero_length")
    _corrupt(two.slot_path("B"), "truncated")
    assert main(["checkpoints", "verify", str(two.dir)]) == 1
    assert "NO VALID CHECKPOINT" in capsys.readouterr().out


def test_cli_sim_resume_continues_and_refuses_a_mismatch(tmp_path):
    d = tmp_path / "run"
    p = run_cli("--sim", "--steps", "12", "--seed", "4", "--run-dir", str(d), "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "MB/day from the timer" in p.stderr and "rollback ring" in p.stderr
    p = run_cli("--sim", "--resume", str(d), "--steps", "8", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "resumed from checkpoint: step 12" in p.stderr
    steps = [json.loads(l)["step"] for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 21))
    v = run_cli("checkpoints", "verify", str(d), "--json")
    assert v.returncode == 0 and json.loads(v.stdout)["step"] == 20
    p = run_cli("--sim", "--resume", str(d), "--steps", "5", "--set", "rule.gamma=0.9")
    assert p.returncode == 2 and len(p.stderr.strip().splitlines()) == 1
    assert "rule.gamma: checkpoint 0.99, now 0.9" in p.stderr
    (tmp_path / "bare").mkdir()
    p = run_cli("--sim", "--resume", str(tmp_path / "bare"), "--steps", "5")
    assert p.returncode == 2 and "no valid checkpoint" in p.stderr and len(p.stderr.strip().splitlines()) == 1


def test_cli_continue_starts_fresh_then_continues_and_keeps_corrupt_files(tmp_path):
    """What the service runs: the first start is fresh, every restart continues where the last one saved."""
    d = tmp_path / "run"
    p = run_cli("--sim", "--steps", "6", "--seed", "3", "--run-dir", str(d), "--continue", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "starting fresh" in p.stderr
    p = run_cli("--sim", "--steps", "4", "--seed", "3", "--run-dir", str(d), "--continue", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "resumed from checkpoint: step 6" in p.stderr
    steps = [json.loads(l)["step"] for l in (d / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(1, 11))
    # every slot damaged: nothing loads, the files are set aside (not overwritten) and the run starts fresh
    slots = sorted((d / "checkpoints").glob("ckpt-*.bin"))
    assert slots
    for f in slots:
        raw = bytearray(f.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        f.write_bytes(bytes(raw))
    p = run_cli("--sim", "--steps", "3", "--seed", "3", "--run-dir", str(d), "--continue", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "no valid checkpoint" in p.stderr and "moved aside" in p.stderr
    aside = sorted(tmp_path.glob("run.old-*"))
    assert len(aside) == 1  # the whole old run, its damaged checkpoints and its weights, kept for a post-mortem
    assert len(sorted((aside[0] / "checkpoints").glob("ckpt-*.bin"))) == len(slots)
    assert (aside[0] / "weights.npz").exists() and len((aside[0] / "metrics.jsonl").read_text().splitlines()) == 10
    assert len((d / "metrics.jsonl").read_text().splitlines()) == 3
    p = run_cli("--sim", "--steps", "3", "--continue", "--no-progress")
    assert p.returncode == 2 and "--continue goes with --run-dir" in p.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_graceful_stop_writes_a_final_checkpoint(tmp_path, sig):
    d = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "--sim", "--run-dir", str(d), "--no-progress"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            m = d / "metrics.jsonl"
            if m.exists() and m.stat().st_size > 0:
                break
            time.sleep(0.1)
        time.sleep(0.3)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    info, state = CheckpointStore(d / "checkpoints").load()
    assert "checkpoint (stop)" in err and summary["steps"] >= 1
    assert info.step == state["meta"]["step"] == summary["steps"]


def test_an_arena_state_in_the_format_before_worlds_saved_themselves_still_loads():
    """Checkpoints written before the arena declared `Restorable` held its fields as tensors at the top level."""
    from edge_runtime.checkpoint.state import _body_state, _load_body_state
    from sim_bridge.arena import Arena

    cfg = Config.from_dict({"arena": {"eye_w": 32, "eye_h": 24}})
    with Arena(cfg.arena) as a, Arena(cfg.arena) as b:
        a.reset(seed=5)
        for _ in range(30):
            a.act((2, 0))
        t = lambda x: torch.from_numpy(np.array(x, dtype=np.float64, copy=True))  # noqa: E731
        old = {"kind": "arena", "rng": json.dumps(a.rng.bit_generator.state), "rng_name": "PCG64",
               "pos": t(a.pos), "heading": float(a.heading), "food": t(a.food), "hazards": t(a.hazards),
               "hazard_vel": t(a.hazard_vel), "obstacles": t(a.obstacles), "hp": float(a.hp), "energy": float(a.energy),
               "in_hazard": torch.from_numpy(np.array(a._in_hazard, dtype=bool)), "frame": int(a._frame),
               "counters": json.dumps(a._counters)}
        b.reset(seed=99)
        s = _load_body_state(b, old)
        assert s.frame_id == a._frame and (b.pos == a.pos).all() and b.heading == a.heading
        assert [b.act((1, 2)).hp for _ in range(20)] == [a.act((1, 2)).hp for _ in range(20)]
        assert _body_state(b)["kind"] == "custom"


def test_a_torch_run_goes_on_with_torch_under_the_default_config(tmp_path):
    """model.backend = auto picks numpy for a new run; a run whose checkpoint torch wrote (before auto, or with
    --set model.backend=torch) continues on torch, as the service restarts it (--continue, the default config)."""
    d = tmp_path / "run"
    p = run_cli("--sim", "--steps", "6", "--seed", "3", "--run-dir", str(d), "--no-progress", "--set", "model.backend=torch")
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["backend"] == "torch"
    p = run_cli("--sim", "--steps", "4", "--run-dir", str(d), "--continue", "--no-progress")
    assert p.returncode == 0, p.stderr
    assert "resumed from checkpoint: step 6" in p.stderr and "written by the torch learner" in p.stderr
    assert json.loads(p.stdout.strip().splitlines()[-1])["backend"] == "torch"
    # named outright, the other learner is refused, naming the field
    p = run_cli("--sim", "--steps", "4", "--run-dir", str(d), "--continue", "--no-progress", "--set", "model.backend=numpy")
    assert p.returncode == 2 and "model.backend" in p.stderr
    # a new run directory under the default config learns on numpy
    p = run_cli("--sim", "--steps", "4", "--run-dir", str(tmp_path / "new"), "--no-progress")
    assert p.returncode == 0 and json.loads(p.stdout.strip().splitlines()[-1])["backend"] == "numpy"
