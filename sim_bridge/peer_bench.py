"""`edge-runtime bench peer --peer ppo`: stable-baselines3 PPO, given the reward a user would give it, beside our
reward-free `survival` rule, on the same worlds, for the same body steps, judged by the same frozen harness.

    edge-runtime bench peer --peer ppo --seeds 1,2,3 [--steps 50000 | --body-steps N] --json

The peer (`pip install -e '.[peers]'`; never imported by the runtime):
- **Env**: `EdgeArena-v0` (gymnasium, the arena with the config's `[arena]`). Its reward is always 0.0 and is
  dropped; `SurvivalReward` (below, built here and only here) pays **+1 per body step alive, 0 at the death
  step**: what a user wanting survival would write.
- **Action repeat**: PPO's actions are held exactly as ours are: up to `runtime.action_repeat` body steps (4 in
  the arena), ending early on a felt event, by the runtime's own `act_repeat`. So both learners decide at the
  same moments, and both are evaluated with the same repeat. Every body step counts toward the budget.
- **Policy**: SB3's standard `MultiInputPolicy` (a NatureCNN per eye, the touch and body vectors flattened, a
  64-64 MLP per head): what a PPO user reaches for with image observations; at 64x48 eyes it has a size
  comparable to our brain (both counts are reported). SB3's documented defaults for everything else, except
  the settings given (`--ppo-n-steps`, `--ppo-lr`, `--ppo-ent-coef`), which a search on development seeds chose.
- **Budget**: with `--body-steps N`, both learners learn for N body steps. Without it, ours learns `--steps`
  decisions (50,000: the bar of `bench survival`) and PPO then gets exactly the body steps ours lived in the same
  seed. A learner stops at the first decision that reaches its budget (at most one action repeat over).

Each learner runs in a fresh process (spawn), one task per process, so its peak RSS is its own. Then both are
evaluated frozen, sampled and greedy (PPO: `deterministic=True`), with random and stationary, on the
evaluation worlds `bench survival` uses for the seed.
"""
from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import sys
import threading
import time
from pathlib import Path

import numpy as np

from edge_runtime.acting import act_repeat
from edge_runtime.config import Config, learner_backend
from edge_runtime.evaluate import Policy
from edge_runtime.hooks import Hook
from edge_runtime.jsonout import dumps

PPO_DEFAULTS = {"n_steps": 2048, "learning_rate": 3e-4, "ent_coef": 0.0}  # SB3's documented PPO defaults


# ------------------------------------------------------------------ the reward a user would give PPO
class _EnvAsBody:
    """Just enough of a Body over a gymnasium EdgeArena-v0 for the runtime's act_repeat: act() -> hp, energy,
    dead; the observation kept for PPO."""

    def __init__(self, env):
        self.env = env
        self.obs = None
        self.terminated = self.truncated = False
        self.info: dict = {}

    def act(self, action):
        self.obs, _dropped_reward, self.terminated, self.truncated, self.info = self.env.step(action)
        hp, energy = (float(x) for x in self.obs["body"])
        return _Felt(hp, energy, bool(self.terminated or self.truncated))


class _Felt:
    __slots__ = ("hp", "energy", "dead")

    def __init__(self, hp, energy, dead):
        self.hp, self.energy, self.dead = hp, energy, dead


def survival_wrapper(env, repeat: int, threshold: float):
    """EdgeArena-v0 with the survival reward and our action repeat (a gymnasium Wrapper, made here so that
    gymnasium is imported only by the peer)."""
    import gymnasium as gym

    class SurvivalReward(gym.Wrapper):
        def __init__(self, env):
            super().__init__(env)
            self.as_body = _EnvAsBody(env)
            self.body_steps = 0
            self.decisions = 0
            self.deaths = 0
            self._last = None

        def reset(self, **kw):
            obs, info = self.env.reset(**kw)
            self._last = _Felt(float(obs["body"][0]), float(obs["body"][1]), False)
            return obs, info

        def step(self, action):
            felt, feel = act_repeat(self.as_body, tuple(int(a) for a in np.asarray(action).reshape(-1)), self._last,
                                    repeat, threshold)
            self._last = felt
            self.body_steps += feel.body_steps
            self.decisions += 1
            self.deaths += int(feel.dead)
            reward = float(feel.body_steps - (1 if feel.dead else 0))  # +1 per body step alive, 0 at the death step
            b = self.as_body
            return b.obs, reward, bool(b.terminated), bool(b.truncated), b.info

    return SurvivalReward(env)


