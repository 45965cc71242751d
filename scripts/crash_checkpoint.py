#!/usr/bin/env python3
"""Crash test for the flash checkpoint store: SIGKILL a saving process at random moments, many times.

Each trial forks a child that saves checkpoints into one store in a loop
(payload: a tensor filled with the save's step, about --payload-kb large, the
size of a default-config checkpoint) and reports every save that returned
(durably written) on a pipe. The parent kills it with SIGKILL after a random
delay, then opens the store like a fresh process would and checks:

  * a valid checkpoint loads (never a torn one: header CRC + payload SHA-256),
  * its payload is self-consistent (every element equals the step in the header),
  * it is not older than the last save the child saw complete,
  * neither slot file (the final names) is ever invalid: only the temp file can be torn.

Writes go out in 64 KiB pieces at an emulated --write-mbps (default 20 MB/s,
SD-card-like), so a ~0.9 MB save takes ~45 ms and many kills land mid-write.
--unsafe-inplace is the negative control (overwrite the slot file in place):
it must fail, which shows the test can catch a torn checkpoint.

Trials run in the same directory, so each child also starts from what the
previous crash left (leftover temp file, sequence numbers carried on).

SIGKILL kills the process, not the machine: the kernel still flushes what the
process wrote. It tests atomicity of the write protocol at every point of the
sequence (open/write/fsync/replace/dir-fsync), not a power cut; power loss
additionally relies on fsync being honest on the device.

    python scripts/crash_checkpoint.py --trials 300 [--dir DIR] [--seed 0] [--json]
    python scripts/crash_checkpoint.py --save-bench 30 [--dir DIR] [--backend auto|torch|numpy]
                                                                         save time / size / bytes per day
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
from pathlib import Path

from edge_runtime.jsonout import dumps


def _child(directory: str, payload_kb: int, wfd: int, write_mbps: float, unsafe_inplace: bool):
    import torch

    from edge_runtime import checkpoint as ck

    torch.set_num_threads(1)
    real_write = os.write
    if write_mbps > 0:
        # flash is slow: write in 64 KiB pieces at about write_mbps MB/s (this is a forked child: patching is local)
        def slow_write(fd, data, _chunk=64 * 1024):
            n = real_write(fd, bytes(data[:_chunk]))
            time.sleep(n / (write_mbps * 1e6))
            return n
        os.write = slow_write  # (the os module every writer uses, the store included)
    store = ck.CheckpointStore(directory)
    store.lock()
    store.clean_temp()
    newest = store.newest()
    step = newest[0].step + 1 if newest else 1
    n = max(1, payload_kb * 1024 // 4)
    while True:
        payload = ck.encode({"step": step, "data": torch.full((n,), float(step))})
        if unsafe_inplace:  # negative control: the naive way, overwriting the slot file in place
            newest = store.newest()
            seq = newest[0].sequence + 1 if newest else 1
            slot = "A" if newest is None or newest[0].slot == "B" else "B"
            fd = os.open(store.slot_path(slot), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            view = memoryview(ck.pack(payload, seq, step))
            while view:
                view = view[os.write(fd, view):]
            os.close(fd)
            info = ck.SlotInfo(slot, "", True, None, seq, step)
        else:
            info = store.save(payload, step)
        real_write(wfd, f"{info.sequence} {step}\n".encode())
        step += 1


def trial(directory: str, rng: random.Random, payload_kb: int = 900, max_delay_s: float = 0.25, write_mbps: float = 20.0,
          unsafe_inplace: bool = False) -> dict:
    from edge_runtime.checkpoint import CheckpointStore, NoValidCheckpoint

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child
        os.close(r)
        code = 0
        try:
            _child(directory, payload_kb, w, write_mbps, unsafe_inplace)
        except BaseException:  # noqa: BLE001
            import traceback

            traceback.print_exc()
            code = 1
        finally:
            os._exit(code)
    os.close(w)
    delay = rng.uniform(0.0, max_delay_s)
    time.sleep(delay)
    os.kill(pid, signal.SIGKILL)
    os.waitpid(pid, 0)
    acked = b""
    while True:
        chunk = os.read(r, 1 << 16)
        if not chunk:
            break
        acked += chunk
    os.close(r)
    lines = acked.decode().split()
    last_seq = int(lines[-2]) if len(lines) >= 2 else None
    tmp_left = any(Path(directory, f"ckpt-{s}.bin.tmp").exists() for s in "AB")
    store = CheckpointStore(directory)
    res = {"delay_s": round(delay, 4), "acked_saves": len(lines) // 2, "last_acked_sequence": last_seq,
           "tmp_left": tmp_left, "invalid_slots": [i.slot for i, _ in store.scan() if not i.valid and i.error != "missing"]}
    try:
        info, state = store.load()
    except NoValidCheckpoint as e:
        nothing = not any(Path(directory, f"ckpt-{s}.bin").exists() for s in "AB")
        res.update(ok=last_seq is None and nothing, loaded=None, error=str(e))
        return res
    consistent = state["step"] == info.step and bool((state["data"] == float(info.step)).all())
    fresh = last_seq is None or info.sequence >= last_seq
    res.update(loaded={"slot": info.slot, "sequence": info.sequence, "step": info.step}, consistent=consistent,
               not_older_than_acked=fresh, ok=consistent and fresh and not res["invalid_slots"])
    return res


def run(trials: int, directory: str | None = None, seed: int = 0, payload_kb: int = 900, max_delay_s: float = 0.25,
        write_mbps: float = 20.0, unsafe_inplace: bool = False) -> dict:
    rng = random.Random(seed)
    own = directory is None
    d = tempfile.mkdtemp(prefix="crash-ckpt-") if own else directory
    Path(d).mkdir(parents=True, exist_ok=True)
    results = []
    t0 = time.perf_counter()
    for _ in range(trials):
        results.append(trial(d, rng, payload_kb, max_delay_s, write_mbps, unsafe_inplace))
    failed = [r for r in results if not r["ok"]]
    out = {"trials": trials, "passed": trials - len(failed), "failed": len(failed),
           "trials_killed_mid_write": sum(1 for r in results if r["tmp_left"]),
           "trials_with_a_torn_slot_file": sum(1 for r in results if r["invalid_slots"]),
           "trials_killed_before_a_save_completed": sum(1 for r in results if r["acked_saves"] == 0),
           "saves_acknowledged": sum(r["acked_saves"] for r in results), "payload_kb": payload_kb,
           "write_mbps": write_mbps, "unsafe_inplace": unsafe_inplace,
           "dir": d, "wall_s": round(time.perf_counter() - t0, 1), "failures": failed[:5]}
    if own:
        import shutil

        shutil.rmtree(d, ignore_errors=True)
    return out


def save_bench(n: int, directory: str | None = None, backend: str = "auto") -> dict:
    """Save time and file size at the default config (model.backend = `backend`): n saves of a `--sim` runner's
    full state."""
    import statistics
    import tempfile

    from edge_runtime import checkpoint as ck
    from edge_runtime.config import Config
    from edge_runtime.runtime import Runner
    from sim_bridge.arena import Arena

    cfg = Config.from_dict({"model": {"backend": backend}})
    runner = Runner(cfg, Arena(cfg.arena), seed=0, progress=False)  # (runtime.threads = 1 for either learner)
    runner.run(20)
    d = directory or tempfile.mkdtemp(prefix="save-bench-")
    store = ck.CheckpointStore(d)
    cap, enc, wr, tot = [], [], [], []
    for _ in range(n):
        t0 = time.perf_counter()
        state = ck.capture(runner)
        t1 = time.perf_counter()
        payload = ck.encode(state)
        t2 = time.perf_counter()
        info = store.save(payload, runner.rule.steps)
        t3 = time.perf_counter()
        cap.append(t1 - t0), enc.append(t2 - t1), wr.append(t3 - t2), tot.append(t3 - t0)
    ms = lambda xs: round(statistics.median(xs) * 1e3, 1)  # noqa: E731
    b = ck.budget(info.bytes, ck.CheckpointConfig())
    if directory is None:
        import shutil

        shutil.rmtree(d, ignore_errors=True)
    return {"saves": n, "backend": runner.rule.net.name, "file_bytes": info.bytes, "median_ms_total": ms(tot), "median_ms_capture_in_loop": ms(cap),
            "median_ms_serialise": ms(enc), "median_ms_write_fsync_replace": ms(wr), "max_ms_total": round(max(tot) * 1e3, 1),
            "default_every_s": b["every_s"], "bytes_per_day_default_timer": b["bytes_per_day_timer"],
            "bytes_per_day_max_min_interval": b["bytes_per_day_max"], "dir": d}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--trials", type=int, default=300)
    ap.add_argument("--dir", default=None, help="store directory (default: a temporary one, removed afterwards)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--payload-kb", type=int, default=900, help="payload size (a default-config checkpoint is ~920 KB)")
    ap.add_argument("--max-delay", type=float, default=0.25, help="kill after uniform(0, this) seconds")
    ap.add_argument("--write-mbps", type=float, default=20.0,
                    help="emulated flash write speed in MB/s (SD-card-like; 0 = as fast as the disk here)")
    ap.add_argument("--unsafe-inplace", action="store_true",
                    help="negative control: overwrite slot files in place instead of the atomic protocol (should FAIL)")
    ap.add_argument("--save-bench", type=int, default=0, metavar="N",
                    help="instead: time N saves of a default-config runner and print size, ms and bytes/day")
    ap.add_argument("--backend", default="auto", choices=("auto", "torch", "numpy"),
                    help="--save-bench: the runner's model.backend (auto, the default config's, is numpy)")
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    if a.trials < 1:
        ap.error("--trials must be >= 1")
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    if a.save_bench:
        res = save_bench(a.save_bench, a.dir, a.backend)
        print(dumps(res) if a.json else "\n".join(f"{k}: {v}" for k, v in res.items()))
        return 0
    res = run(a.trials, a.dir, a.seed, a.payload_kb, a.max_delay, a.write_mbps, a.unsafe_inplace)
    if a.json:
        print(dumps(res))
    else:
        print(f"{res['passed']}/{res['trials']} crash trials passed ({res['failed']} failed); "
              f"{res['trials_killed_mid_write']} killed mid-write (temp file left), {res['trials_with_a_torn_slot_file']} torn slot files, {res['trials_killed_before_a_save_completed']} before "
              f"the child completed a save; {res['saves_acknowledged']} saves acknowledged; {res['wall_s']} s")
        for f in res["failures"]:
            print("FAILED:", dumps(f))
    return 0 if res["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
