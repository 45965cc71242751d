"""model.backend = numpy: the survival rule with a brain computed by hand in numpy, in a process without torch.

A learning process on this backend holds numpy and the runtime, not torch (about 205 MB less resident memory
on the x86_64 machine; `edge-runtime bench step --backend numpy` prints the figures). Its weights are saved as
weights.npz under torch Brain's names, so evaluation and export (torch processes) read them as they read
weights.pt; its checkpoints hold numpy arrays (checkpoint/fileformat.py) and resume on this backend.
"""
from __future__ import annotations

import numpy as np

from ..acting import body_vector, eyes_input
from ..body import BodySpec, Sense
from ..config import ConfigError, ModelConfig, RuleConfig
from .brain import NumpyBrain
from .survival import NumpySurvival


def build(spec: BodySpec, model_cfg: ModelConfig, rule_cfg: RuleConfig, seed: int = 0) -> NumpySurvival:
    """A fresh numpy brain (initialised from `seed`) and the survival rule driving it."""
    if rule_cfg.name != "survival":
        raise ConfigError(f"rule.name: model.backend = numpy runs the survival rule, got {rule_cfg.name!r}")
    if model_cfg.towers not in ("auto", "split"):
        raise ConfigError(f"model.towers: model.backend = numpy runs split towers (or auto), got {model_cfg.towers!r}")
    return NumpySurvival(NumpyBrain(spec, model_cfg, seed), rule_cfg, seed)


def limit_blas_threads(n: int) -> None:
    """runtime.threads for numpy's BLAS, as torch.set_num_threads is for torch. OpenBLAS otherwise starts a thread
    per core for the larger products, which at batch 1 costs more than it brings and competes with the body (and
    with a job run beside this one on the other core). Process-wide, like torch's setting."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=n, user_api="blas")


class NumpySenseEncoder:
    """Sense -> (eyes (6, h, w) float32 in [-1, 1], body vector (2 + touch,)): senses.SenseEncoder without torch."""

    def __init__(self, spec: BodySpec, input_hw: tuple[int, int]):
        self.spec = spec
        self.hw = tuple(input_hw)

    def __call__(self, sense: Sense) -> tuple[np.ndarray, np.ndarray]:
        return eyes_input(sense, self.hw), body_vector(sense, self.spec.touch_channels)


__all__ = ["NumpyBrain", "NumpySurvival", "NumpySenseEncoder", "build", "limit_blas_threads"]
