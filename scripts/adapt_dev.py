"""Development runs for `bench adapt` on development seeds (never the benchmark seeds): the continuing learner
only, `swap-colours`, 25k decisions in A then 25k in B; frozen, 30 lives each: the A-brain in A (did the change
to the rule cost anything in A?), and in B the A-brain, the learner after 12.5k and after 25k in B.

    python scripts/adapt_dev.py TAG 11,12 [SECTION.KEY=VALUE ...]   # as --set; runs in /tmp/adapt-dev/TAG-sSEED

Prints one line per evaluation: tag, seed, brain, world, median, p25, p75, censored, food and hazard hits per life.
"""
import argparse
import sys
import time

from edge_runtime import adapt
from edge_runtime.bench import eval_seed_for, pool_map, probe_body
from edge_runtime.bodies import kind, make_body
from edge_runtime.cli_common import load_config
from edge_runtime.config import Config
from edge_runtime.evaluate import evaluate, make_policy


def _eval_in_a(job):
    import torch
    torch.set_num_threads(1)
    cfg = Config.from_dict(job["cfg"])
    pol = make_policy(job["policy"], job["spec"], greedy=False, policies=kind("arena").policies)
    r = evaluate(pol, lambda: make_body(cfg, "arena"), cfg, job["lives"], eval_seed_for(job["seed"]), cap=job["cap"])
    r.update(seed=job["seed"], who=job["who"], world="A")
    return [r]


def _run(job):
    return _eval_in_a(job) if job["kind"] == "eval-a" else adapt._run(job)


def main(tag: str, seeds: list[int], sets: list[str]):
    cfg = load_config(argparse.Namespace(set=sets))
    common = {"cfg": cfg.to_dict(), "body": "arena", "change": "swap-colours", "spec": probe_body(cfg, "arena"),
              "lives": 30, "cap": 5000, "greedy": False}
    t = time.time()
    learned = pool_map(_run, [{**common, "kind": "learn", "who": "continuing", "seed": s, "steps_a": 25000,
                               "steps_b": 25000, "eval_every": 12500, "run_dir": f"/tmp/adapt-dev/{tag}-s{s}"}
                              for s in seeds], len(seeds))
    evals = []
    for rec in learned:
        for b, path in rec["brains"].items():
            evals.append({**common, "kind": "eval", "seed": rec["seed"], "who": f"b{b}", "policy": path, "b_steps": b})
            if int(b) == 0:
                evals.append({**common, "kind": "eval-a", "seed": rec["seed"], "who": "A-brain", "policy": path})
    for r in sorted(pool_map(_run, evals, 2), key=lambda r: (r["seed"], r["who"], r.get("world", "B"))):
        print(tag, r["seed"], r["who"], r.get("world", "B"), r["median_lifespan"], r["p25"], r["p75"], r["censored"],
              r["food_per_life"], r["hazard_hits_per_life"], flush=True)
    print(f"wall {time.time() - t:.0f} s")


if __name__ == "__main__":
    main(sys.argv[1], [int(x) for x in sys.argv[2].split(",")], sys.argv[3:])
