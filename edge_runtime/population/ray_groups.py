"""`edge-runtime population --ray auto|local|ADDRESS`: groups of agents as Ray actors, selection by the driver.

    driver                                    actor k (one per group, anywhere in the Ray cluster)
    ray.init(address)                         Population(agents first_k .. first_k + n_k - 1)
    repeat until S decisions:
        run(G) on every actor at once   --->  G decisions for each of its agents (no selection inside)
        scores() from every actor       <---  recent-survival scores, n_k floats
        plan across all agents (Selection.plan, the driver's generator)
        for (child, parent):
            ref = parent_actor.export_agent(j)        the parent's state goes into Ray's object store
            child_actor.adopt(j', ref, seed)   --->   the child's actor pulls it from there (not via the driver)
        lineage.jsonl written by the driver
    weights() from every actor          <---  each agent as a lone run's weights (weights.npz on the numpy learner,
                                              weights.pt on torch), saved under RUN_DIR/agents/NN/

What crosses the network per selection round: the scores (8 bytes per agent), and per replacement one
exported agent (parameters, eye statistics, traces, thought, rule state: `bytes_per_copy` in the summary;
about 2.6 MB for the default brain), once from the parent's node to the child's node. Nothing else moves
between rounds: each actor's worlds, lives and metrics stay on its own machine (RUN_DIR/groups/K/ there).

Ray is an optional extra (`pip install -e .[distributed]`); the runtime never imports it elsewhere.
"""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..config import learner_backend
from ..jsonout import dumps
from ..runtime import median
from .runner import best_and_median, save_agent_weights
from .selection import Selection


class RayUnavailable(RuntimeError):
    pass


def _import_ray():
    try:
        import ray
    except ImportError:
        raise RayUnavailable("--ray needs Ray: pip install -e .[distributed]") from None
    return ray


class GroupActor:
    """One group of agents in one process on some node of the cluster (wrapped by ray.remote at run time)."""

    def __init__(self, cfg, size, seed, first, body, run_dir, worlds, threads, metrics_every):
        from .runner import Population

        self.pop = Population(cfg, size, seed, body, run_dir, Selection("none"), metrics_every=metrics_every,
                              worlds=worlds, first_agent=first, threads=threads or 1)
        self.done = 0
        self.wall = 0.0

    def node(self) -> str:
        import socket

        return socket.gethostname()

    def run(self, steps: int) -> float:
        t = time.perf_counter()
        self.pop.run(steps, select_here=False)
        dt = time.perf_counter() - t
        self.done += steps
        self.wall += dt
        return dt

    def scores(self) -> list[float]:
        return self.pop.scores()

    def export_agent(self, j: int) -> dict:
        return self.pop.export_agent(j)

    def adopt(self, j: int, exported: dict, perturb_seed: int) -> dict:
        return self.pop.adopt(j, exported, perturb_seed)

    def summary(self) -> dict:
        return self.pop.summary(self.done, self.wall)

    def lives(self) -> list[list[int]]:
        return self.pop.lives

    def weights(self) -> dict:
        return {self.pop.first + a: self.pop.weights_of(a) for a in range(self.pop.n)}

    def close(self):
        self.pop.close(self.pop.summary(self.done, self.wall))


def split(size: int, groups: int) -> list[tuple[int, int]]:
    """(first agent, agents) of each group: as even as possible."""
    base, extra = divmod(size, groups)
    out, first = [], 0
    for k in range(groups):
        n = base + (1 if k < extra else 0)
        out.append((first, n))
        first += n
    return out


def connect(address: str, num_cpus: int | None = None):
    """`auto` or `host:6379` joins a running cluster; `local` starts one in this process."""
    ray = _import_ray()
    if not ray.is_initialized():
        if address == "local":
            ray.init(num_cpus=num_cpus, include_dashboard=False, log_to_driver=False)
        else:  # a running cluster: its head decided about the dashboard
            ray.init(address=address, log_to_driver=False)
    return ray


