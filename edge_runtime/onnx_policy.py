"""Acting with an exported brain (`edge-runtime export`) through ONNX Runtime, in a process without torch.

    pol = OnnxPolicy("brain.onnx", body.spec)     # checks the model was made for this body
    pol.prepare(cfg); pol.start_life(body, seed)
    action = pol(sense)                           # the thought flows from step to step, as in the learner

No learning: a brain that only has to act need not carry torch (about 220 MB resident before anything runs).
Sampling draws from the softmax of each head's logits with a numpy generator seeded per life; greedy takes the
argmax, so greedy actions are the torch brain's own.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from .acting import body_vector, eyes_at
from .evaluate import Policy, PolicyError

FORMAT = "edge-runtime-brain/1"  # what edge_runtime/export_onnx.py writes


def config_sha256(spec: dict, model_cfg: dict) -> str:
    """The hash a brain is matched by: its body spec and model config (ONNX metadata `config_sha256`)."""
    return hashlib.sha256(json.dumps({"spec": spec, "model": model_cfg}, sort_keys=True).encode()).hexdigest()


class OnnxPolicy(Policy):
    def __init__(self, path: str | Path, spec, greedy: bool = False):
        self.path = Path(path)
        self.greedy = greedy
        self.name = str(path)
        if not self.path.is_file():
            raise PolicyError(f"{path}: no such ONNX brain")
        try:
            import onnxruntime as ort
        except ImportError:
            raise PolicyError(f"{path}: acting with an ONNX brain needs onnxruntime (pip install -e '.[onnx]')") from None
        self._ort = ort
        self.session = self._session(1)
        meta = self.session.get_modelmeta().custom_metadata_map
        if meta.get("format") != FORMAT:
            raise PolicyError(f"{path}: not an edge-runtime brain (metadata format {meta.get('format')!r}, "
                              f"expected {FORMAT!r}): export it with `edge-runtime export`")
        self.meta = meta
        made_for = json.loads(meta["body_spec"])
        if config_sha256(made_for, json.loads(meta["model_config"])) != meta.get("config_sha256"):
            raise PolicyError(f"{path}: its metadata does not match its config_sha256 (edited or damaged): export again")
        if made_for.get("action_heads") != dict(spec.action_heads) or list(made_for["eye_shape"]) != list(spec.eye_shape) \
                or made_for.get("touch_channels") != spec.touch_channels:
            raise PolicyError(f"{path}: made for body {made_for}, not {spec.to_dict()}")
        self.head_names = [name for name, _ in json.loads(meta["action_heads"])]
        self.heads = [n for _, n in json.loads(meta["action_heads"])]
        self.last_out: dict[str, np.ndarray] | None = None  # the last decision's outputs (OnnxActor.regions_now)
        shape = {i.name: i.shape for i in self.session.get_inputs()}
        self.hw = tuple(shape["left"][1:3])
        self.thought_size = int(shape["thought_in"][1])
        self.touch = spec.touch_channels

    def _session(self, threads: int):
        self._threads = threads
        so = self._ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        try:
            return self._ort.InferenceSession(str(self.path), so, providers=["CPUExecutionProvider"])
        except Exception as e:  # a corrupt or foreign file
            raise PolicyError(f"{self.path}: not a loadable ONNX model ({type(e).__name__}: {e})") from None

    def prepare(self, cfg):
        if cfg.runtime.threads != self._threads:  # ONNX Runtime takes its thread count when a session is made
            self.session = self._session(cfg.runtime.threads)

    def start_life(self, body, seed):
        self.rng = np.random.default_rng(seed + 104729)
        self.thought = np.zeros((1, self.thought_size), np.float32)

    def forward(self, sense) -> dict[str, np.ndarray]:
        """Every output region for this sense and the current thought (the thought is not advanced)."""
        left, right = eyes_at(sense, self.hw)
        feed = {"left": left[None], "right": right[None], "body": body_vector(sense, self.touch)[None],
                "thought_in": self.thought}
        names = [o.name for o in self.session.get_outputs()]
        return dict(zip(names, self.session.run(names, feed)))

    def __call__(self, sense):
        out = self.forward(sense)
        self.last_out = out
        self.thought = np.tanh(out["thought"]).astype(np.float32)
        logits = out["actions"][0]
        action, i = [], 0
        for n in self.heads:
            z = logits[i:i + n].astype(np.float64)
            i += n
            if self.greedy:
                action.append(int(np.argmax(z)))
            else:
                p = np.exp(z - z.max())
                action.append(int(self.rng.choice(n, p=p / p.sum())))
        return tuple(action)


class OnnxActor:
    """What `run --policy brain.onnx` drives the runtime loop with in place of a learning rule: it acts (the
    thought flowing), never learns. The loop hands it each Sense as it is (encoder `sense_as_is`)."""

    learns = False
    learning = False
    rollbacks = faults = deaths = 0

    def __init__(self, policy: OnnxPolicy, seed: int):
        self.policy = policy
        self.name = f"onnx:{Path(policy.path).name}"
        self.seed = seed
        self.steps = 0  # decisions acted
        self.lives = 0
        policy.start_life(None, seed)

    def act_frozen(self, sense, _unused=None):
        self.steps += 1
        return self.policy(sense)

    def regions_now(self) -> dict | None:
        """As Rule.regions_now: each head's probabilities, the loss and LR regions, the thought as fed back."""
        out = self.policy.last_out
        if out is None:
            return None
        heads, i = {}, 0
        for name, n in zip(self.policy.head_names, self.policy.heads):
            z = out["actions"][0, i:i + n].astype(np.float64)
            i += n
            p = np.exp(z - z.max())
            heads[name] = (p / p.sum()).tolist()
        return {"heads": heads, "loss": out["loss"][0].tolist(), "lr": out["lr"][0].tolist(),
                "thought": np.tanh(out["thought"][0]).tolist()}

    def new_life(self):
        self.lives += 1
        self.policy.start_life(None, self.seed + self.lives)

    def rollback(self, reason: str, which: str = "latest") -> bool:
        return False


def sense_as_is(sense):
    return sense, None


def bench_onnx_step(cfg, policy: str, steps: int, warmup: int, seed: int) -> dict:
    """`bench step --backend onnx`: one decision's forward (eyes resized, ONNX Runtime run, action drawn) in the
    arena, and this process's peak RSS; torch is never imported (the figure says so)."""
    import resource
    import sys
    import time

    from .acting import act_repeat
    from .bodies import kind

    with kind("arena").make(cfg, "") as body:
        pol = OnnxPolicy(policy, body.spec)
        pol.prepare(cfg)
        s = body.reset(seed=seed)
        pol.start_life(body, seed)
        fwd = []
        for i in range(warmup + steps):
            t = time.perf_counter()
            a = pol(s)
            if i >= warmup:
                fwd.append(time.perf_counter() - t)
            s, _ = act_repeat(body, a, s, cfg.runtime.repeat_for(body.spec), cfg.runtime.event_threshold)
            if s.dead:
                s = body.respawn()
                pol.start_life(body, seed + i)
    return {"backend": "onnx", "policy": str(policy), "forward_ms": round(float(np.median(fwd)) * 1000, 3),
            "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1),
            "torch_imported": "torch" in sys.modules, "threads": cfg.runtime.threads, "steps_measured": steps}
