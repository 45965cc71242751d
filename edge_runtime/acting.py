"""Acting on a body, without torch: what a frozen policy (torch or ONNX Runtime) and the learning loop share.

    sense, feeling = act_repeat(body, action, sense, repeat, threshold)
    left, right    = eyes_at(sense, (h, w))          # the eyes at the model's input size, uint8 RGB
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

try:
    import cv2
except ImportError:  # the core imports without OpenCV (a board brings its own); only resizing needs it
    cv2 = None

from .body import Body, Sense


@dataclass
class Feeling:
    """What the body felt over one decision (one or more body steps). Sensations only."""

    d_hp: float
    d_energy: float
    dead: bool
    body_steps: int = 1


def act_repeat(body: Body, action, sense: Sense, repeat: int, threshold: float) -> tuple[Sense, Feeling]:
    """Hold an action for up to `repeat` body steps; stop early when the body feels an event."""
    hp0, en0 = sense.hp, sense.energy
    n = 0
    for _ in range(repeat):
        prev_hp, prev_en = sense.hp, sense.energy
        sense = body.act(action)
        n += 1
        if sense.dead or sense.hp - prev_hp < -threshold or sense.energy - prev_en > threshold:
            break
    return sense, Feeling(sense.hp - hp0, sense.energy - en0, sense.dead, n)


def eyes_at(sense: Sense, hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Both eyes at (h, w), uint8 RGB: OpenCV's area resize when the body's eyes are another size."""
    h, w = hw
    out = []
    for img in (sense.left, sense.right):
        if img.shape[:2] != (h, w):
            if cv2 is None:
                raise RuntimeError("resizing the eyes needs OpenCV: pip install -e '.[opencv]', or the board's "
                                   "own (python3-opencv, JetPack's)")
            img = cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)
        out.append(img)
    return out[0], out[1]


def eyes_input(sense: Sense, hw: tuple[int, int]) -> np.ndarray:
    """(6, h, w) float32 in [-1, 1]: left RGB then right RGB, what the brain's eyes take."""
    x = np.concatenate(eyes_at(sense, hw), 2).astype(np.float32)
    return np.ascontiguousarray(x.transpose(2, 0, 1) * (2.0 / 255.0) - 1.0)


def body_vector(sense: Sense, touch_channels: int) -> np.ndarray:
    """(2 + touch,) float32: hp, energy, touch channels, each as its own input (not an image bar)."""
    v = np.empty(2 + touch_channels, np.float32)
    v[0], v[1] = sense.hp, sense.energy
    v[2:] = sense.touch
    return v