def run_on_ray(cfg, size, steps, seed, body, run_dir, sel: Selection, address="auto", groups=2,
               worlds="inline", threads=None, metrics_every=10, cpus_per_group=1, shutdown=True) -> dict:
    if groups < 1 or groups > size:
        raise ValueError(f"--groups: must be in 1..--size ({size}), got {groups}")
    backend = learner_backend(cfg.model, cfg.rule.name)  # what every actor's Population learns on
    ray = connect(address, num_cpus=max(groups * cpus_per_group, 1) if address == "local" else None)
    run_dir = Path(run_dir).resolve()  # actors on other nodes write their groups/K/ at this same absolute path
    run_dir.mkdir(parents=True, exist_ok=True)
    remote = ray.remote(num_cpus=cpus_per_group)(GroupActor)
    layout = split(size, groups)
    t_start = time.perf_counter()
    actors = [remote.remote(cfg, n, seed, first, body, str(run_dir / "groups" / str(k)), worlds, threads,
                            metrics_every) for k, (first, n) in enumerate(layout)]
    nodes = ray.get([a.node.remote() for a in actors])
    (run_dir / "run.json").write_text(dumps({
        "kind": "population", "ray": address, "size": size, "seed": seed, "rule": "survival", "body": body or "arena",
        "groups": [{"group": k, "first_agent": f, "agents": n, "node": nd} for k, ((f, n), nd) in
                   enumerate(zip(layout, nodes))],
        "select": sel.method, "select_every": sel.every, "select_fraction": sel.fraction,
        "select_window": sel.window, "sigma": sel.sigma}, indent=1))
    where = [(k, j) for k, (_, n) in enumerate(layout) for j in range(n)]  # agent id -> (group, index in group)
    rng = np.random.default_rng(seed + 7919)
    lineage = open(run_dir / "lineage.jsonl", "a", buffering=1)
    rounds, replacements, round_s, one_copy_s, round_bytes, copy_bytes = 0, 0, [], [], [], []
    done = 0
    every = sel.every if sel.method != "none" else steps
    t_learn = time.perf_counter()
    try:
        while done < steps:
            k = min(every, steps - done)
            ray.get([a.run.remote(k) for a in actors])
            done += k
            if sel.method == "none" or done % every:
                continue
            # one selection round across groups: scores in, states actor to actor through the object store
            t = time.perf_counter()
            scores = [s for part in ray.get([a.scores.remote() for a in actors]) for s in part]
            plan = sel.plan(scores, rng)
            moves = []
            for child, parent in plan:
                (gc, jc), (gp, jp) = where[child], where[parent]
                ref = actors[gp].export_agent.remote(jp)
                moves.append((child, parent, actors[gc].adopt.remote(jc, ref, int(rng.integers(2**62)))))
            infos = ray.get([m[2] for m in moves])
            rounds += 1
            replacements += len(plan)
            round_s.append(time.perf_counter() - t)
            if len(plan) == 1:
                one_copy_s.append(round_s[-1])
            round_bytes.append(8 * len(scores) + sum(i["bytes"] for i in infos))
            copy_bytes += [i["bytes"] for i in infos]
            for (child, parent, _), info in zip(moves, infos):
                lineage.write(dumps(sel.lineage(rounds, done, child, parent, scores[child], scores[parent], info))
                              + "\n")
        wall = time.perf_counter() - t_learn
        parts = ray.get([a.summary.remote() for a in actors])
        all_lives = [x for part in ray.get([a.lives.remote() for a in actors]) for lv in part for x in lv]
        for w in ray.get([a.weights.remote() for a in actors]):
            for agent, weights in w.items():
                save_agent_weights(run_dir, agent, weights)
        ray.get([a.close.remote() for a in actors])
    finally:
        lineage.close()
        for a in actors:
            ray.kill(a)
        if shutdown and address == "local":
            ray.shutdown()
    agents = [r for p in parts for r in p["agents"]]
    summary = {
        "kind": "population", "ray": address, "size": size, "seed": seed, "steps": done, "backend": backend,
        "threads": threads or 1, "worlds": worlds,
        "agent_decisions": done * size, "wall_s": round(wall, 2),
        "agent_decisions_per_s": round(done * size / wall, 1) if wall > 0 else None,
        "start_s": round(t_learn - t_start, 2), "groups": len(actors), "nodes": sorted(set(nodes)),
        "select": sel.method, "rounds": rounds, "replacements": replacements,
        "lives_completed": sum(r["lives_completed"] for r in agents),
        "median_lifespan_learning": median(all_lives),
        "selection_round_ms": round(1000 * median(round_s), 1) if round_s else None,
        "round_one_copy_ms": round(1000 * median(one_copy_s), 1) if one_copy_s else None,
        "bytes_per_round_median": int(median(round_bytes)) if round_bytes else None,
        "bytes_per_round_max": max(round_bytes) if round_bytes else None, "bytes_moved": sum(round_bytes),
        "bytes_per_copy": int(median(copy_bytes)) if copy_bytes else None,
        **best_and_median(agents), "agents": agents,
    }
    (run_dir / "summary.json").write_text(dumps(summary, indent=1))
    return summary
