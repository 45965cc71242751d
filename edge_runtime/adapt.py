"""`edge-runtime bench adapt`: does a brain that keeps learning keep up with a world that changes?

Per seed:

1. learn `steps_a` decisions in world A (the body as configured);
2. the world changes (`Changeable.change_world(NAME)`, in the same process, on the same body: the brain is not
   told, it only senses the difference) and the same run goes on learning for `steps_b` decisions;
3. a fresh brain learns `steps_b` decisions in world B from scratch.

The brain is saved at the change (the A-brain) and every `eval_every` decisions in B, and so is the fresh brain.
Each saved brain, and random and stationary, is then evaluated frozen in the same B worlds (the body with the
change made, lives from the same seeds). Figures per seed: the A-brain at the change (what the change costs),
the continuing learner at each checkpoint (how fast it recovers), the fresh learner at the same checkpoints
(does a past life help or hurt), and the baselines.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from .bodies import make_body
from .body import Changeable
from .config import Config
from .hooks import Hook
from .jsonout import dumps


class WorldChangeHook(Hook):
    """Saves the brain at `change_at` decisions and changes the world there; saves it every `every` after."""

    def __init__(self, out: Path, change: str | None, change_at: int, every: int, total: int):
        self.out, self.change, self.change_at, self.every, self.total = out, change, change_at, every, total
        self.done = 0
        self.saved: dict[int, str] = {}  # decisions in B -> weights file

    def _save(self, runner, b_steps: int):
        path = self.out / f"brain-b{b_steps}.pt"
        path = runner.save_weights(path)  # (a numpy learner's weights are brain-b*.npz)
        self.saved[b_steps] = str(path)

    def on_step(self, runner, sense, metrics):
        self.done += 1
        b = self.done - self.change_at
        if b == 0:
            self._save(runner, 0)
            if self.change is not None:
                runner.body.change_world(self.change)  # from the next step on, the world is B
        elif b > 0 and (b % self.every == 0 or self.done == self.total):
            self._save(runner, b)


def _changed_body(cfg: Config, body: str, change: str):
    b = make_body(cfg, body)
    b.change_world(change)
    return b


def _learn(job: dict) -> list[dict]:
    """The continuing learner (A then B) or the fresh one (B only): learn, saving brains on the way."""
    from .runtime import Runner

    torch.set_num_threads(1)
    cfg = Config.from_dict(job["cfg"])
    out = Path(job["run_dir"])
    continuing = job["who"] == "continuing"
    steps_a = job["steps_a"] if continuing else 0
    total = steps_a + job["steps_b"]
    # the continuing learner's world changes under it at steps_a; the fresh one is born in B
    hook = WorldChangeHook(out, job["change"] if continuing else None, steps_a, job["eval_every"], total)
    t = time.perf_counter()
    body = make_body(cfg, job["body"]) if continuing else _changed_body(cfg, job["body"], job["change"])
    with body:
        runner = Runner(cfg, body, seed=job["seed"] + (0 if continuing else 50_000), run_dir=out,
                        progress=False, hooks=[hook])
        summary = runner.run(total)
    return [{"kind": "learned", "who": job["who"], "seed": job["seed"], "brains": hook.saved,
             "learn_wall_s": round(time.perf_counter() - t, 1), "lives": summary["lives_completed"],
             "faults": summary["faults"]}]


def _evaluate(job: dict) -> list[dict]:
    from .bench import eval_seed_for
    from .bodies import kind
    from .evaluate import evaluate, make_policy

    torch.set_num_threads(1)
    cfg = Config.from_dict(job["cfg"])
    ev_seed = eval_seed_for(job["seed"])
    pol = make_policy(job["policy"], job["spec"], greedy=job["greedy"], policies=kind(job["body"]).policies)
    r = evaluate(pol, lambda: _changed_body(cfg, job["body"], job["change"]), cfg, job["lives"], ev_seed, cap=job["cap"])
    r.update(seed=job["seed"], eval_seed=ev_seed, who=job["who"], b_steps=job["b_steps"], policy=job["who"],
             world="B")
    return [r]


def _run(job: dict) -> list[dict]:
    return _learn(job) if job["kind"] == "learn" else _evaluate(job)


def bench_adapt(cfg: Config, change: str, seeds: list[int], steps_a: int, steps_b: int, eval_every: int, lives: int,
                cap: int | None, jobs: int, out_dir: str | None, body: str = "arena", greedy: bool = False) -> dict:
    from .bench import baselines_for, pool_map, probe_body

    def can_change(b):
        if not isinstance(b, Changeable):
            raise ValueError(f"bench adapt: body {body} ({b.spec.name}) cannot change its world")
        if change not in b.world_changes:
            raise ValueError(f"bench adapt: {b.spec.name} has no change {change!r} (it has: {', '.join(b.world_changes)})")

    t0 = time.perf_counter()
    spec = probe_body(cfg, body, check=can_change)  # one body, opened once, answers both
    out = Path(out_dir or f"runs/adapt-{change}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    cap = cap or cfg.runtime.eval_cap
    common = {"cfg": cfg.to_dict(), "body": body, "change": change, "spec": spec, "lives": lives, "cap": cap,
              "greedy": greedy}
    print(f"bench adapt: {change} on {body}, seeds {seeds}, {steps_a} steps in A then {steps_b} in B "
          f"(brains saved every {eval_every}), {lives} lives per evaluation (cap {cap}), results in {out}",
          file=sys.stderr)
    learn = [{**common, "kind": "learn", "who": who, "seed": s, "steps_a": steps_a, "steps_b": steps_b,
              "eval_every": eval_every, "run_dir": str(out / f"{who}-s{s}")}
             for s in seeds for who in ("continuing", "fresh")]
    learned = pool_map(_run, learn, jobs)
    evals = [{**common, "kind": "eval", "seed": s, "who": pol, "policy": pol, "b_steps": None}
             for s in seeds for pol in baselines_for(spec)]
    for rec in learned:
        for b_steps, path in rec["brains"].items():
            who = "A-brain" if (rec["who"] == "continuing" and b_steps == 0) else rec["who"]
            if rec["who"] == "fresh" and b_steps == 0:
                continue  # an untrained brain: nothing to say
            evals.append({**common, "kind": "eval", "seed": rec["seed"], "who": who, "policy": path, "b_steps": b_steps})
    results = pool_map(_run, evals, jobs)
    results.sort(key=lambda r: (r["seed"], r["who"], r["b_steps"] if r["b_steps"] is not None else -1))
    verdict = _verdict(results, seeds, steps_b, baselines_for(spec))
    wall = round(time.perf_counter() - t0, 1)
    res = {"change": change, "body": body, "seeds": seeds, "steps_a": steps_a, "steps_b": steps_b,
           "eval_every": eval_every, "lives": lives, "cap": cap, "mode": "greedy" if greedy else "sample",
           "baselines": baselines_for(spec), "wall_s": wall, "verdict": verdict,
           "learning": sorted(learned, key=lambda r: (r["seed"], r["who"])), "records": results}
    (out / "results.json").write_text(dumps(res, indent=1))
    table = format_adapt(res)
    (out / "table.txt").write_text(table + "\n")
    print(table, file=sys.stderr)
    return res


def _verdict(results: list[dict], seeds: list[int], steps_b: int, baselines: list[str]) -> dict:
    per_seed = {}
    for s in seeds:
        mine = {(r["who"], r["b_steps"]): r["median_lifespan"] for r in results if r["seed"] == s}
        base = max(mine[(p, None)] for p in baselines)
        cont = mine.get(("continuing", steps_b))
        per_seed[s] = {"better_baseline": base, "a_brain_at_change": mine.get(("A-brain", 0)),
                       "continuing_end": cont, "fresh_end": mine.get(("fresh", steps_b)),
                       "continuing_passes_2x": cont is not None and cont >= 2 * base}
    return {"seeds_continuing_2x": sum(v["continuing_passes_2x"] for v in per_seed.values()), "seeds": len(seeds),
            "per_seed": per_seed}


def format_adapt(res: dict) -> str:
    lines = [f"bench adapt: change {res['change']} on {res['body']}, {res['steps_a']} steps in A, {res['steps_b']} in B, "
             f"frozen evaluation in B ({res['mode']}, {res['lives']} lives, cap {res['cap']})",
             f"{'seed':>4}  {'who':<12} {'B steps':>8} {'median':>7} {'p25':>6} {'p75':>6} {'cens':>7} {'d/10k':>6} "
             f"{'food':>5} {'hits':>5}"]
    for r in res["records"]:
        b = "" if r["b_steps"] is None else str(r["b_steps"])
        lines.append(f"{r['seed']:>4}  {r['who']:<12} {b:>8} {r['median_lifespan']:>7.0f} {r['p25']:>6.0f} {r['p75']:>6.0f} "
                     f"{r['censored']:>3}/{r['lives']:<3} {r['deaths_per_10k']:>6.2f} {r['food_per_life']:>5.1f} "
                     f"{r['hazard_hits_per_life']:>5.1f}")
    if "stationary" not in res["baselines"]:
        lines.append("stationary: n/a (the body names no do-nothing action)")
    v = res["verdict"]
    lines.append(f"continuing learner after {res['steps_b']} steps in B: {v['seeds_continuing_2x']}/{v['seeds']} seeds "
                 f"reach 2x the better of {' and '.join(res['baselines'])}")
    for s, p in v["per_seed"].items():
        lines.append(f"  seed {s}: A-brain at the change {p['a_brain_at_change']}, continuing {p['continuing_end']}, "
                     f"fresh {p['fresh_end']}, better baseline {p['better_baseline']}")
    lines.append(f"wall time {res['wall_s']} s")
    return "\n".join(lines)
