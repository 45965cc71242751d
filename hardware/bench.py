"""Figures for the robot code path on this machine: control-loop rate, serial round trip, bad-frame handling.

    python -m hardware.bench [--steps 300] [--noise-s 3] [--json]

Everything goes through the real code: a virtual MCU behind a pty, pyserial,
the protocol decoder, OpenCV replay of the example videos, RobotBody, and the
runtime's Runner with learning on.
"""
from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

import numpy as np

from edge_runtime.jsonout import dumps

from .camera import CameraConfig, make_replay_videos
from .mcu_link import McuLink
from .robot import McuConfig, RobotBody, RobotConfig
from .virtual_mcu import VirtualMCU, VirtualMcuConfig


def _pct(xs, q):
    return round(float(np.percentile(xs, q)), 3) if len(xs) else None


def bench_loop(steps: int, videos: tuple[str, str]) -> dict:
    from edge_runtime.config import Config
    from edge_runtime.runtime import Runner

    cfg = Config()
    vm = VirtualMCU(VirtualMcuConfig(seed=1, bump_rate_hz=1.0, revive_after_s=0.2))
    port = vm.start()
    body = RobotBody(RobotConfig(control_hz=0, revive="button,timeout"),
                     CameraConfig(backend="replay", left=videos[0], right=videos[1]), McuConfig(port=port))
    try:
        # the body alone: act() = motor command out, stereo frame in, latest report mapped to senses
        body.reset()
        t0 = time.perf_counter()
        n = steps * 2
        for i in range(n):
            s = body.act({"drive": i % 3, "turn": (i // 3) % 3})
            if s.dead:
                body.respawn()
        body_rate = n / (time.perf_counter() - t0)
        runner = Runner(cfg, body, seed=0, run_dir=None, progress=False)
        summary = runner.run(steps)
        counters = body.counters
    finally:
        body.close()
        vm.close()
    return {"body_act_per_s": round(body_rate, 1), "backend": summary["backend"],
            "learning_decisions_per_s": summary["steps_per_s"],
            "learning_body_steps_per_s": round(summary["body_steps"] / summary["wall_s"], 1),
            "action_repeat": cfg.runtime.action_repeat, "steps": steps,
            "mcu_rx_bad_frames": counters.get("mcu_rx_bad_frames"), "cam_stale": counters.get("cam_stale")}


def bench_rtt(seconds: float) -> dict:
    vm = VirtualMCU(VirtualMcuConfig(seed=1, bump_rate_hz=0.0))
    port = vm.start()
    link = McuLink(port, heartbeat_s=0.005, silent_s=0.5).start(wait_s=3)
    try:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            link.send_motor(100, 100)
            time.sleep(0.01)
        rtt = list(link.stats.rtt_ms)
        ack = list(link.ack_ms)
    finally:
        link.close()
        vm.close()
    return {"heartbeat_rtt_ms_median": _pct(rtt, 50), "heartbeat_rtt_ms_p95": _pct(rtt, 95), "heartbeats": len(rtt),
            "command_to_ack_ms_median": _pct(ack, 50), "command_to_ack_ms_p95": _pct(ack, 95),
            "note": "ack arrives in the next 50 Hz sensor report, so it includes up to 20 ms of report period"}


def bench_noise(p: float, seconds: float) -> dict:
    vm = VirtualMCU(VirtualMcuConfig(seed=5, bump_rate_hz=0.0, line_noise=p))
    port = vm.start()
    link = McuLink(port).start(wait_s=5)
    try:
        t0 = time.monotonic()
        alive_samples = []
        while time.monotonic() - t0 < seconds:
            link.send_motor(200, 200)
            alive_samples.append(link.alive)
            time.sleep(0.01)
        st = link.dec.stats
        out = {"line_noise": p, "seconds": seconds, "frames_sent_by_mcu": vm.stats.frames_sent,
               "frames_corrupted_by_mcu": vm.stats.frames_corrupted, "good_frames": st.frames,
               "bad_frames_dropped": st.bad_frames, "lost_by_seq_gap": st.lost, "reports": link.stats.reports,
               "report_rate_hz": round(link.stats.reports / seconds, 1), "silent_events": link.stats.silent_events,
               "link_alive_fraction": round(float(np.mean(alive_samples)), 3),
               "commands_applied_by_mcu": vm.stats.motor_commands}
    finally:
        link.close()
        vm.close()
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m hardware.bench", description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=300, help="learning decisions for the loop-rate figure")
    ap.add_argument("--rtt-s", type=float, default=3.0)
    ap.add_argument("--noise-s", type=float, default=3.0)
    ap.add_argument("--json", action="store_true")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    torch.set_num_threads(1)
    here = Path(__file__).resolve().parent.parent / "examples" / "replay"
    videos = (str(here / "left.avi"), str(here / "right.avi"))
    if not Path(videos[0]).exists():
        videos = make_replay_videos("/tmp/edge-bench-replay", frames=60)
    res = {"loop": bench_loop(a.steps, videos), "serial": bench_rtt(a.rtt_s),
           "noise": [bench_noise(p, a.noise_s) for p in (0.0, 0.1, 0.3)]}
    if a.json:
        print(dumps(res))
    else:
        for k, v in res.items():
            for item in v if isinstance(v, list) else [v]:
                print(f"{k}: " + ", ".join(f"{kk}={vv}" for kk, vv in item.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
