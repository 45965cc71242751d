"""`edge-runtime population`: N agents learning at once, each its own brain, life and world.

    worlds = Worlds(N bodies)                        world i seeded seed + i
    rule   = NumpyPopulationSurvival(N)              agent i starts as the lone rule seeded seed + i (numpy_rule.py;
             or PopulationSurvival(N), rule.py)      torch's where the config's lone learner is torch)
    loop:
        actions = rule.decide(eyes, body)            one batched forward for all N
        eyes', body', feelings = worlds.step(actions)
        rule.learn(feelings, eyes', body')           one batched update; a death rolls back that agent only
        dead agents: life recorded, body respawned, thought cleared
        every G decisions (--select pbt|tournament): the lowest by recent survival take perturbed copies

With `worlds="process"`, the worlds live in their own process and the agents are two halves A and B:
while the worlds of A step there, the brains of B learn and decide here, and the other way round; each
agent still senses, decides, acts and learns in its own order, one decision at a time, so what an agent does
is what it would do without the pipeline. With `worlds="inline"` (the default) all agents are one batch and the worlds
step in this process between batches. Which is faster depends on the learner and N (README, Populations: on
2 cores, inline for torch and for numpy below N = 16; the worlds' process for numpy from N = 16).

Threads (numpy's BLAS, or torch's) default to every core the process may use (one less with the worlds' process).

Run directory: config.toml, run.json, lives.jsonl ({"agent", "life", "length", "step", "body_step",
"cause"}), metrics.jsonl (one line per agent every `metrics_every` decisions), lineage.jsonl (selection),
scores.jsonl ({"step", "scores"}: every agent's recent-survival score every `scores_every` decisions),
agents/NN/weights.npz or weights.pt (each agent as a lone run's weights on its learner: `edge-runtime eval
--policy RUN_DIR/agents/NN`),
summary.json.
"""
from __future__ import annotations

import ctypes
import os
import logging
import sys
import time
from pathlib import Path

import numpy as np

from ..config import Config, learner_backend, section_to_dict
from ..jsonout import dumps
from ..runtime import RULE_METRICS, median
from .selection import Selection, score_json
from .worlds import WorldProcess, Worlds

log = logging.getLogger("edge_runtime.population")


def default_threads(worlds: str) -> int:
    """Every core this process may use for the brains' arithmetic, less one for the worlds' own process."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores - 1) if worlds == "process" else cores


def keep_freed_memory():
    """glibc returns large freed blocks to the kernel at once, so the next step's same-sized tensors (a 16-agent
    layer is megabytes) fault their pages in again: a third of a population step on this machine. Keep freed
    memory in the heap instead (mallopt M_MMAP_THRESHOLD, M_TRIM_THRESHOLD). No effect off glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-3, 256 << 20)
        libc.mallopt(-1, 512 << 20)
    except (OSError, AttributeError):
        pass


