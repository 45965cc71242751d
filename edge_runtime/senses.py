"""Turn a Sense into model inputs: raw pixels and body vector, no hand-made features."""
from __future__ import annotations

import torch

from .acting import body_vector, eyes_input
from .body import BodySpec, Sense


class SenseEncoder:
    def __init__(self, spec: BodySpec, input_hw: tuple[int, int]):
        self.spec = spec
        self.h, self.w = input_hw

    def eyes(self, sense: Sense) -> torch.Tensor:
        """(1, 6, h, w) float32: left RGB then right RGB, scaled to [-1, 1]."""
        return torch.from_numpy(eyes_input(sense, (self.h, self.w))[None])

    def body(self, sense: Sense) -> torch.Tensor:
        """(1, 2 + touch) float32: hp, energy, touch channels, each as its own input (not an image bar)."""
        return torch.from_numpy(body_vector(sense, self.spec.touch_channels))[None]

    def __call__(self, sense: Sense):
        return self.eyes(sense), self.body(sense)
