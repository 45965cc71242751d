"""MobileNetV3's block tables, without torch: the torch Brain (model.py) and the numpy learner
(numpy_learner/brain.py) build the same network from them."""
from __future__ import annotations

# (kernel, expansion channels, out channels, squeeze-excite, activation, stride)
# Tables follow "Searching for MobileNetV3" (Howard et al. 2019).
BLOCKS = {
    "large": [
        (3, 16, 16, False, "RE", 1), (3, 64, 24, False, "RE", 2), (3, 72, 24, False, "RE", 1),
        (5, 72, 40, True, "RE", 2), (5, 120, 40, True, "RE", 1), (5, 120, 40, True, "RE", 1),
        (3, 240, 80, False, "HS", 2), (3, 200, 80, False, "HS", 1), (3, 184, 80, False, "HS", 1),
        (3, 184, 80, False, "HS", 1), (3, 480, 112, True, "HS", 1), (3, 672, 112, True, "HS", 1),
        (5, 672, 160, True, "HS", 2), (5, 960, 160, True, "HS", 1), (5, 960, 160, True, "HS", 1),
    ],
    "small": [
        (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (3, 88, 24, False, "RE", 1),
        (5, 96, 40, True, "HS", 2), (5, 240, 40, True, "HS", 1), (5, 240, 40, True, "HS", 1),
        (5, 120, 48, True, "HS", 1), (5, 144, 48, True, "HS", 1), (5, 288, 96, True, "HS", 2),
        (5, 576, 96, True, "HS", 1), (5, 576, 96, True, "HS", 1),
    ],
    # the head of MobileNetV3-Small with a short tail: small eyes need few stages, every
    # parameter that carries an eligibility trace shrinks the bounded step, and the last
    # stage keeps stride 1 so a flattened map still says where things are (3x4 at 24x32)
    "compact": [
        (3, 16, 16, True, "RE", 2), (3, 72, 24, False, "RE", 2), (5, 96, 40, True, "HS", 1),
    ],
}
LAST_CONV = {"large": 960, "small": 576, "compact": 96}


def make_divisible(v: float, divisor: int = 8) -> int:
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    if new < 0.9 * v:
        new += divisor
    return new
