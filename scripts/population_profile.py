"""Where a population's step goes: the rule alone, per N, without worlds (what `bench population` cannot split).

    python scripts/population_profile.py [--sizes 1,4,16] [--steps 40] [--backend numpy|torch] [--repeats 3]

Each N runs in its own process with one thread (numpy's BLAS or torch's): N agents decide and learn on fixed
random senses (no deaths, no worlds), `--steps` timed steps after 10 of warm-up, the median of `--repeats`.
Prints one JSON object: per N, `ms_per_step` and `ms_per_agent`; on numpy also where a step's time goes
(`sections_ms`: the batched forward passes, the batched backward passes, the per-agent trace and bounded-step
arithmetic (`per_agent_update`), and the rest: the per-agent scalars, sampling and bookkeeping).

A step costs about F + N * m: F, what does not grow with N (the numpy calls, ~2,000 a step, each paid once for
all N), is read at N = 1; m, what each agent adds, is the slope between the sizes.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time


def worker(backend: str, n: int, steps: int) -> dict:
    import copy

    import numpy as np

    from edge_runtime.acting import Feeling
    from edge_runtime.bodies import make_body
    from edge_runtime.config import Config

    cfg = Config.from_dict({"model": {"backend": backend}})
    spec = make_body(cfg).spec
    rng = np.random.default_rng(0)
    eyes = rng.uniform(-1, 1, (n, 6, *cfg.model.input_hw)).astype(np.float32)
    body = rng.uniform(-1, 1, (n, 2 + spec.touch_channels)).astype(np.float32)
    feels = [Feeling(-0.001, -0.001, False, 4)] * n
    sections = {}
    if backend == "numpy":
        from edge_runtime.numpy_learner import limit_blas_threads
        from edge_runtime.numpy_learner.batched import BatchedBrain
        from edge_runtime.population.numpy_rule import NumpyPopulationSurvival

        limit_blas_threads(1)
        rule = NumpyPopulationSurvival(spec, cfg.model, copy.deepcopy(cfg.rule), n, 0)
        timed = {"forward": (BatchedBrain, ("forward", "discomfort_estimate")),
                 "backward": (BatchedBrain, ("grad_discomfort", "grad_policy")),
                 "per_agent_update": (NumpyPopulationSurvival, ("_update",))}
        for label, (cls, names) in timed.items():
            for name in names:
                f = getattr(cls, name)

                def clocked(*a, _f=f, _label=label, **k):
                    t = time.perf_counter()
                    r = _f(*a, **k)
                    sections[_label] = sections.get(_label, 0.0) + time.perf_counter() - t
                    return r
                setattr(cls, name, clocked)
    else:
        import torch

        from edge_runtime.population.rule import PopulationSurvival

        torch.set_num_threads(1)
        rule = PopulationSurvival(spec, cfg.model, copy.deepcopy(cfg.rule), n, 0)
        eyes, body = torch.from_numpy(eyes), torch.from_numpy(body)

    def run(k):
        for _ in range(k):
            rule.decide(eyes, body)
            rule.learn(feels, eyes, body)

    run(10)
    sections.clear()
    t = time.perf_counter()
    run(steps)
    wall = time.perf_counter() - t
    rec = {"ms_per_step": wall / steps * 1000}
    if sections:
        ms = {k: v / steps * 1000 for k, v in sections.items()}
        ms["rest"] = rec["ms_per_step"] - sum(ms.values())
        rec["sections_ms"] = ms
    return rec


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1,4,16")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--backend", default="numpy", choices=["numpy", "torch"])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--worker", nargs=2, metavar=("N", "STEPS"), help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.worker:
        print(json.dumps(worker(a.backend, int(a.worker[0]), int(a.worker[1]))))
        return 0
    out = {"backend": a.backend, "steps": a.steps, "repeats": a.repeats, "sizes": {}}
    for n in (int(x) for x in a.sizes.split(",")):
        runs = []
        for _ in range(a.repeats):
            p = subprocess.run([sys.executable, __file__, "--backend", a.backend, "--worker", str(n), str(a.steps)],
                               capture_output=True, text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
            if p.returncode:
                raise SystemExit(p.stderr)
            runs.append(json.loads(p.stdout.strip().splitlines()[-1]))
        best = sorted(runs, key=lambda r: r["ms_per_step"])[len(runs) // 2]  # the median run, whole
        rec = {"ms_per_step": round(best["ms_per_step"], 2), "ms_per_agent": round(best["ms_per_step"] / n, 3)}
        if "sections_ms" in best:
            rec["sections_ms"] = {k: round(v, 2) for k, v in best["sections_ms"].items()}
        rec["ms_per_step_all"] = [round(r["ms_per_step"], 2) for r in runs]
        out["sizes"][n] = rec
        print(f"N={n}: {rec}", file=sys.stderr, flush=True)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
