"""The README's rows for a `bench adapt` run, from its results.json and its learners' run directories.

    python scripts/adapt_rows.py runs/adapt-fast-hazards-setback

Per seed: the frozen medians in B (the A-brain at the change, the continuing learner and the fresh one at the end
of B, with censored lives), random / stationary, the training deaths in B of each learner, the take-off in B (as in
scripts/takeoff.py: the median of the last 5 training lives reaches 1000 body steps, counted from the change), and
the continuing learner's decisions in a setback (f > 0) while in B. The continuing learner's take-off is "-" when
it never came (it had stopped dying before 5 lives could be read), and its last death in B is in brackets.
"""
import json
import sys
from pathlib import Path

from edge_runtime.report.data import read_jsonl

sys.path.insert(0, str(Path(__file__).parent))
from takeoff import takeoff  # noqa: E402


def _jsonl(path: Path) -> list[dict]:
    if not path.is_file():
        sys.exit(f"adapt_rows: {path} is missing")
    recs, torn = read_jsonl(path)
    if torn:
        print(f"adapt_rows: {path}: {torn} line(s) could not be read", file=sys.stderr)
    return recs


def main(run: str):
    run = Path(run)
    res = json.loads((run / "results.json").read_text())
    steps_a, steps_b = res["steps_a"], res["steps_b"]
    print(f"`{res['change']}`: seed | A-brain | continuing | fresh | random / stationary | training deaths in B "
          "cont / fresh | take-off in B cont (last death) / fresh | setback decisions in B (max f)")
    for seed in res["seeds"]:
        recs = {(r["who"], r["b_steps"]): r for r in res["records"] if r["seed"] == seed}

        def med(who, b=None):
            r = recs.get((who, b))
            if r is None:
                return "n/a"
            return f"{r['median_lifespan']:g} ({r['censored']}/{r['lives']})"  # a median can end in .5

        cont = _jsonl(run / f"continuing-s{seed}" / "lives.jsonl")
        fresh = _jsonl(run / f"fresh-s{seed}" / "lives.jsonl")
        in_b = [x for x in cont if x["step"] > steps_a]
        t_cont = takeoff([{**x, "step": x["step"] - steps_a} for x in in_b])
        t_fresh = takeoff(fresh)
        metrics_b = [m for m in _jsonl(run / f"continuing-s{seed}" / "metrics.jsonl") if m["step"] > steps_a]
        setback = [m["setback"] for m in metrics_b if m.get("setback", 0) > 0]
        logged = any("setback" in m for m in metrics_b)  # runs from before the metric existed do not have it
        base = " / ".join(f"{recs[(b, None)]['median_lifespan']:.0f}" for b in res["baselines"] if (b, None) in recs)
        k = lambda t: "never" if t is None else f"{t / 1000:.1f}k"  # noqa: E731
        # the continuing learner: "-" when it stopped dying before 5 lives could be read, and its last death in B
        last = f" ({(in_b[-1]['step'] - steps_a) / 1000:.1f}k)" if in_b else ""
        cont_t = ("-" if t_cont is None else k(t_cont)) + last
        sb = f"{len(setback)} ({max(setback):.2f})" if setback else ("0" if logged else "not logged")
        print(f"| {seed} | {med('A-brain', 0)} | **{med('continuing', steps_b)}** | {med('fresh', steps_b)} | {base} "
              f"| {len(in_b)} / {len(fresh)} | {cont_t} / {k(t_fresh)} | {sb} |")


if __name__ == "__main__":
    main(sys.argv[1])
