"""Benchmark: the control loop's rate with a console flooded with commands."""
from __future__ import annotations

import os
import sys

from ..config import ConsoleConfig
from .loop import ConsoleHook
from .server import Console


FLOOD_CLIENT = r"""
import os, select, sys
fd = int(sys.argv[1])
os.set_blocking(fd, False)
cmds = b"status\rsenses\rlr\rhelp\rlearn\rbogus\rlr x\rstream on 0.1\r"
while True:
    r, w, _ = select.select([fd], [fd], [], 1.0)
    try:
        if r and not os.read(fd, 65536):
            break
        if w:
            os.write(fd, cmds)
    except BlockingIOError:
        pass
    except OSError:
        break
"""


def bench_console(cfg, steps: int = 400, repeats: int = 3, seed: int = 0) -> dict:
    """Decisions/s over `steps` decisions in pairs of runs: no console, then a console on a pty flooded by another
    process (read-only commands as fast as it answers, plus `stream on 0.1`). Same seed: both do identical work.
    Also the loop thread's own CPU time per decision (time.thread_time), which other processes on a shared
    machine disturb less than the wall-clock rate."""
    import subprocess

    from ..bench_loop import timed_arena_run

    rates: dict[str, list[float]] = {"off": [], "busy": []}
    cpu_ms: dict[str, list[float]] = {"off": [], "busy": []}
    answered, per_step = [], 0
    for _ in range(repeats):
        for mode in ("off", "busy"):
            hooks, proc, fds, hook = [], None, (), None
            if mode == "busy":
                master, slave = os.openpty()
                fds = (master, slave)
                hook = ConsoleHook(Console(os.ttyname(slave), ConsoleConfig()))
                hook.console.open()
                hooks.append(hook)
                proc = subprocess.Popen([sys.executable, "-c", FLOOD_CLIENT, str(master)], pass_fds=(master,))
            try:
                s, ms, _ = timed_arena_run(cfg, steps, seed, hooks)
                cpu_ms[mode].append(ms)
                rates[mode].append(s["steps_per_s"])
                if hook is not None:
                    answered.append(hook.console.commands / s["wall_s"])
                    per_step = max(per_step, hook.max_requests_per_step)
            finally:
                if proc is not None:
                    proc.kill()
                    proc.wait()
                for fd in fds:
                    os.close(fd)

    def med(xs):
        return sorted(xs)[len(xs) // 2]

    ratios = [b / a for a, b in zip(rates["off"], rates["busy"])]
    return {
        "steps": steps, "repeats": repeats,
        "rate_off": rates["off"], "rate_busy": rates["busy"],
        "median_rate_off": med(rates["off"]), "median_rate_busy": med(rates["busy"]),
        "median_pair_ratio_busy_vs_off": round(med(ratios), 3),
        "loop_cpu_ms_per_step_off": med(cpu_ms["off"]), "loop_cpu_ms_per_step_busy": med(cpu_ms["busy"]),
        "console_commands_per_s": round(med(answered), 1),
        "max_console_requests_per_step": per_step,
    }
