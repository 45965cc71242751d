"""The report of one run directory: lives, what they met, and what the learner said about itself."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .data import column, read_json, read_jsonl, rolling, thin, thin_index
from .page import Page, new_figure

HIT_COUNTERS = (("food", "food eaten"), ("hazard_hits", "hazard hits"))


def baselines_beside(run_dir: Path, seed) -> dict[str, float]:
    """The random and stationary frozen medians of this seed, when the run is one of a bench's (its parent holds
    the bench's results.json); {} otherwise."""
    res = run_dir.parent / "results.json"
    if seed is None or not res.is_file():
        return {}
    try:
        recs = read_json(res).get("records", [])
    except (ValueError, AttributeError):
        return {}
    return {r["policy"]: float(r["median_lifespan"]) for r in recs
            if r.get("seed") == seed and r.get("policy") in ("random", "stationary") and r.get("median_lifespan") is not None}


def run_report(run_dir: Path, out: Path) -> dict:
    run = read_json(run_dir / "run.json") if (run_dir / "run.json").is_file() else {}
    spec = read_json(run_dir / "body_spec.json") if (run_dir / "body_spec.json").is_file() else {}
    summary = read_json(run_dir / "summary.json") if (run_dir / "summary.json").is_file() else {}
    metrics, bad_m = read_jsonl(run_dir / "metrics.jsonl")
    lives, bad_l = read_jsonl(run_dir / "lives.jsonl")
    page = Page(f"Run {run_dir.name}: {run.get('rule', '?')} on {spec.get('name', '?')}, seed {run.get('seed', '?')}", out)

    last = metrics[-1] if metrics else {}
    end_step = int(last.get("step", summary.get("steps", 0)))  # the rule's step count: it goes on across resumes
    end_body = max(int(last.get("body_step", 0)), int(summary.get("body_steps", 0)))
    spans = np.array([r["length"] for r in lives if "length" in r], dtype=float)
    open_life = end_body - (int(lives[-1]["body_step"]) if lives else 0)
    rb = last.get("rollbacks", summary.get("rollbacks"))
    ft = last.get("faults", summary.get("faults"))
    page.table(["learning steps", "body steps", "lives ended", "median life", "median of last 50", "life in progress",
                "rollbacks", "faults", "steps/s"],
               [[end_step, end_body, len(spans), float(np.median(spans)) if len(spans) else None,
                 float(np.median(spans[-50:])) if len(spans) else None, open_life, rb, ft, summary.get("steps_per_s")]],
               "The run (lifespans in body steps)")
    if bad_m or bad_l:
        page.sections.append(f'<p class="warn">unreadable lines skipped: {bad_m} in metrics.jsonl, {bad_l} in '
                             'lives.jsonl (a torn last line is what a killed process leaves)</p>')

    # ---- lifespans against learning step
    fig = new_figure(8, 3.6)
    ax = fig.add_subplot()
    if len(spans):
        x = np.array([r["step"] for r in lives], dtype=float)
        ax.scatter(x, spans, s=9, color="#4477aa", alpha=0.6, label="a life (ended by death)")
        ax.plot(x, rolling(spans, 20, "median"), color="#223366", lw=2, label="rolling median of 20 lives")
    if open_life > 0:
        ax.scatter([end_step], [open_life], marker="^", s=60, color="#ee7733", zorder=3,
                   label="censored: alive when the run stopped (at least this long)")
    colours = {"random": "#999999", "stationary": "#cc3311"}
    for pol, med in baselines_beside(run_dir, run.get("seed")).items():
        ax.axhline(med, ls="--", color=colours[pol], label=f"{pol}: frozen median {med:.0f}")
    ax.set_xlabel("learning step (decision) at the end of the life")
    ax.set_ylabel("lifespan (body steps)")
    if len(spans) or open_life > 0:
        ax.set_yscale("log")
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8, loc="upper left")
    else:
        ax.text(0.5, 0.5, "no life has ended yet", ha="center", transform=ax.transAxes)
    page.plot("lifespans", fig, "Lifespan of every life against the learning step it ended at; the triangle is the "
              "life still going at the end (censored); dashed lines are the frozen medians of the baselines "
              "when the run belongs to a benchmark.")

    # ---- what each life met
    fig = new_figure(8, 3.0)
    ax = fig.add_subplot()
    n = np.arange(1, len(lives) + 1)
    shown = False
    for key, label in HIT_COUNTERS:
        vals = [r.get(key) for r in lives]
        if lives and all(isinstance(v, (int, float)) for v in vals):
            ax.plot(n, vals, ".", ms=4, alpha=0.5)
            ax.plot(n, rolling(np.asarray(vals, float), 20), lw=2, label=f"{label} (rolling mean of 20 lives)",
                    color=ax.lines[-1].get_color())
            shown = True
    ax.set_xlabel("life")
    ax.set_ylabel("per life")
    if shown:
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "this body counts no food or hazard hits per life" if lives else "no life has ended yet",
                ha="center", transform=ax.transAxes)
    page.plot("hits", fig, "Food and hazard hits in each life (the body's own counters).")

    # ---- the learner's own signals
    n_m = len(metrics)
    win = max(50, n_m // 100)
    hmax = sum(math.log(k) for k in (spec.get("action_heads") or {}).values())
    for key, name, caption, how, log in (
            ("self_loss", "self_loss", "Rolling self-loss: the value the model's loss region gave.", "mean", False),
            ("self_lr", "self_lr", "Self-made rate: the learning-rate region's reading, in [0, 1] of the allowed range.",
             "mean", False),
            ("lr_eff", "lr_eff", "Effective step: the step size after the per-block bounds (log scale).", "median", True),
            ("entropy", "entropy", "Policy entropy against its maximum (uniform over every action head).", "mean", False),
            ("td_error", "td_error", "TD error of the discomfort forecast (rolling mean and rolling mean of |TD|).",
             "mean", False)):
        x, y = column(metrics, key)
        fig = new_figure(8, 2.6)
        ax = fig.add_subplot()
        if len(x):
            tx, ty = thin(x, y)
            ax.plot(tx, ty, lw=0.4, alpha=0.35, color="#4477aa", label="each step")
            at = thin_index(len(x))
            ax.plot(x[at], rolling(y, win, how, at), lw=1.8, color="#223366", label=f"rolling {how} of {win}")
            if key == "td_error":
                ax.plot(x[at], rolling(np.abs(y), win, at=at), lw=1.5, color="#ee7733", label=f"rolling mean of |TD| ({win})")
            if key == "entropy" and hmax > 0:
                ax.axhline(hmax, ls="--", color="#cc3311", label=f"maximum {hmax:.2f}")
            if log and (y > 0).any():
                ax.set_yscale("log")
            ax.legend(fontsize=8)
        else:
            ax.text(0.5, 0.5, f"no {key} in metrics.jsonl", ha="center", transform=ax.transAxes)
        ax.set_xlabel("learning step")
        ax.set_ylabel(key)
        page.plot(name, fig, caption)

    fig = new_figure(8, 2.6)
    ax = fig.add_subplot()
    for key, colour in (("rollbacks", "#4477aa"), ("faults", "#cc3311")):
        x, y = column(metrics, key)
        if len(x):
            tx, ty = thin(x, y)
            ax.step(tx, ty, where="post", color=colour, label=f"{key} (so far)")
    ax.set_xlabel("learning step")
    ax.set_ylabel("count")
    if ax.lines:
        ax.legend(fontsize=8)
    page.plot("rollbacks_faults", fig, "Rollbacks (deaths and faults restore a cached brain) and learning faults "
              "(non-finite values; the update was skipped), counted since the run began.")
    res = page.write()
    res.update(kind="run", lives=len(spans), steps=end_step)
    return res
