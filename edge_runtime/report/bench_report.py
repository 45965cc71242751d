"""The report of a `bench survival` or `bench adapt` directory: the per-seed table, a plot per policy, and for
adapt the recovery curve after the change."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from .page import Page, new_figure

BASELINE_COLOURS = {"random": "#999999", "stationary": "#cc3311"}


def _who(r: dict) -> str:
    return str(r.get("who") or r.get("label") or r.get("policy"))


def _policy_plot(page: Page, name: str, recs: list[dict], cap, title: str):
    """One policy's lifespans per seed: a box per seed (quartiles), each life a dot, the cap (censoring) dashed."""
    recs = sorted(recs, key=lambda r: r["seed"])
    fig = new_figure(8, 3.0)
    ax = fig.add_subplot()
    data = [np.asarray(r.get("lifespans") or [r["median_lifespan"]], float) for r in recs]
    ax.boxplot(data, widths=0.5, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, 1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.5, color="#4477aa")
    ax.set_xticks(range(1, len(recs) + 1), [f"seed {r['seed']}" for r in recs])
    if cap:
        ax.axhline(cap, ls="--", color="#ee7733", lw=1, label=f"cap {cap}: lives reaching it are censored")
        ax.legend(fontsize=8, loc="lower right")
    ax.set_ylabel("lifespan (body steps)")
    ax.set_title(title, fontsize=10)
    page.plot(name, fig, f"{title}: lifespans of each frozen evaluation life, per seed (boxes: quartiles).")


def _slug(s: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in s)


def bench_report(bench_dir: Path, res: dict, out: Path) -> dict:
    recs = res["records"]
    adapt = "change" in res
    what = f"bench adapt ({res['change']})" if adapt else ("bench peer (PPO)" if "peer" in res else "bench survival")
    page = Page(f"{what} on {res.get('body', 'arena')}: {bench_dir.name}", out)
    steps = (f"{res.get('steps_a')} steps in A, {res.get('steps_b')} in B" if adapt else
             f"{res['body_steps']} body steps" if res.get("body_steps") else f"{res.get('steps')} learning steps")
    page.text(f"{steps}; seeds {res.get('seeds')}; {res.get('lives')} lives per frozen evaluation, cap {res.get('cap')} "
              f"body steps; baselines {', '.join(res.get('baselines', []))}; wall time {res.get('wall_s')} s.")

    learned = [("learn_body_steps", "learned body steps"), ("learn_wall_s", "learning wall s"),
               ("learn_peak_rss_mb", "learning peak RSS MB"), ("params", "parameters")]
    learned = [(k, h) for k, h in learned if any(k in r for r in recs)]  # (bench peer reports these per learner)
    rows = []
    for r in sorted(recs, key=lambda r: (r["seed"], _who(r), r.get("b_steps") or 0, r.get("mode", ""))):
        rows.append([r["seed"], _who(r)] + ([r.get("b_steps")] if adapt else []) +
                    [r.get("mode"), r["median_lifespan"], r.get("p25"), r.get("p75"),
                     f"{r.get('censored')}/{r.get('lives')}", r.get("deaths_per_10k"), r.get("food_per_life"),
                     r.get("hazard_hits_per_life")] + [r.get(k, "") for k, _ in learned])
    page.table(["seed", "policy"] + (["B steps"] if adapt else []) +
               ["mode", "median", "p25", "p75", "censored", "deaths/10k", "food/life", "hits/life"]
               + [h for _, h in learned], rows, "Per seed: frozen evaluation (lifespans in body steps)")
    _verdict(page, res, adapt)

    if adapt:
        _recovery(page, res)
    groups: dict[str, list[dict]] = {}
    for r in recs:
        key = _who(r) + (f" ({r['mode']})" if r.get("mode") and _who(r) not in BASELINE_COLOURS else "")
        if adapt and r.get("b_steps") is not None and r.get("who") == "continuing":
            key += f" after {r['b_steps']} B steps"
        groups.setdefault(key, []).append(r)
    for key, rs in groups.items():
        _policy_plot(page, "policy-" + _slug(key), rs, res.get("cap"), key)
    out_res = page.write()
    out_res.update(kind="bench-adapt" if adapt else ("bench-peer" if "peer" in res else "bench-survival"),
                   records=len(recs))
    return out_res


def _verdict(page: Page, res: dict, adapt: bool):
    v = res.get("verdict") or {}
    if adapt and "per_seed" in v:
        page.text(f"continuing learner at the end of B: {v.get('seeds_continuing_2x')}/{v.get('seeds')} seeds reach 2x "
                  "the better baseline")
        return
    if "seeds_ours_at_least_ppo" in v:  # bench peer
        page.text(f"ours >= PPO (frozen sampled median): {v['seeds_ours_at_least_ppo']}/{v['seeds']} seeds; and at <= 1/2 "
                  f"of PPO's peak RSS: {v['seeds_meeting_goal']}/{v['seeds']}")
        return
    for lab, d in v.items():
        if isinstance(d, dict) and "seeds_passing_2x" in d:
            page.text(f"{lab}: {d['seeds_passing_2x']}/{d['seeds']} seeds reach 2x the better baseline")


def _recovery(page: Page, res: dict):
    """Frozen median in world B against steps learned in B: the A-brain at 0, the continuing learner after each
    evaluation, the fresh learner (B only) at its end, the baselines as lines."""
    recs = res["records"]
    fig = new_figure(8, 3.6)
    ax = fig.add_subplot()
    for s in res.get("seeds", []):
        pts = sorted((r["b_steps"], r["median_lifespan"]) for r in recs if r["seed"] == s and
                     r.get("who") in ("A-brain", "continuing") and r.get("b_steps") is not None)
        if pts:
            line, = ax.plot(*zip(*pts), marker="o", ms=4, label=f"seed {s}: A-brain then continuing")
            fresh = [(r["b_steps"], r["median_lifespan"]) for r in recs if r["seed"] == s and r.get("who") == "fresh"]
            if fresh:
                ax.scatter(*zip(*fresh), marker="s", s=40, facecolors="none", edgecolors=line.get_color())
    for pol, colour in BASELINE_COLOURS.items():
        meds = [r["median_lifespan"] for r in recs if r.get("policy") == pol]
        if meds:
            ax.axhline(float(np.median(meds)), ls="--", color=colour, label=f"{pol} (median over seeds)")
    ax.scatter([], [], marker="s", facecolors="none", edgecolors="k", label="fresh learner, B only (same steps)")
    ax.set_xlabel(f"steps learned in B after the change ({res['change']})")
    ax.set_ylabel("frozen median lifespan in B")
    ax.set_yscale("log")
    ax.legend(fontsize=7, loc="upper left")
    page.plot("recovery", fig, "Recovery after the change: frozen median lifespan in world B of the brain at the "
              "change (0) and of the continuing learner after each evaluation; squares: a fresh learner trained "
              "only in B for the same steps.")
