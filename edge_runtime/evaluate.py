"""Frozen evaluation: lives from fixed world seeds, no learning, reported with medians and censoring.

Each life i starts the whole world afresh from seed (eval_seed + i), so every
policy meets the same worlds. A life that reaches the cap is right-censored:
its true length is unknown and at least the cap. Lifespans are long-tailed, so
the headline figures are the median and quartiles, the censored count and
deaths per 10k body steps; the mean is given only beside them.
"""
from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Callable

import numpy as np

from .acting import act_repeat
from .body import Body, UncertainMortality
from .config import Config, ConfigError, ModelConfig

# torch is imported where a torch brain is loaded, not here: an ONNX policy (edge_runtime/onnx_policy.py) and
# the baselines evaluate in a process that never imports it

BASELINES = ("random", "stationary")  # every body has these; a body kind may add its own (the arena: oracle)


class PolicyError(ValueError):
    pass


def no_stationary(spec) -> str:
    return (f"stationary: {spec.name} names no do-nothing action (its spec's `still`: every action it has moves "
            "something), so it has no stationary baseline")


def check_mortal(body: Body):
    """A frozen evaluation measures time to death: refuse a body that says its lives cannot end in one."""
    if isinstance(body, UncertainMortality):
        why = body.why_it_cannot_die()
        if why:
            raise PolicyError(f"cannot evaluate in {body.spec.name}: {why}")


class Policy:
    """Maps a Sense to an action, with per-life state. Frozen: never learns."""

    name = "policy"

    def prepare(self, cfg: Config):
        """Before the first life: take the run's settings (threads)."""

    def start_life(self, body: Body, seed: int):
        pass

    def __call__(self, sense):
        raise NotImplementedError


class RandomPolicy(Policy):
    name = "random"

    def start_life(self, body, seed):
        self.spec = body.spec
        self.rng = np.random.default_rng(seed + 7919)

    def __call__(self, sense):
        return tuple(int(self.rng.integers(n)) for n in self.spec.action_heads.values())


class StationaryPolicy(Policy):
    """The body's own do-nothing action (BodySpec.still); a body that names none has no stationary baseline."""

    name = "stationary"

    def start_life(self, body, seed):
        if body.spec.still is None:
            raise PolicyError(no_stationary(body.spec))
        self.action = body.spec.still

    def __call__(self, sense):
        return self.action


class BrainPolicy(Policy):
    """A learned brain, frozen; acts by sampling its action region (or argmax with greedy)."""

    def __init__(self, rule, model_cfg: ModelConfig, greedy: bool = False, name: str = "brain"):
        self.rule = rule
        self.rule.learning = False
        self.greedy = greedy
        self.name = name
        self.model_cfg = model_cfg
        self.rule.brain.eval()

    def prepare(self, cfg):
        import torch

        torch.set_num_threads(cfg.runtime.threads)

    def start_life(self, body, seed):
        from .senses import SenseEncoder

        self.enc = SenseEncoder(body.spec, self.model_cfg.input_hw)
        self.rule.gen.manual_seed(seed + 104729)
        self.rule.new_life()

    def __call__(self, sense):
        eyes, bodyv = self.enc(sense)
        return self.rule.act_frozen(eyes, bodyv, greedy=self.greedy)


def _read_frozen(path: str | Path) -> dict:
    """{model, towers, spec, model_cfg, rule} from a run directory (weights.pt, else its newest valid
    checkpoint), a weights file, or a flash checkpoint file (ckpt-*.bin). Never executes pickled code."""
    from . import checkpoint as ck

    p = Path(path)
    if p.is_dir():
        if (p / "weights.pt").exists():
            p = p / "weights.pt"
        elif (p / "weights.npz").exists():  # a numpy learner's (model.backend = numpy)
            p = p / "weights.npz"
        else:
            try:
                info, state = ck.CheckpointStore(ck.resolve_dir(p)).load()
            except ck.CheckpointError as e:
                raise PolicyError(f"{path}: no weights.pt and no valid checkpoint ({e})") from None
            return _from_checkpoint(state)
    if not p.exists():
        raise PolicyError(f"{path}: no such policy (random | stationary | oracle | RUN_DIR | weights or checkpoint file)")
    if p.suffix == ".npz":
        return _from_npz(p)
    data = p.read_bytes()
    if p.suffix == ".onnx":
        raise PolicyError(f"{p}: an ONNX brain is acted with by `eval/run --policy`, it cannot be loaded as torch weights")
    if data[:len(ck.MAGIC)] == ck.MAGIC:
        info, payload = ck.parse(data, "file", str(p))
        if payload is None:
            raise PolicyError(f"{p}: not a valid checkpoint ({info.error})")
        try:
            return _from_checkpoint(ck.decode(payload))
        except ck.CheckpointError as e:
            raise PolicyError(f"{p}: {e}") from None
    import torch

    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as e:  # a corrupt or foreign file
        raise PolicyError(f"{p}: not a readable weights file ({type(e).__name__}: {e})") from None


