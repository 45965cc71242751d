"""`edge-runtime bench selection`: does selection by survival help, at the same agent-steps?

Per seed s, two populations of --size N agents start from the same agents (population seed 1000 * s: agent
seeds 1000 s .. 1000 s + N - 1, never the benchmark seeds of `bench survival`) and learn for --steps decisions
each, so both spend N * steps agent-steps:

    none         independent agents (the lone rule N times over)
    pbt          the same, plus a selection round every --select-every decisions (`population --select pbt`)

Read from each run:
    take_off_step         the first decision at which the median of the agents' recent-survival scores
                          (scores.jsonl: Kaplan-Meier median of each agent's last lives and its current one)
                          reaches --take-off body steps; null when it never does (censored at --steps)
    best / median agent   by that score at the end; each evaluated frozen in the existing harness
                          (`evaluate`, the same evaluation worlds as `bench survival` for seed s: 10000 + 1000 s),
                          sampled and greedy, beside random and stationary on the same worlds

Figures per seed and method; medians of lifespans in body steps, censored lives, deaths per 10k body steps.
No reward anywhere: selection and every figure read lifespans only.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import torch

from ..bench import baselines_for, eval_seed_for, pool_map, probe_body
from ..bodies import make_body as make_body_named
from ..config import Config
from ..jsonout import dumps
from .runner import Population
from .selection import Selection


def take_off_step(run_dir: Path, threshold: float) -> int | None:
    for line in (run_dir / "scores.jsonl").read_text().splitlines():
        rec = json.loads(line)
        sc = sorted(rec["scores"])
        if sc[(len(sc) - 1) // 2] >= threshold:
            return rec["step"]
    return None


def _eval_job(job: dict) -> list[dict]:
    torch.set_num_threads(1)
    from ..bodies import kind
    from ..evaluate import evaluate, make_policy

    cfg = Config.from_dict(job["cfg"])
    pol = make_policy(job["policy"], job["spec"], greedy=job["greedy"], policies=kind(job["body"]).policies)
    r = evaluate(pol, lambda: make_body_named(cfg, job["body"]), cfg, job["lives"], job["eval_seed"], cap=job["cap"])
    r.update({k: job[k] for k in ("seed", "method", "role", "agent")})
    return [r]


def bench_selection(cfg: Config, size: int, steps: int, seeds: list[int], method: str, every: int, lives: int,
                    cap: int | None, take_off: float, out_dir: str | None, worlds: str, jobs: int, body: str = "arena",
                    out=sys.stderr) -> dict:
    t0 = time.perf_counter()
    spec = probe_body(cfg, body)
    cap = cap or cfg.runtime.eval_cap
    root = Path(out_dir or f"runs/bench-selection-{time.strftime('%Y%m%d-%H%M%S')}")
    root.mkdir(parents=True, exist_ok=True)
    runs, work = [], []
    for s in seeds:
        for m in ("none", method):
            d = root / f"{m}-s{s}"
            t = time.perf_counter()
            pop = Population(cfg, size, 1000 * s, body, d, Selection(m, every), worlds=worlds, metrics_every=50)
            summary = None
            try:
                summary = pop.run(steps)
            finally:
                pop.close(summary)
            run = {"seed": s, "method": m, "size": size, "steps": steps, "agent_steps": size * steps,
                   "learn_wall_s": round(time.perf_counter() - t, 1), "take_off_step": take_off_step(d, take_off),
                   "lives_completed": summary["lives_completed"],
                   "median_lifespan_learning": summary["median_lifespan_learning"], "rounds": summary["rounds"],
                   "replacements": summary["replacements"], "best_agent": summary["best_agent"],
                   "median_agent": summary["median_agent"], "run_dir": str(d)}
            runs.append(run)
            out.write(f"seed {s} {m:<10} take-off {run['take_off_step']}  lives {run['lives_completed']}  "
                      f"replacements {run['replacements']}  {run['learn_wall_s']} s\n")
            out.flush()
            for role in ("best", "median"):
                a = summary[f"{role}_agent"]
                for greedy in (False, True):
                    work.append({"cfg": cfg.to_dict(), "spec": spec, "body": body, "policy": str(d / "agents" / f"{a:02d}"),
                                 "greedy": greedy, "lives": lives, "cap": cap, "eval_seed": eval_seed_for(s),
                                 "seed": s, "method": m, "role": role, "agent": a})
        for pol in baselines_for(spec):
            work.append({"cfg": cfg.to_dict(), "spec": spec, "body": body, "policy": pol, "greedy": False,
                         "lives": lives, "cap": cap, "eval_seed": eval_seed_for(s), "seed": s, "method": pol,
                         "role": "baseline", "agent": None})
    out.write(f"bench selection: {len(work)} frozen evaluations on {jobs} processes\n")
    evals = pool_map(_eval_job, work, jobs)
    evals.sort(key=lambda r: (r["seed"], r["method"], r["role"], r["mode"]))
    res = {"size": size, "steps": steps, "agent_steps": size * steps, "seeds": seeds, "method": method,
           "select_every": every, "lives": lives, "cap": cap, "take_off": take_off, "runs": runs,
           "evaluations": evals, "wall_s": round(time.perf_counter() - t0, 1)}
    (root / "results.json").write_text(dumps(res, indent=1))
    lines = [f"{'seed':>4} {'method':<10} {'agent':<12} {'mode':<6} {'median':>7} {'p25':>6} {'p75':>6} {'cens':>7} {'d/10k':>7}"]
    for r in evals:
        who = r["role"] if r["agent"] is None else f"{r['role']} ({r['agent']})"
        lines.append(f"{r['seed']:>4} {r['method']:<10} {who:<12} {r['mode']:<6} {r['median_lifespan']:>7.0f} "
                     f"{r['p25']:>6.0f} {r['p75']:>6.0f} {r['censored']:>3}/{r['lives']:<3} {r['deaths_per_10k']:>7.2f}")
    for r in runs:
        lines.append(f"seed {r['seed']} {r['method']:<10} take-off (median agent's score >= {take_off:.0f}) at decision "
                     f"{r['take_off_step']}  learning lives {r['lives_completed']}, replacements {r['replacements']}")
    table = "\n".join(lines)
    (root / "table.txt").write_text(table + "\n")
    out.write(table + "\n")
    return res
