"""One mapping from simulator observations to a Sense, used by the gymnasium and the Godot bridges alike."""
import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from sim_bridge.godot_layout import AgentLayout
from sim_bridge.godot_protocol import decode_image
from sim_bridge.gym_body import GymBody
from sim_bridge.obs_sense import ObservationError, ObsField, SenseMapper

H, W = 24, 32


def observation(t: int) -> dict:
    rng = np.random.default_rng(t)
    return {"left_2d": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            "right_2d": rng.integers(0, 256, (H, W, 3), dtype=np.uint8),
            "hp": np.array([1.2 - 0.1 * t], np.float32),  # 1.2: clipped to 1
            "energy": np.array([0.5], np.float32),
            "whiskers": np.array([0.1 * t, np.nan, -1.0], np.float32),  # NaN zeroed
            "mode": t % 4}


class Twin(gym.Env):
    """The observation above as a gymnasium env."""

    observation_space = spaces.Dict({
        "left_2d": spaces.Box(0, 255, (H, W, 3), np.uint8), "right_2d": spaces.Box(0, 255, (H, W, 3), np.uint8),
        "hp": spaces.Box(0, 1, (1,), np.float32), "energy": spaces.Box(0, 1, (1,), np.float32),
        "whiskers": spaces.Box(-1, 1, (3,), np.float32), "mode": spaces.Discrete(4)})
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return observation(0), {}

    def step(self, a):
        self.t += 1
        return observation(self.t), 0.0, False, False, {}


# the same observation as a Godot RL Agents world describes it (env_info) and sends it (hex images, lists)
GODOT_SPACE = {"left_2d": {"size": [H, W, 3], "space": "box"}, "right_2d": {"size": [H, W, 3], "space": "box"},
               "hp": {"size": [1], "space": "box"}, "energy": {"size": [1], "space": "box"},
               "whiskers": {"size": [3], "space": "box"}, "mode": {"size": 4, "space": "discrete"}}


def on_the_wire(obs: dict) -> dict:
    return {k: (v.tobytes().hex() if k.endswith("_2d") else (v.tolist() if isinstance(v, np.ndarray) else v))
            for k, v in obs.items()}


def test_gym_and_godot_bridges_map_the_same_observation_to_the_same_sense():
    gym_body = GymBody(Twin())
    lay = AgentLayout.from_spaces(GODOT_SPACE, {"a": {"size": 2, "action_type": "discrete"}}, "G")
    assert isinstance(gym_body.mapper, SenseMapper) and isinstance(lay.mapper, SenseMapper)
    assert gym_body.spec.eye_shape == lay.spec.eye_shape == (H, W)
    assert gym_body.spec.touch_channels == lay.spec.touch_channels == 4 + 3  # mode one-hot, whiskers
    senses = [gym_body.reset()] + [gym_body.act({"action": 0}) for _ in range(3)]
    for t, g in enumerate(senses):
        wire = on_the_wire(observation(t))
        s = lay.mapper.sense(wire, False, t, {}, decode=lambda k, v: decode_image(v, lay.image_shapes[k], None, "G", k))
        assert np.array_equal(g.left, s.left) and np.array_equal(g.right, s.right)
        assert np.array_equal(g.left, observation(t)["left_2d"]) and not np.array_equal(g.left, g.right)
        assert np.allclose(g.touch, s.touch) and g.hp == pytest.approx(s.hp) and g.energy == s.energy == 0.5
        mode = np.eye(4, dtype=np.float32)[t % 4]
        assert np.allclose(s.touch, np.concatenate([mode, [0.1 * t, 0.0, -1.0]]))  # sorted keys: mode, whiskers
        assert s.hp == pytest.approx(min(1.0, 1.2 - 0.1 * t))


def test_body_pair_no_images_and_bad_sizes():
    m = SenseMapper([ObsField("body", "box", 2), ObsField("pos", "box", 2)], name="M")
    assert (m.pair, m.hp, m.energy, m.touch_channels, m.eye_shape) == ("body", None, None, 2, (48, 64))
    s = m.sense({"body": [0.25, -3.0], "pos": [1, 2]}, True, 7, {"x": 1})
    assert (s.hp, s.energy, s.dead, s.frame_id, s.extra) == (0.25, 0.0, True, 7, {"x": 1})
    assert s.left.shape == (48, 64, 3) and s.left.max() == 0  # no images: black eyes
    with pytest.raises(ObservationError, match=r"M: observation 'pos' has 3 values, its space says 2"):
        m.sense({"body": [1, 1], "pos": [1, 2, 3]}, False, 0, {})
    with pytest.raises(ObservationError, match=r"M: observation has no 'pos'"):
        m.sense({"body": [1, 1]}, False, 0, {})
    # an hp key beside a body pair: the named scalar wins and the pair is an ordinary vector
    m2 = SenseMapper([ObsField("body", "box", 2), ObsField("Health", "box", 1)])
    assert m2.hp == "Health" and m2.pair is None and m2.touch_channels == 2
    # no hp or energy at all: the body feels only death
    assert SenseMapper([ObsField(None, "box", 3)]).sense(np.zeros(3), False, 0, {}).hp == 1.0


def test_eyes_by_name_then_sorted_order_and_resized():
    img = lambda v: np.full((20, 30), v, np.uint8)  # noqa: E731  (grey, HxW)
    f = [ObsField(k, "image", image=(20, 30, 1, False)) for k in ("b_2d", "a_2d", "cam_right_2d")]
    m = SenseMapper(f, eye_shape=(10, 15))
    assert (m.left, m.right) == ("a_2d", "cam_right_2d")
    s = m.sense({"a_2d": img(10), "b_2d": img(20), "cam_right_2d": img(30)}, False, 0, {})
    assert s.left.shape == (10, 15, 3) and s.left[0, 0].tolist() == [10] * 3 and s.right[0, 0].tolist() == [30] * 3
