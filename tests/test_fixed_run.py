"""A fixed short run gives bit-identical weights: refactors of the house (bodies, config, modules) must not change
what the brain learns. The hash was recorded at commit 3f4bf94 (before the bad-day and house changes) and still
matched after them, on x86_64 with the pinned CPU torch; other builds round differently, so it runs only there.
These are torch's learner (model.backend = torch); the default config's (auto: the numpy learner) is held at the end."""
import hashlib
import platform

import pytest
import torch

from edge_runtime.config import Config
from edge_runtime.runtime import Runner
from sim_bridge.arena import Arena

RECORDED = "5700d1cce4d564c03f23ed61674c2d9db8e16e05a921b15c2e54800b45d03fdf"
# 500 decisions (issue 21: speed-ups must leave what is learned unchanged), recorded at commit 5b1301b, the
# last one before the speed work; scripts/speed_ab.py prints the same hash for any two commits it compares
RECORDED_500 = "0aec2587dfaadb98137a630c2930ee337b9643d0b65c10eaeaefebc0757474d9"


def _weights_after(steps: int) -> tuple[str, "Runner"]:
    cfg = Config.from_dict({"model": {"backend": "torch"}})
    with Arena(cfg.arena) as body:
        r = Runner(cfg, body, seed=3, progress=False)
        r.run(steps)
    h = hashlib.sha256()
    for k, v in r.rule.brain.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().contiguous().numpy().tobytes())
    return h.hexdigest(), r


@pytest.mark.skipif(not (torch.__version__.startswith("2.13.0") and platform.machine() == "x86_64"),
                    reason="the recorded hash is for torch 2.13.0 on x86_64")
def test_150_steps_give_the_recorded_weights():
    digest, r = _weights_after(150)
    assert (r.rule.steps, len(r.lifespans)) == (150, 1)
    assert digest == RECORDED


@pytest.mark.skipif(not (torch.__version__.startswith("2.13.0") and platform.machine() == "x86_64"),
                    reason="the recorded hash is for torch 2.13.0 on x86_64")
def test_500_steps_give_the_weights_from_before_the_speed_work():
    digest, r = _weights_after(500)
    assert (r.rule.steps, r.lifespans) == (500, [491, 432, 898])  # three lives in, deaths and rollbacks included
    assert digest == RECORDED_500


# The default config's learner (model.backend = auto resolves to numpy): 500 decisions from seed 7, recorded at the
# numpy learner's first commit (56cf787) and unchanged by the speed-ups since. numpy's matrix products come from its
# BLAS, whose kernels (and so their rounding) are chosen per CPU: one recording per machine that ran it.
RECORDED_NUMPY_500 = {"783f1dfdd9bd6049"}


def _blas() -> tuple[str, str]:
    """(numpy's version, its OpenBLAS's kernel architecture) where numpy's BLAS is OpenBLAS."""
    import numpy as np
    from threadpoolctl import threadpool_info

    arch = [i.get("architecture") for i in threadpool_info() if i.get("internal_api") == "openblas"]
    return np.__version__, (arch[0] or "") if arch else ""


# where it was recorded: numpy 2.4.6's OpenBLAS on an AVX2 x86_64 (its core name reads Haswell or Zen there,
# depending on what else the process loaded; the same kernels)
@pytest.mark.skipif(platform.machine() != "x86_64" or _blas()[0] != "2.4.6" or _blas()[1] not in ("Haswell", "Zen"),
                    reason="recorded with numpy 2.4.6's OpenBLAS AVX2 (Haswell/Zen) kernels on x86_64")
def test_the_default_learner_is_numpy_and_its_500_decisions_give_the_recorded_weights():
    import numpy as np

    cfg = Config()
    with Arena(cfg.arena) as body:
        r = Runner(cfg, body, seed=7, progress=False)
        r.run(500)
    assert r.rule.net.name == "numpy"
    h = hashlib.sha256()
    for k, v in sorted(r.rule.brain.state_dict().items()):
        h.update(k.encode())
        h.update(np.ascontiguousarray(v).tobytes())
    h.update(r.rule.z_d.tobytes())
    h.update(r.rule.z_pi.tobytes())
    assert (r.rule.steps, len(r.lifespans), r.rule.rollbacks) == (500, 3, 3)
    assert h.hexdigest()[:16] in RECORDED_NUMPY_500, (
        f"{h.hexdigest()[:16]}: the numpy learner's weights after 500 decisions changed (or this CPU's BLAS rounds "
        "differently: run the commit that recorded it here, and add its digest if it gives this one)")