class PpoPolicy(Policy):
    """A trained PPO, frozen, in our evaluation harness: Sense -> EdgeArena-v0 observation -> model.predict."""

    def __init__(self, path: str, greedy: bool = False):
        from stable_baselines3 import PPO

        from .gym_env import sense_obs

        self.model = PPO.load(path, device="cpu")
        self.greedy = greedy
        self.name = "ppo"
        self._obs = sense_obs

    def prepare(self, cfg):
        import torch

        torch.set_num_threads(cfg.runtime.threads)

    def __call__(self, sense):
        a, _ = self.model.predict(self._obs(sense), deterministic=self.greedy)
        return tuple(int(x) for x in np.asarray(a).reshape(-1))


# ------------------------------------------------------------------ learning jobs (each in a fresh process)
class _StopAtBodySteps(Hook):
    def __init__(self, n: int):
        self.n = n

    def on_step(self, runner, sense, metrics):
        if runner.body_steps >= self.n:
            runner.request_stop()


def learn_ours(job: dict) -> dict:
    from edge_runtime.bodies import make_body
    from edge_runtime.memory import peak_rss_mb
    from edge_runtime.runtime import Runner

    cfg = Config.from_dict(job["cfg"])
    if learner_backend(cfg.model, cfg.rule.name) != "numpy":  # (the numpy learner's process never imports torch)
        import torch

        torch.set_num_threads(1)
    t = time.perf_counter()
    hooks = [_StopAtBodySteps(job["body_steps"])] if job.get("body_steps") else []
    with make_body(cfg, "arena") as body:
        runner = Runner(cfg, body, seed=job["seed"], run_dir=job["run_dir"], progress=False, hooks=hooks)
        s = runner.run(job["steps"] if not job.get("body_steps") else None)
        brain = runner.rule.brain
        params = brain.n_params() if runner.rule.net.name == "numpy" else sum(p.numel() for p in brain.parameters())
    return {"learner": "survival", "seed": job["seed"], "path": job["run_dir"], "backend": runner.rule.net.name,
            "torch_imported": "torch" in sys.modules, "learn_decisions": s["steps"],
            "learn_body_steps": s["body_steps"], "learn_wall_s": round(time.perf_counter() - t, 1),
            "learn_peak_rss_mb": round(peak_rss_mb(), 1), "params": params, "learn_lives": s["lives_completed"]}


def learn_ppo(job: dict) -> dict:
    import gymnasium as gym
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback

    import sim_bridge  # noqa: F401  (registers EdgeArena-v0)

    torch.set_num_threads(1)
    cfg = Config.from_dict(job["cfg"])
    raw = gym.make("EdgeArena-v0", config=cfg.arena)
    spec_repeat = cfg.runtime.repeat_for(raw.unwrapped.arena.spec)  # as our learner and the harness repeat
    env = survival_wrapper(raw, spec_repeat, cfg.runtime.event_threshold)
    budget = job["body_steps"]

    class Budget(BaseCallback):
        def _on_step(self) -> bool:  # False ends learn(): the body-step budget is spent
            return env.body_steps < budget

    t = time.perf_counter()
    env.reset(seed=job["seed"])
    model = PPO("MultiInputPolicy", env, seed=job["seed"], device="cpu", verbose=0, **job["ppo"])
    model.learn(total_timesteps=budget, callback=Budget())  # (decisions <= body steps: the callback stops it)
    wall = time.perf_counter() - t
    model.save(job["path"])
    from edge_runtime.memory import peak_rss_mb  # (after learning: nothing the peer does not need is loaded before)
    return {"learner": "ppo", "seed": job["seed"], "path": job["path"] + ".zip", "learn_decisions": env.decisions,
            "learn_body_steps": env.body_steps, "learn_wall_s": round(wall, 1), "learn_peak_rss_mb": round(peak_rss_mb(), 1),
            "params": sum(p.numel() for p in model.policy.parameters()), "learn_lives": env.deaths,
            "ppo": job["ppo"], "action_repeat": spec_repeat}


