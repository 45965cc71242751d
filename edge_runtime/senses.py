"""Turn a Sense into model inputs: raw pixels and body vector, no hand-made features."""
from __future__ import annotations

import numpy as np
import torch

try:
    import cv2
except ImportError:  # the core imports without OpenCV (a board brings its own); only resizing needs it
    cv2 = None

from .body import BodySpec, Sense


class SenseEncoder:
    def __init__(self, spec: BodySpec, input_hw: tuple[int, int]):
        self.spec = spec
        self.h, self.w = input_hw

    def eyes(self, sense: Sense) -> torch.Tensor:
        """(1, 6, h, w) float32: left RGB then right RGB, scaled to [-1, 1]."""
        out = []
        for img in (sense.left, sense.right):
            if img.shape[:2] != (self.h, self.w):
                if cv2 is None:
                    raise RuntimeError("resizing the eyes needs OpenCV: pip install -e '.[opencv]', or the board's "
                                       "own (python3-opencv, JetPack's)")
                img = cv2.resize(img, (self.w, self.h), interpolation=cv2.INTER_AREA)
            out.append(img)
        x = np.concatenate(out, 2).astype(np.float32)
        x = x.transpose(2, 0, 1)[None] * (2.0 / 255.0) - 1.0
        return torch.from_numpy(np.ascontiguousarray(x))

    def body(self, sense: Sense) -> torch.Tensor:
        """(1, 2 + touch) float32: hp, energy, touch channels, each as its own input (not an image bar)."""
        v = np.empty(2 + self.spec.touch_channels, np.float32)
        v[0], v[1] = sense.hp, sense.energy
        v[2:] = sense.touch
        return torch.from_numpy(v)[None]

    def __call__(self, sense: Sense):
        return self.eyes(sense), self.body(sense)