def _from_npz(p: Path) -> dict:
    """weights.npz of a numpy learner: torch Brain's state dict by name, and its record under __meta__."""
    try:
        with np.load(p, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        meta = json.loads(arrays.pop("__meta__").tobytes())
    except Exception as e:  # a corrupt or foreign file
        raise PolicyError(f"{p}: not a readable weights file ({type(e).__name__}: {e})") from None
    return {**meta, "model": _as_tensors(arrays)}


def _as_tensors(model: dict) -> dict:
    """A numpy learner's state dict as the torch Brain loads it."""
    import torch

    return {k: torch.from_numpy(np.asarray(v)) for k, v in model.items()}


def _from_checkpoint(state: dict) -> dict:
    cfg = json.loads(state["config"])
    model = state["model"]
    if any(isinstance(v, np.ndarray) for v in model.values()):  # a numpy learner's checkpoint
        model = _as_tensors(model)
    return {"model": model, "towers": state["meta"]["towers"], "spec": json.loads(state["spec"]),
            "model_cfg": cfg["model"], "rule": state["meta"]["rule"]}


def load_brain_policy(path: str | Path, spec, greedy: bool = False) -> BrainPolicy:
    """Load a frozen brain (see _read_frozen for what `path` may be)."""
    ck = _read_frozen(path)
    p = path  # named in every error below
    if ck.get("spec", {}).get("action_heads") != dict(spec.action_heads) or list(ck["spec"]["eye_shape"]) != list(spec.eye_shape):
        raise PolicyError(f"{p}: made for body {ck.get('spec')}, not {spec.to_dict()}")
    try:
        saved = dict(ck["model_cfg"])
        saved.setdefault("eye_norm", False)  # weights from before eye_norm existed learned on raw pixels
        mcfg = ModelConfig(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in saved.items()})
    except (TypeError, ConfigError) as e:
        raise PolicyError(f"{p}: model config does not load ({e})") from None
    from .config import RuleConfig
    from .model import Brain
    from .rules import RULES
    from .rules.base import Rule

    brain = Brain(spec, mcfg, ck["towers"])
    try:
        brain.load_state_dict(ck["model"])
    except RuntimeError as e:
        raise PolicyError(f"{p}: weights do not fit the model ({str(e).splitlines()[0]})") from None
    rule_cls = RULES[ck["rule"]]
    rule = rule_cls.__new__(rule_cls)
    Rule.__init__(rule, brain, RuleConfig(name=ck["rule"]))
    return BrainPolicy(rule, mcfg, greedy=greedy, name=str(path))


def make_policy(name: str, spec, greedy: bool = False, policies: dict | None = None) -> Policy:
    """random | stationary | a policy the body kind offers (`policies`, e.g. the arena's oracle) | a learned brain."""
    if name == "random":
        return RandomPolicy()
    if name == "stationary":
        if spec.still is None:
            raise PolicyError(no_stationary(spec))
        return StationaryPolicy()
    if policies and name in policies:
        return policies[name]()
    if str(name).endswith(".onnx"):
        from .onnx_policy import OnnxPolicy

        return OnnxPolicy(name, spec, greedy=greedy)
    return load_brain_policy(name, spec, greedy)


def evaluate(policy: Policy, make_body: Callable[[], Body], cfg: Config, lives: int, seed: int,
             cap: int | None = None, action_repeat: int | None = None) -> dict:
    """Run `lives` frozen lives; life i starts the world from seed + i."""
    policy.prepare(cfg)
    cap = cap or cfg.runtime.eval_cap
    lengths, censored, food, hits = [], [], [], []
    with make_body() as body:
        repeat = action_repeat or getattr(policy, "action_repeat", None) or cfg.runtime.repeat_for(body.spec)
        for i in range(lives):
            s = body.reset(seed=seed + i)
            policy.start_life(body, seed + i)
            n = 0
            while not s.dead and n < cap:
                a = policy(s)
                s, feel = act_repeat(body, a, s, min(repeat, cap - n), cfg.runtime.event_threshold)
                n += feel.body_steps
            lengths.append(n)
            censored.append(not s.dead)
            cnt = body.counters
            food.append(cnt.get("food", 0))
            hits.append(cnt.get("hazard_hits", 0))
    L = np.array(lengths)
    deaths = int(np.sum(~np.array(censored)))
    return {
        "policy": policy.name, "mode": "greedy" if getattr(policy, "greedy", False) else "sample",
        "lives": lives, "seed": seed, "cap": cap, "action_repeat": repeat,
        "median_lifespan": float(np.median(L)), "p25": float(np.percentile(L, 25)), "p75": float(np.percentile(L, 75)),
        "censored": int(np.sum(censored)), "deaths": deaths, "body_steps": int(L.sum()),
        "deaths_per_10k": round(deaths / L.sum() * 10_000, 3), "mean_lifespan": float(L.mean()),
        "food_per_life": float(np.mean(food)), "hazard_hits_per_life": float(np.mean(hits)),
        "lifespans": [int(x) for x in L],
    }


def format_row(r: dict) -> str:
    return (f"{r['policy'][:28]:<28} {r['mode']:<6} med {r['median_lifespan']:>7.0f}  p25 {r['p25']:>6.0f}  p75 {r['p75']:>6.0f}  "
            f"cens {r['censored']:>3}/{r['lives']:<3} d/10k {r['deaths_per_10k']:>6.2f}  food {r['food_per_life']:>5.1f}  "
            f"hits {r['hazard_hits_per_life']:>4.1f}")