def evaluate_job(job: dict) -> list[dict]:
    import torch

    from edge_runtime.bench import eval_seed_for
    from edge_runtime.bodies import kind, make_body
    from edge_runtime.evaluate import evaluate, make_policy

    torch.set_num_threads(1)
    cfg = Config.from_dict(job["cfg"])
    spec = job["spec"]
    ev_seed = eval_seed_for(job["seed"])
    out = []
    for greedy in ((False, True) if job["who"] in ("survival", "ppo") else (False,)):
        if job["who"] == "ppo":
            pol = PpoPolicy(job["path"], greedy=greedy)
        elif job["who"] == "survival":
            pol = make_policy(job["path"], spec, greedy=greedy)
        else:
            pol = make_policy(job["who"], spec, policies=kind("arena").policies)
        r = evaluate(pol, lambda: make_body(cfg, "arena"), cfg, job["lives"], ev_seed, cap=job["cap"])
        r.update(seed=job["seed"], eval_seed=ev_seed, policy=job["who"], label=job["who"])
        out.append(r)
    return out


# ------------------------------------------------------------------ the benchmark
def bench_peer(cfg: Config, seeds: list[int], steps: int, body_steps: int | None, lives: int, cap: int | None,
               jobs: int, out_dir: str | None, ppo: dict, only_peer: bool = False, log=sys.stderr) -> dict:
    from edge_runtime.bench import probe_body

    try:
        import stable_baselines3  # noqa: F401
    except ImportError:
        raise ValueError("bench peer --peer ppo needs stable-baselines3: pip install -e '.[peers]'") from None
    if only_peer and not body_steps:
        raise ValueError("--only-peer needs --body-steps N (without our learner there is no budget to match)")
    t0 = time.perf_counter()
    spec = probe_body(cfg, "arena")
    cap = cap or cfg.runtime.eval_cap
    out = Path(out_dir or f"runs/peer-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    d = cfg.to_dict()
    settings = {**PPO_DEFAULTS, **{k: v for k, v in ppo.items() if v is not None}}
    print(f"bench peer: PPO {settings} beside survival on seeds {seeds}, "
          + (f"{body_steps} body steps each" if body_steps else f"{steps} of our decisions and PPO at the same body steps")
          + f"; {lives} frozen lives per evaluation (cap {cap}); {jobs} processes; results in {out}", file=log)
    base = {"cfg": d, "spec": spec, "lives": lives, "cap": cap}
    learned: list[dict] = []
    records: list[dict] = []
    lock = threading.Lock()
    # spawn, one task per process: each learner's peak RSS is its own, not a pool's
    with cf.ProcessPoolExecutor(max_workers=jobs, mp_context=mp.get_context("spawn"), max_tasks_per_child=1) as pool:

        def pipeline(seed: int):
            budget = body_steps
            if not only_peer:
                ours = pool.submit(learn_ours, {"cfg": d, "seed": seed, "steps": steps, "body_steps": body_steps,
                                                "run_dir": str(out / f"survival-s{seed}")}).result()
                with lock:
                    learned.append(ours)
                budget = budget or ours["learn_body_steps"]
                print(f"bench peer: seed {seed}: survival learned {ours['learn_decisions']} decisions, "
                      f"{ours['learn_body_steps']} body steps in {ours['learn_wall_s']} s", file=log)
            peer = pool.submit(learn_ppo, {"cfg": d, "seed": seed, "body_steps": budget, "ppo": settings,
                                           "path": str(out / f"ppo-s{seed}")}).result()
            print(f"bench peer: seed {seed}: ppo learned {peer['learn_decisions']} decisions, "
                  f"{peer['learn_body_steps']} body steps in {peer['learn_wall_s']} s", file=log)
            evals = [pool.submit(evaluate_job, {**base, "seed": seed, "who": "ppo", "path": peer["path"]})]
            if not only_peer:
                evals.append(pool.submit(evaluate_job, {**base, "seed": seed, "who": "survival", "path": ours["path"]}))
            evals += [pool.submit(evaluate_job, {**base, "seed": seed, "who": b})
                      for b in (["random"] + (["stationary"] if spec.still is not None else []))]
            rs = [r for f in evals for r in f.result()]
            with lock:
                learned.append(peer)
                records.extend(rs)

        errors = []

        def guarded(seed: int):
            try:
                pipeline(seed)
            except BaseException as e:  # noqa: BLE001  (reported after the others finish)
                errors.append((seed, e))

        threads = [threading.Thread(target=guarded, args=(s,)) for s in seeds]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            s, e = errors[0]
            raise RuntimeError(f"bench peer: seed {s} failed: {type(e).__name__}: {e}") from e
    for r in records:
        info = next((x for x in learned if x["seed"] == r["seed"] and x["learner"] == r["policy"]), None)
        if info:
            r.update({k: v for k, v in info.items() if k not in ("learner", "seed", "path")})
    records.sort(key=lambda r: (r["seed"], r["policy"], r["mode"]))
    res = {"peer": "ppo", "body": "arena", "seeds": seeds, "steps": None if body_steps else steps,
           "body_steps": body_steps, "lives": lives, "cap": cap, "ppo": settings, "ppo_policy": "MultiInputPolicy",
           "action_repeat": cfg.runtime.repeat_for(spec), "baselines": ["random"] + (["stationary"] if spec.still else []),
           "wall_s": round(time.perf_counter() - t0, 1), "verdict": _verdict(records, learned, seeds, only_peer),
           "learning": sorted(learned, key=lambda x: (x["seed"], x["learner"])), "records": records}
    (out / "results.json").write_text(dumps(res, indent=1))
    table = format_table(res)
    (out / "table.txt").write_text(table + "\n")
    print(table, file=log)
    return res


def _verdict(records, learned, seeds, only_peer) -> dict:
    if only_peer:
        return {}
    per_seed = {}
    for s in seeds:
        med = {(r["policy"], r["mode"]): r["median_lifespan"] for r in records if r["seed"] == s}
        rss = {x["learner"]: x["learn_peak_rss_mb"] for x in learned if x["seed"] == s}
        per_seed[s] = {"survival_sample": med.get(("survival", "sample")), "ppo_sample": med.get(("ppo", "sample")),
                       "survival_greedy": med.get(("survival", "greedy")), "ppo_greedy": med.get(("ppo", "greedy")),
                       "survival_peak_rss_mb": rss.get("survival"), "ppo_peak_rss_mb": rss.get("ppo"),
                       "rss_ratio": round(rss["survival"] / rss["ppo"], 3) if rss.get("ppo") else None}
        v = per_seed[s]
        v["ours_at_least_ppo"] = v["survival_sample"] is not None and v["ppo_sample"] is not None and \
            v["survival_sample"] >= v["ppo_sample"]
        v["meets_goal"] = v["ours_at_least_ppo"] and v["rss_ratio"] is not None and v["rss_ratio"] <= 0.5
    return {"seeds_ours_at_least_ppo": sum(v["ours_at_least_ppo"] for v in per_seed.values()),
            "seeds_meeting_goal": sum(v["meets_goal"] for v in per_seed.values()), "seeds": len(seeds),
            "per_seed": per_seed}


def format_table(res: dict) -> str:
    learn = {(x["seed"], x["learner"]): x for x in res["learning"]}
    lines = [f"{'seed':>4}  {'policy':<10} {'mode':<6} {'median':>7} {'p25':>6} {'p75':>6} {'cens':>7} {'d/10k':>6} "
             f"{'body steps':>10} {'wall s':>7} {'peak MB':>7} {'params':>8}"]
    for r in res["records"]:
        x = learn.get((r["seed"], r["policy"]), {})
        lines.append(f"{r['seed']:>4}  {r['policy']:<10} {r['mode']:<6} {r['median_lifespan']:>7.0f} {r['p25']:>6.0f} "
                     f"{r['p75']:>6.0f} {r['censored']:>3}/{r['lives']:<3} {r['deaths_per_10k']:>6.2f} "
                     f"{x.get('learn_body_steps', ''):>10} {x.get('learn_wall_s', ''):>7} {x.get('learn_peak_rss_mb', ''):>7} "
                     f"{x.get('params', ''):>8}")
    v = res["verdict"]
    if v:
        lines.append(f"ours >= PPO (frozen sampled median): {v['seeds_ours_at_least_ppo']}/{v['seeds']} seeds; "
                     f"and at <= 1/2 of PPO's peak RSS: {v['seeds_meeting_goal']}/{v['seeds']}")
    lines.append(f"PPO settings {res['ppo']} ({res['ppo_policy']}), action repeat {res['action_repeat']}; "
                 f"wall time {res['wall_s']} s")
    return "\n".join(lines)


def bench_command(cfg, args) -> dict:
    """`edge-runtime bench peer` (found through the edge_runtime.commands entry points)."""
    return bench_peer(cfg, args.seed_list, args.steps, args.body_steps, args.lives, args.cap, args.jobs, args.out,
                      {"n_steps": args.ppo_n_steps, "learning_rate": args.ppo_lr, "ent_coef": args.ppo_ent_coef},
                      only_peer=args.only_peer)
