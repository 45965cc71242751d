"""`edge-runtime bench godot`: Godot steps/s and bytes per step, hex against binary frames."""
from __future__ import annotations

import logging
import time

import numpy as np

from .godot_options import GodotOptions
from .godot_world import GodotWorld

log = logging.getLogger("sim_bridge.godot")

def bench_command(cfg, args) -> dict:
    """`edge-runtime bench godot` (the CLI finds this through the edge_runtime.commands entry points)."""
    from edge_runtime.bodies import BodyError

    from .godot_protocol import GodotError

    over = {"project": args.godot_project} if args.godot_project else {}
    try:
        return bench_godot(GodotOptions.from_config(cfg, **over), args.steps, seed=args.seed)
    except GodotError as e:
        raise BodyError(str(e)) from None


def bench_godot(options: GodotOptions | None = None, steps: int = 300, warmup: int = 20, frames=("hex", "binary"),
                seed: int = 0) -> dict:
    """Godot steps/s and bytes received per step, for each frame format, with random actions."""
    opts = options or GodotOptions()
    res = {"eye": [opts.eye_h, opts.eye_w], "n_agents": opts.n_agents, "steps": steps}
    rng = np.random.default_rng(seed)
    for fmt in frames:
        kw = {f: getattr(opts, f) for f in opts.__dataclass_fields__}
        kw.update(frames=fmt, port=0 if opts.launch else opts.port)
        t_start = time.perf_counter()
        with GodotWorld(GodotOptions(**kw)) as w:
            t_conn = time.perf_counter() - t_start
            w.reset(seed)
            heads = w.layouts[0].spec.action_heads

            def acts():
                return {i: [int(rng.integers(n)) for n in heads.values()] for i in range(w.n_agents)}
            for _ in range(warmup):
                w.step(acts())
            b0 = w.bytes_in
            t0 = time.perf_counter()
            for _ in range(steps):
                w.step(acts())
            dt = time.perf_counter() - t0
            res[fmt] = {"frames": "binary" if w.binary else "hex", "steps_per_s": round(steps / dt, 1),
                        "bytes_per_step": round((w.bytes_in - b0) / steps), "startup_s": round(t_conn, 2)}
    return res
