"""Benchmarks: commands that print figures. Speed and memory targets live here, not in unit tests."""
from __future__ import annotations

import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

from .bodies import kind
from .bodies import make_body as make_body_named
from .config import Config, learner_backend
from .jsonout import dumps
from .memory import peak_rss_mb, vm_hwm_mb  # noqa: F401  (re-exported: bench_loop and the peer read them here)


def arena(cfg: Config):
    """The built-in arena, found by name like any body (edge_runtime imports no body package)."""
    return kind("arena").make(cfg, "")


def pool_map(fn, work: list[dict], jobs: int) -> list[dict]:
    """fn(job) -> list of records, for every job, on up to `jobs` forked processes; the records, in any order."""
    if jobs > 1 and len(work) > 1:
        with mp.get_context("fork").Pool(min(jobs, len(work))) as pool:
            return [r for rs in pool.imap_unordered(fn, work) for r in rs]
    return [r for w in work for r in fn(w)]


def bench_arena(cfg: Config, steps: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    with arena(cfg) as a:
        # the actions are drawn before the clock starts: the figure is the world's, not the dice's
        heads = list(a.spec.action_heads.values())
        acts = [tuple(int(x) for x in row) for row in rng.integers(0, heads, size=(steps, len(heads)))]
        s = a.reset(seed=seed)
        t = time.perf_counter()
        deaths = 0
        for act in acts:
            s = a.act(act)
            s.left  # force the render: every step is seen
            if s.dead:
                deaths += 1
                s = a.respawn()
        dt = time.perf_counter() - t
    return {"steps_per_s": round(steps / dt, 1), "ms_per_step": round(dt / steps * 1000, 3), "steps": steps,
            "eye_shape": [cfg.arena.eye_h, cfg.arena.eye_w], "render": "both eyes every step", "deaths": deaths}


def bench_step(cfg: Config, steps: int, warmup: int, seed: int) -> dict:
    """One agent's decide and learn, timed apart. model.backend = numpy builds the numpy learner and never
    imports torch here (the record's `torch_imported` says whether anything else in the process did)."""
    from .acting import act_repeat

    numpy_backend = learner_backend(cfg.model, cfg.rule.name) == "numpy"
    if numpy_backend:
        from .numpy_learner import NumpySenseEncoder as SenseEncoder
        from .numpy_learner import build, limit_blas_threads

        limit_blas_threads(cfg.runtime.threads)
    else:
        import torch

        from .rules import build
        from .senses import SenseEncoder

        torch.set_num_threads(cfg.runtime.threads)
    with arena(cfg) as body:
        t_build = time.perf_counter()
        rule = build(body.spec, cfg.model, cfg.rule, seed)
        t_build = time.perf_counter() - t_build
        enc = SenseEncoder(body.spec, cfg.model.input_hw)
        s = body.reset(seed=seed)
        eyes, bv = enc(s)
        fwd, learn = [], []
        for i in range(warmup + steps):
            t0 = time.perf_counter()
            a = rule.decide(eyes, bv)
            t1 = time.perf_counter()
            s, feel = act_repeat(body, a, s, cfg.runtime.repeat_for(body.spec), cfg.runtime.event_threshold)
            eyes, bv = enc(s)
            t2 = time.perf_counter()
            rule.learn(feel, eyes, bv)
            t3 = time.perf_counter()
            if s.dead:
                s = body.respawn()
                rule.new_life()
                eyes, bv = enc(s)
            if i >= warmup:
                fwd.append(t1 - t0)
                learn.append(t3 - t2)
    if numpy_backend:
        n_params = rule.brain.n_params()
    else:
        n_params = sum(p.numel() for p in rule.brain.parameters())
    snapshot_mb = rule.ring.nbytes() / 2**20 / max(len(rule.ring), 1)
    return {
        "forward_ms": round(float(np.median(fwd)) * 1000, 3), "learn_ms": round(float(np.median(learn)) * 1000, 3),
        "step_ms": round(float(np.median(np.add(fwd, learn))) * 1000, 3), "peak_rss_mb": round(peak_rss_mb(), 1),
        "backend": rule.net.name, "build_s": round(t_build, 2),
        "rule": rule.name, "params": n_params, "towers": rule.brain.towers, "threads": cfg.runtime.threads,
        "input_hw": list(cfg.model.input_hw), "steps_measured": steps, "ring_snapshot_mb": round(snapshot_mb, 3),
        "torch_imported": "torch" in sys.modules,
    }


# ------------------------------------------------------------------ survival benchmark
def eval_seed_for(seed: int) -> int:
    """Each training seed gets its own set of evaluation worlds; every policy meets the same ones."""
    return 10_000 + 1_000 * seed


def _one_torch_thread():
    """Jobs run side by side, one per core: torch's own threads would fight over them."""
    import torch

    torch.set_num_threads(1)


def _job(job: dict) -> list[dict]:
    cfg = Config.from_dict(job["cfg"])
    numpy_learner = job["kind"] != "baseline" and learner_backend(cfg.model, cfg.rule.name) == "numpy"
    if not numpy_learner:
        _one_torch_thread()
    from .evaluate import evaluate, make_policy
    from .runtime import Runner

    seed, ev_seed = job["seed"], eval_seed_for(job["seed"])
    make_body = lambda: make_body_named(cfg, job["body"])  # noqa: E731
    spec = job["spec"]
    out = []
    if job["kind"] == "baseline":
        pol = make_policy(job["policy"], spec, policies=kind(job["body"]).policies)
        r = evaluate(pol, make_body, cfg, job["lives"], ev_seed, cap=job["cap"])
        r.update(seed=seed, eval_seed=ev_seed, policy=job["policy"], label=job["policy"])
        return [r]
    t = time.perf_counter()
    with make_body() as body:
        runner = Runner(cfg, body, seed=seed, run_dir=job["run_dir"], progress=False)
        summary = runner.run(job["steps"])
    learn_s = time.perf_counter() - t
    if numpy_learner:
        _one_torch_thread()  # now, for the evaluation harness (torch's): the numpy learner ran without torch
    for greedy in (False, True):
        pol = make_policy(job["run_dir"], spec, greedy=greedy)
        r = evaluate(pol, make_body, cfg, job["lives"], ev_seed, cap=job["cap"])
        r.update(seed=seed, eval_seed=ev_seed, policy=job["label"], label=job["label"], rule=cfg.rule.name,
                 learn_steps=summary["steps"], learn_body_steps=summary["body_steps"], learn_wall_s=round(learn_s, 1),
                 learn_lives=summary["lives_completed"], rollbacks=summary["rollbacks"], faults=summary["faults"])
        out.append(r)
    return out


def probe_body(cfg: Config, body: str, check=None):
    """The body's spec, once it has said it can die (a frozen evaluation measures time to death); `check(body)`
    may look at it further while it is open."""
    from .evaluate import check_mortal

    with make_body_named(cfg, body) as b:
        check_mortal(b)
        if check is not None:
            check(b)
        return b.spec


def baselines_for(spec) -> list[str]:
    """random always; stationary where the body names a do-nothing action."""
    return ["random"] + (["stationary"] if spec.still is not None else [])


def bench_survival(cfg: Config, rules: list[str], seeds: list[int], steps: int, lives: int, cap: int | None,
                   jobs: int, out_dir: str | None, label: str | None, body: str = "arena") -> dict:
    t0 = time.perf_counter()
    spec = probe_body(cfg, body)
    base_pols = baselines_for(spec)
    out = Path(out_dir or f"runs/bench-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    cap = cap or cfg.runtime.eval_cap
    work = []
    for rule in rules:
        d = cfg.to_dict()
        d["rule"]["name"] = rule
        lab = label if (label and len(rules) == 1) else (f"{label}:{rule}" if label else rule)
        for s in seeds:
            work.append({"kind": "learn", "cfg": d, "seed": s, "steps": steps, "lives": lives, "cap": cap,
                         "run_dir": str(out / f"{lab.replace(':', '_')}-s{s}"), "label": lab, "body": body, "spec": spec})
    for s in seeds:
        for pol in base_pols:
            work.append({"kind": "baseline", "cfg": cfg.to_dict(), "seed": s, "policy": pol, "lives": lives, "cap": cap,
                         "body": body, "spec": spec})
    print(f"bench survival: {len(work)} jobs on {jobs} processes, body {body}, {steps} learning steps per seed, "
          f"{lives} lives per evaluation (cap {cap}, in body steps), results in {out}", file=sys.stderr)
    results = pool_map(_job, work, jobs)
    results.sort(key=lambda r: (r["seed"], r["label"], r["mode"]))
    verdict = {}
    for lab in sorted({r["label"] for r in results if "rule" in r}):
        for mode in ("sample", "greedy"):
            per_seed = {}
            for s in seeds:
                base = max(r["median_lifespan"] for r in results if r["seed"] == s and r["policy"] in base_pols)
                mine = [r for r in results if r["seed"] == s and r["label"] == lab and r["mode"] == mode]
                if mine:
                    per_seed[s] = {"median": mine[0]["median_lifespan"], "better_baseline": base,
                                   "ratio": round(mine[0]["median_lifespan"] / base, 3), "passes_2x": mine[0]["median_lifespan"] >= 2 * base}
            verdict[f"{lab}/{mode}"] = {"seeds_passing_2x": sum(v["passes_2x"] for v in per_seed.values()),
                                        "seeds": len(per_seed), "per_seed": per_seed}
    wall = round(time.perf_counter() - t0, 1)
    res = {"body": body, "baselines": base_pols, "steps": steps, "seeds": seeds, "lives": lives, "cap": cap,
           "action_repeat": cfg.runtime.repeat_for(spec), "wall_s": wall, "verdict": verdict,
           "records": [{k: v for k, v in r.items() if k != "lifespans"} | {"lifespans": r["lifespans"]} for r in results]}
    (out / "results.json").write_text(dumps(res, indent=1))
    lines = [f"{'seed':>4}  {'policy':<28} {'mode':<6} {'median':>7} {'p25':>6} {'p75':>6} {'cens':>7} {'d/10k':>6} {'food':>5} {'hits':>5}"]
    for r in results:
        lines.append(f"{r['seed']:>4}  {r['label'][:28]:<28} {r['mode']:<6} {r['median_lifespan']:>7.0f} {r['p25']:>6.0f} {r['p75']:>6.0f} "
                     f"{r['censored']:>3}/{r['lives']:<3} {r['deaths_per_10k']:>6.2f} {r['food_per_life']:>5.1f} {r['hazard_hits_per_life']:>5.1f}")
    if "stationary" not in base_pols:
        lines.append(f"stationary: n/a ({spec.name} names no do-nothing action; the bar is 2x random)")
    better = "the better of random and stationary" if "stationary" in base_pols else "random"
    for k, v in verdict.items():
        lines.append(f"{k}: {v['seeds_passing_2x']}/{v['seeds']} seeds reach 2x {better}")
    lines.append(f"wall time {wall} s")
    table = "\n".join(lines)
    (out / "table.txt").write_text(table + "\n")
    print(table, file=sys.stderr)
    return res
