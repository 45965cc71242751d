import gymnasium as gym
import numpy as np
from gymnasium.utils.env_checker import check_env

import sim_bridge  # noqa: F401  (registers EdgeArena-v0)


def test_check_env_passes():
    env = gym.make("EdgeArena-v0")
    check_env(env.unwrapped, skip_render_check=True)
    env.close()


def test_reward_is_always_zero_and_death_terminates():
    env = gym.make("EdgeArena-v0").unwrapped
    obs, info = env.reset(seed=4)
    assert set(obs) == {"left", "right", "touch", "body"}
    terminated = False
    n = 0
    while not terminated:
        obs, r, terminated, truncated, info = env.step(np.array([1, 1]))
        assert r == 0.0 and not truncated
        n += 1
    assert obs["body"][0] == 0.0 and n < 2000


def test_same_seed_same_observations():
    e1, e2 = gym.make("EdgeArena-v0").unwrapped, gym.make("EdgeArena-v0").unwrapped
    o1, _ = e1.reset(seed=9)
    o2, _ = e2.reset(seed=9)
    for _ in range(20):
        o1, *_ = e1.step(np.array([2, 0]))
        o2, *_ = e2.step(np.array([2, 0]))
    assert np.array_equal(o1["left"], o2["left"]) and np.array_equal(o1["body"], o2["body"])