class Population:
    def __init__(self, cfg: Config, size: int, seed: int = 0, body_name: str | None = None,
                 run_dir: str | Path | None = None, selection: Selection | None = None, metrics_every: int = 10,
                 worlds: str = "inline", first_agent: int = 0, threads: int | None = None, progress: bool = False,
                 out=sys.stderr, scores_every: int = 100):
        if size < 1:
            raise ValueError("population: --size must be >= 1")
        if worlds not in ("process", "inline"):
            raise ValueError(f"population: worlds must be process|inline, got {worlds!r}")
        keep_freed_memory()
        # the learner a lone run of this config would use: numpy's under the default config (no torch in this
        # process), torch's where only torch computes the config (numpy_rule.py and rule.py: the same rule)
        self.backend = learner_backend(cfg.model, cfg.rule.name)
        if self.backend not in ("numpy", "torch"):
            raise ValueError(f"population: model.backend = {self.backend} runs one agent, not a population")
        self.threads = threads or default_threads(worlds)
        if self.backend == "numpy":
            from ..numpy_learner import limit_blas_threads
            from .numpy_rule import NumpyPopulationSurvival as Rule

            limit_blas_threads(self.threads)
            self._tensor = None
        else:
            import torch

            from .rule import PopulationSurvival as Rule

            torch.set_num_threads(self.threads)
            self._tensor = torch.from_numpy
        self.cfg, self.n, self.seed = cfg, size, seed
        self.first = first_agent  # agent ids are first + i (a Ray group's agents are numbered across groups)
        self.selection = selection or Selection()
        self.metrics_every = metrics_every
        self.scores_every = scores_every
        self.progress, self.out = progress, out
        self.worlds = WorldProcess(cfg, size, body_name) if worlds == "process" else Worlds(cfg, size, body_name)
        self.worlds_mode = worlds
        self.pipelined = worlds == "process" and size >= 2
        self.spec = self.worlds.spec
        half = size // 2
        self.groups = [list(range(half)), list(range(half, size))] if self.pipelined else [list(range(size))]
        self.rules = [Rule(self.spec, cfg.model, cfg.rule, len(g), seed + first_agent + g[0])
                      for g in self.groups]
        self.rng = np.random.default_rng(seed + 7919)
        self.decisions = np.zeros(size, dtype=np.int64)
        self.body_steps = np.zeros(size, dtype=np.int64)
        self.life_steps = np.zeros(size, dtype=np.int64)
        self.lives: list[list[int]] = [[] for _ in range(size)]
        self.history: list[list[int]] = [[] for _ in range(size)]  # the lives selection scores (a copy inherits its parent's)
        self.rounds = 0
        self.replacements = 0
        self.run_dir = Path(run_dir) if run_dir else None
        self._files = {}
        if self.run_dir:
            self._open_run_dir(body_name)
        self._eyes = self._body = None
        self._since_select = 0

    # ------------------------------------------------------------ where an agent lives
    def _where(self, a: int):
        for g, rule in zip(self.groups, self.rules):
            if g[0] <= a <= g[-1]:
                return rule, a - g[0]
        raise IndexError(a)

    def agent_state(self, a: int) -> dict:
        rule, j = self._where(a)
        return rule.agent_state(j)

    def load_agent_state(self, a: int, st: dict):
        rule, j = self._where(a)
        rule.load_agent_state(j, st)

    def state_dict_of(self, a: int) -> dict:
        rule, j = self._where(a)
        return rule.brain.agent_state_dict(j)

    # ------------------------------------------------------------ run directory
    def _open_run_dir(self, body_name):
        import tomli_w

        d = self.run_dir
        d.mkdir(parents=True, exist_ok=True)
        (d / "config.toml").write_text(tomli_w.dumps(self.cfg.to_dict()))
        (d / "body_spec.json").write_text(dumps(self.spec.to_dict(), indent=1))
        s = self.selection
        (d / "run.json").write_text(dumps({
            "kind": "population", "size": self.n, "seed": self.seed, "first_agent": self.first, "rule": "survival",
            "body": body_name or "arena", "select": s.method, "select_every": s.every, "select_fraction": s.fraction,
            "select_window": s.window, "sigma": s.sigma, "agent_seeds": [self.seed + self.first + i for i in range(self.n)],
        }, indent=1))
        for name in ("lives", "metrics", "lineage", "scores"):
            self._files[name] = open(d / f"{name}.jsonl", "a", buffering=1 << 14)

    def _write(self, name: str, rec: dict):
        f = self._files.get(name)
        if f:
            f.write(dumps(rec) + "\n")

    # ------------------------------------------------------------ the loop
    def start(self):
        self._eyes, self._body = self.worlds.reset([self.seed + self.first + i for i in range(self.n)])

    def _arrays(self, *xs):
        """The worlds' numpy arrays as the rule takes them (torch's rule: tensors sharing their memory)."""
        return xs if self._tensor is None else tuple(self._tensor(x) for x in xs)

    def _learn_group(self, gi: int, out):
        """Group gi's step after its worlds acted: learn, record lives, respawn the dead."""
        g, rule = self.groups[gi], self.rules[gi]
        eyes, body, feels, info, fresh = out
        ms = rule.learn(feels, *self._arrays(eyes, body))
        for j, (a, f, m, inf) in enumerate(zip(g, feels, ms, info)):
            self.decisions[a] += 1
            self.body_steps[a] += f.body_steps
            self.life_steps[a] += f.body_steps
            if self.metrics_every and self.decisions[a] % self.metrics_every == 0:
                rec = {"step": int(self.decisions[a]), "agent": self.first + a, "life": len(self.lives[a]) + 1,
                       "hp": round(inf["hp"], 4), "energy": round(inf["energy"], 4)}
                rec.update({k: round(float(m[k]), 6) for k in RULE_METRICS if k in m})
                if "fault" in m:
                    rec["fault"] = m["fault"]
                self._write("metrics", rec)
            if f.dead:
                span = int(self.life_steps[a])
                self.lives[a].append(span)
                self.history[a].append(span)
                self._write("lives", {"agent": self.first + a, "life": len(self.lives[a]), "length": span,
                                      "step": int(self.decisions[a]), "body_step": int(self.body_steps[a]),
                                      "cause": inf["cause"]})
                self.life_steps[a] = 0
                e1, b1 = fresh[j]
                eyes[j], body[j] = e1, b1
                rule.new_life(j)
        self._eyes[g[0]:g[-1] + 1] = eyes
        self._body[g[0]:g[-1] + 1] = body

    def _inputs(self, gi):
        g = self.groups[gi]
        return self._arrays(self._eyes[g[0]:g[-1] + 1].copy(), self._body[g[0]:g[-1] + 1].copy())

    def _segment(self, k: int, tick=None):
        """k decisions for every agent; nothing is left in flight at the end (selection may then move states)."""
        if not self.pipelined:
            for _ in range(k):
                acts = self.rules[0].decide(*self._inputs(0))
                self._learn_group(0, self.worlds.step(acts))
                if tick:
                    tick()
            return
        # two halves: while the worlds of one step there, the brains of the other learn and decide here
        ga, gb = self.groups
        acts_a = self.rules[0].decide(*self._inputs(0))
        self.worlds.step_async(acts_a, ga)
        acts_b = self.rules[1].decide(*self._inputs(1))
        for i in range(k):
            out_a = self.worlds.step_wait()
            self.worlds.step_async(acts_b, gb)
            self._learn_group(0, out_a)
            last = i == k - 1
            if not last:
                acts_a = self.rules[0].decide(*self._inputs(0))
            out_b = self.worlds.step_wait()
            if not last:
                self.worlds.step_async(acts_a, ga)
            self._learn_group(1, out_b)
            if not last:
                acts_b = self.rules[1].decide(*self._inputs(1))
            if tick:
                tick()

    def run(self, steps: int, select_here: bool = True) -> dict:
        """`steps` decisions for every agent, with a selection round every G decisions (--select) unless a Ray
        driver selects across groups (select_here=False)."""
        if self._eyes is None:
            self.start()
        t0 = time.perf_counter()
        clock = {"t": t0, "d": 0, "done": 0}

        def tick():
            clock["done"] += 1
            if self.scores_every and "scores" in self._files and self.decisions[0] % self.scores_every == 0:
                self._write("scores", {"step": int(self.decisions[0]), "scores": [score_json(x) for x in self.scores()]})
            now = time.perf_counter()
            if self.progress and now - clock["t"] >= 1.0:
                self._progress((clock["done"] - clock["d"]) * self.n / (now - clock["t"]), clock["done"])
                clock["t"], clock["d"] = now, clock["done"]

        done = 0
        selecting = select_here and self.selection.method != "none"
        every = self.selection.every
        while done < steps:
            k = min(steps - done, every - self._since_select) if selecting else steps - done
            self._segment(k, tick)
            done += k
            self._since_select += k
            if selecting and self._since_select >= every:
                self.select()
                self._since_select = 0
        wall = time.perf_counter() - t0
        if self.progress:
            self._progress(done * self.n / wall if wall > 0 else 0.0, done)
            self.out.write("\n")
        return self.summary(done, wall)

    def _progress(self, rate, done):
        meds = [median(lv[-20:]) for lv in self.lives if lv]
        self.out.write(f"\rstep {done:>7} | {rate:7.1f} agent-decisions/s | lives {sum(map(len, self.lives)):>5} | "
                       f"median of agents' medians {median(meds) if meds else float('nan'):>6.0f} | "
                       f"rounds {self.rounds} | replaced {self.replacements}")
        self.out.flush()

    # ------------------------------------------------------------ selection
    def scores(self) -> list[float]:
        return [self.selection.score(self.history[a], int(self.life_steps[a])) for a in range(self.n)]

    def select(self) -> list[dict]:
        """One selection round inside this process (a Ray driver does the same across groups)."""
        scores = self.scores()
        plan = self.selection.plan(scores, self.rng)
        recs = []
        for child, parent in plan:
            perturbed = self.adopt(child, self.export_agent(parent), int(self.rng.integers(2**62)))
            recs.append(self.lineage_record(child, parent, scores, perturbed))
        self.rounds += 1
        self.replacements += len(plan)
        return recs

    def export_agent(self, a: int) -> dict:
        """What a copy of agent a takes: its learning state and the lives its score is read from."""
        return {"state": self.agent_state(a), "history": list(self.history[a])}

    def adopt(self, a: int, exported: dict, perturb_seed: int) -> dict:
        """Agent a becomes a perturbed copy of an exported agent; returns how it was perturbed and its size."""
        st = self.selection.perturb(exported["state"], np.random.default_rng(perturb_seed))
        self.load_agent_state(a, st)
        self.history[a] = list(exported["history"])
        return {"lr_factor": st["lr_factor"], "lr_min": st["lr_min"], "lr_max": st["lr_max"],
                "bytes": state_nbytes(exported)}

    def lineage_record(self, child, parent, scores, st) -> dict:
        rec = self.selection.lineage(self.rounds + 1, int(self.decisions.max()), self.first + child,
                                     self.first + parent, scores[child], scores[parent], st)
        self._write("lineage", rec)
        return rec

    # ------------------------------------------------------------ results
    def agent_summary(self, a: int) -> dict:
        lv = self.lives[a]
        rule, j = self._where(a)
        return {"agent": self.first + a, "seed": self.seed + self.first + a, "decisions": int(self.decisions[a]),
                "body_steps": int(self.body_steps[a]), "lives_completed": len(lv),
                "median_lifespan_learning": median(lv), "current_life": int(self.life_steps[a]),
                "score": score_json(self.selection.score(self.history[a], int(self.life_steps[a]))),
                "rollbacks": int(rule.rollbacks[j]), "faults": int(rule.faults[j]),
                "lr_min": round(float(rule.lr_min[j]), 6), "lr_max": round(float(rule.lr_max[j]), 6)}

    def summary(self, done: int, wall: float) -> dict:
        agents = [self.agent_summary(a) for a in range(self.n)]
        all_lives = [x for lv in self.lives for x in lv]
        return {
            "kind": "population", "size": self.n, "seed": self.seed, "steps": done, "agent_decisions": done * self.n,
            "wall_s": round(wall, 2), "agent_decisions_per_s": round(done * self.n / wall, 1) if wall > 0 else None,
            "backend": self.backend, "threads": self.threads, "worlds": self.worlds_mode,
            "select": self.selection.method, "rounds": self.rounds, "replacements": self.replacements,
            "lives_completed": len(all_lives), "median_lifespan_learning": median(all_lives),
            **best_and_median(agents), "agents": agents,
        }

    def weights_of(self, a: int) -> dict:
        """Agent a as a lone run's weights (what `edge-runtime eval --policy` reads): weights.npz of a numpy
        learner, weights.pt of a torch one."""
        return {"backend": self.backend, "model": self.state_dict_of(a), "towers": "split", "spec": self.spec.to_dict(),
                "model_cfg": section_to_dict(self.cfg.model), "rule": "survival", "steps": int(self.decisions[a])}

    def save_weights(self):
        """Each agent as a lone run's weights, under agents/NN/."""
        if self.run_dir:
            for a in range(self.n):
                save_agent_weights(self.run_dir, self.first + a, self.weights_of(a))

    def close(self, summary: dict | None = None):
        if self.run_dir:
            self.save_weights()
            if summary is not None:
                (self.run_dir / "summary.json").write_text(dumps(summary, indent=1))
        for f in self._files.values():
            f.close()
        self._files = {}
        self.worlds.close()


