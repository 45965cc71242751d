"""What the probe's scripts measure with: memory from /proc, median call time, the fixed per-tower inputs of the
RSS runs. Imports nothing heavy at module level, so an RSS script's first reading is the bare interpreter's."""
import statistics
import time


def hwm():
    """[VmHWM, VmRSS] of this process in MB (the order /proc/self/status lists them)."""
    return [int(l.split()[1]) / 1024 for l in open("/proc/self/status") if l.startswith(("VmHWM", "VmRSS"))]


def med_ms(fn, n, warm=50):
    """(median, p90) of n calls in ms, after `warm` calls."""
    for _ in range(warm):
        fn()
    ts = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts) * 1e3, statistics.quantiles(ts, n=10)[-1] * 1e3


def rss_inputs():
    """Each tower's VJP inputs for the RSS runs (the default arena brain's shapes), seeded."""
    import torch

    g = torch.Generator().manual_seed(0)
    eyes, body, thought = torch.randn(1, 6, 24, 32, generator=g), torch.randn(1, 10, generator=g), torch.randn(1, 112, generator=g)
    return {"discomfort": (eyes, body, thought, torch.randn(1, 8, generator=g)),
            "policy": (eyes, body, thought, torch.randn(1, 330, generator=g), torch.randn(1, 118, generator=g))}
