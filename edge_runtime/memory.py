"""A process's peak resident memory, without torch (a numpy learner measures itself with it)."""
from __future__ import annotations

import resource


def vm_hwm_mb(pid: int | str = "self") -> float:
    """Peak resident memory of a process from /proc (VmHWM). Unlike getrusage's ru_maxrss it starts afresh at
    exec, so a child does not inherit the peak of the parent it was forked from."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    raise RuntimeError(f"no VmHWM in /proc/{pid}/status")


def peak_rss_mb() -> float:
    """This process's peak resident memory: VmHWM where /proc has it (getrusage's ru_maxrss would carry a big
    parent's peak into a child it started), else ru_maxrss."""
    try:
        return vm_hwm_mb()
    except (OSError, RuntimeError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