def save_agent_weights(run_dir: Path, agent: int, weights: dict):
    """agents/NN/weights.npz (numpy: the state dict by torch Brain's names, the rest under __meta__, as a lone
    numpy run's) or agents/NN/weights.pt (torch)."""
    d = Path(run_dir) / "agents" / f"{agent:02d}"
    d.mkdir(parents=True, exist_ok=True)
    weights = dict(weights)
    backend = weights.pop("backend")
    path = d / ("weights.npz" if backend == "numpy" else "weights.pt")
    tmp = Path(str(path) + ".tmp")  # written whole, then renamed: a reader never sees half a file
    if backend == "numpy":
        from ..numpy_learner.brain import save_npz

        save_npz(tmp, weights.pop("model"), weights)
    else:
        import torch

        torch.save(weights, tmp)
    os.replace(tmp, path)


def best_and_median(agents: list[dict]) -> dict:
    """The agents ranked by recent survival."""
    order = sorted(agents, key=lambda r: r["score"])
    return {"best_agent": order[-1]["agent"], "median_agent": order[(len(order) - 1) // 2]["agent"]}


def state_nbytes(obj) -> int:
    """Bytes of the tensors and arrays in an exported agent (what crosses the network when it is copied)."""
    torch = sys.modules.get("torch")  # a torch population's states hold tensors; a numpy one's never import it
    if torch is not None and isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(state_nbytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        return sum(state_nbytes(v) for v in obj)
    return 8 if isinstance(obj, (int, float)) else 0
