"""Gymnasium envs as bodies: eyes from images, vectors to touch, termination = death, truncation != death."""
import json

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from sim_bridge.gym_body import GymBody, GymBodyError


class Corridor(gym.Env):
    """A tiny env: a channel-first grey image, a vector, an hp key; action 0 ends it (terminated), 10 steps truncate."""

    def __init__(self, dict_obs=True):
        self.dict_obs = dict_obs
        img = spaces.Box(0, 255, (1, 20, 30), np.uint8)
        self.observation_space = spaces.Dict({"cam": img, "vel": spaces.Box(-5, 5, (2,), np.float32),
                                              "hp": spaces.Box(0, 1, (1,), np.float32),
                                              "room": spaces.Discrete(3)}) if dict_obs else img
        self.action_space = spaces.Discrete(3)
        self.t = 0
        self.episodes = 0

    def _obs(self):
        im = np.full((1, 20, 30), 10 * self.t, np.uint8)
        im[0, :10] = 200  # top half bright
        if not self.dict_obs:
            return im
        return {"cam": im, "vel": np.array([self.t, -1], np.float32), "hp": np.array([1 - 0.1 * self.t], np.float32),
                "room": self.t % 3}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        self.episodes += 1
        return self._obs(), {"episode_reward": 5.0, "note": "hi"}

    def step(self, a):
        self.t += 1
        return self._obs(), 77.0, int(a) == 0, self.t >= 10, {"reward_parts": [1, 2], "t": self.t}


def test_image_vector_and_scalars_map_onto_the_body():
    b = GymBody(Corridor(), eye_shape=(24, 32))
    assert b.spec.eye_shape == (24, 32) and dict(b.spec.action_heads) == {"action": 3}
    assert b.spec.touch_channels == 2 + 3  # vel + one-hot room
    s = b.reset(seed=1)
    assert s.left.shape == (24, 32, 3) and s.left.dtype == np.uint8 and s.left is s.right  # one image feeds both eyes
    assert s.left[0, 0].tolist() == [200, 200, 200] and s.left[-1, 0].tolist() == [0, 0, 0]  # CHW grey -> HWC RGB
    s = b.act({"action": 1})
    assert s.touch.tolist() == [0.0, 1.0, 0.0, 1.0, -1.0]  # sorted keys: room one-hot, then vel and s.hp == pytest.approx(0.9) and s.energy == 1.0
    assert not hasattr(s, "reward") and s.extra == {"t": 1}  # the score and score-like info stay behind


def test_termination_is_death_truncation_is_not():
    env = Corridor()
    b = GymBody(env)
    b.reset()
    for _ in range(9):
        s = b.act({"action": 2})
        assert not s.dead
    s = b.act({"action": 2})  # step 10: the time limit cuts the episode
    assert not s.dead and s.extra.get("truncated") and env.episodes == 2 and env.t == 0 and b.counters["truncations"] == 1
    s = b.act({"action": 0})
    assert s.dead
    with pytest.raises(RuntimeError, match="dead body"):
        b.act({"action": 1})
    s = b.respawn()
    assert not s.dead and env.episodes == 3


def test_edge_arena_env_through_the_adapter():
    b = GymBody.make("EdgeArena-v0")
    with b:
        assert b.spec.eye_shape == (48, 64) and b.spec.touch_channels == 8
        assert list(b.spec.action_heads.values()) == [3, 3]
        s = b.reset(seed=0)
        assert s.left.std() > 5 and not np.array_equal(s.left, s.right)  # two real eyes, not one copied
        for _ in range(5):
            s = b.act((2, 1))
        assert s.energy < 1.0  # energy read from the env's [hp, energy] body vector
        assert s.frame_id == 6


def test_vector_only_env_gets_black_eyes_and_box_actions_are_discretised():
    b = GymBody.make("Pendulum-v1")
    s = b.reset(seed=0)
    assert s.left.shape == (48, 64, 3) and not s.left.any() and s.touch.shape == (3,)
    assert dict(b.spec.action_heads) == {"a0": 3}
    assert b._to_env_action({"a0": 0})[0] == pytest.approx(-2.0) and b._to_env_action({"a0": 2})[0] == pytest.approx(2.0)
    b.close()


def test_unsupported_action_space_is_a_clear_error():
    class Bad(Corridor):
        def __init__(self):
            super().__init__(dict_obs=False)
            self.action_space = spaces.Box(-np.inf, np.inf, (2,))

    with pytest.raises(GymBodyError, match="action space"):
        GymBody(Bad())


def test_cli_runs_a_gym_env(tmp_path, capsys):
    from edge_runtime.cli import main

    run = tmp_path / "run"
    assert main(["run", "--body", "gym:EdgeArena-v0", "--steps", "12", "--no-progress", "--run-dir", str(run)]) == 0
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 12
    assert json.loads((run / "body_spec.json").read_text())["name"] == "GymBody(EdgeArena-v0)"
    capsys.readouterr()
    assert main(["run", "--body", "gym:NoSuchEnv-v9", "--steps", "3", "--no-progress", "--run-dir", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "NoSuchEnv-v9" in err[0]


class Lives(gym.Env):
    """An ALE-like game: an image, info["lives"] counting down one a step from 3; game over terminates."""

    observation_space = spaces.Box(0, 255, (16, 16, 3), np.uint8)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        self.lives = 3
        return np.zeros((16, 16, 3), np.uint8), {"lives": self.lives}

    def step(self, a):
        self.lives -= 1
        return np.zeros((16, 16, 3), np.uint8), 1.0, self.lives == 0, False, {"lives": self.lives}


def test_an_ale_style_lives_count_is_felt_as_hp():
    b = GymBody(Lives())
    assert b.reset().hp == 1.0
    s1, s2, s3 = (b.act({"action": 0}) for _ in range(3))
    assert (s1.hp, s2.hp, s3.hp) == (pytest.approx(2 / 3), pytest.approx(1 / 3), 0.0)
    assert not s2.dead and s3.dead
    assert b.respawn().hp == 1.0
