import numpy as np
import pytest
import torch

from sim_bridge.arena import Arena, ArenaConfig


@pytest.fixture(autouse=True)
def _one_thread():
    torch.set_num_threads(1)


def empty_arena(**kw) -> Arena:
    """An arena with nothing in it but what a test places."""
    cfg = ArenaConfig(n_food=0, n_hazards=0, moving_hazards=0, n_obstacles=0, **kw)
    a = Arena(cfg)
    a.reset(seed=0)
    a.pos = np.array([5.0, 5.0])
    a.heading = 0.0
    return a
