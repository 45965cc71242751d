import math

import numpy as np
import pytest

from edge_runtime.body import Sense
from sim_bridge.arena import Arena, ArenaConfig
from tests.conftest import empty_arena

STOP, FWD = (1, 1), (2, 1)


def test_reset_returns_live_body_with_eyes():
    a = Arena()
    s = a.reset(seed=3)
    assert isinstance(s, Sense) and not s.dead
    assert s.left.shape == (48, 64, 3) and s.left.dtype == np.uint8
    assert s.right.shape == s.left.shape
    assert s.touch.shape == (8,) and s.touch.dtype == np.float32
    assert s.hp == 1.0 and s.energy == 1.0


def test_energy_drains_faster_when_driving():
    a = empty_arena()
    s = a.act(STOP)
    still = 1.0 - s.energy
    a2 = empty_arena()
    s2 = a2.act(FWD)
    moving = 1.0 - s2.energy
    assert still == pytest.approx(a.cfg.energy_drain)
    assert moving == pytest.approx(a.cfg.energy_drain * (1 + a.cfg.drive_cost))


def test_starving_drains_hp_then_death():
    a = empty_arena()
    a.energy = 0.0
    s = a.act(STOP)
    assert s.hp == pytest.approx(1.0 - a.cfg.starve_rate)
    a.hp = a.cfg.starve_rate / 2
    s = a.act(STOP)
    assert s.dead and s.hp == 0.0
    with pytest.raises(RuntimeError, match="dead"):
        a.act(STOP)


def test_stationary_body_starves_within_a_few_hundred_steps():
    a = empty_arena()
    n = 0
    s = None
    while s is None or not s.dead:
        s = a.act(STOP)
        n += 1
    expected = round(1 / a.cfg.energy_drain) + round(1 / a.cfg.starve_rate)
    assert abs(n - expected) <= 2


def test_food_restores_energy_is_consumed_and_respawns():
    a = empty_arena(n_touch=8)
    a.food = np.array([[5.0 + a.cfg.robot_radius + a.cfg.food_radius + 0.05, 5.0]])
    a.energy = 0.5
    s = a.act(FWD)
    assert s.energy == pytest.approx(0.5 + a.cfg.food_energy - a.cfg.energy_drain * (1 + a.cfg.drive_cost))
    assert a.counters["food"] == 1
    assert np.hypot(*(a.food[0] - a.pos)) > a.cfg.robot_radius + a.cfg.food_radius  # grew back elsewhere


def test_hazard_hurts_once_per_contact_and_pushes_out():
    a = empty_arena()
    a.hazards = np.array([[5.0 + a.cfg.robot_radius + a.cfg.hazard_radius + 0.05, 5.0]])
    a.hazard_vel = np.zeros((1, 2))
    a._in_hazard = np.zeros(1, bool)
    s = a.act(FWD)
    regen = a.cfg.regen_rate  # energy is high, so HP also regrows a little each step
    assert s.hp == pytest.approx(1.0 - a.cfg.hazard_damage + regen)
    assert np.hypot(*(a.pos - a.hazards[0])) >= a.cfg.robot_radius + a.cfg.hazard_radius
    s = a.act(STOP)  # still next to it: no second hit
    assert s.hp == pytest.approx(1.0 - a.cfg.hazard_damage + 2 * regen)
    assert a.counters["hazard_hits"] == 1


def test_walls_stop_the_robot_and_hard_bumps_cost_hp():
    a = empty_arena()
    a.pos = np.array([a.cfg.size - a.cfg.robot_radius - 0.01, 5.0])
    s = a.act(FWD)
    assert a.pos[0] <= a.cfg.size - a.cfg.robot_radius + 1e-9
    assert s.hp < 1.0 and a.counters["bumps"] == 1


def test_touch_feels_the_side_of_contact():
    a = empty_arena()
    a.pos = np.array([a.cfg.robot_radius + 0.02, 5.0])  # wall on the left of the world
    a.heading = 0.0  # facing +x: the wall is behind
    s = a.act(STOP)
    back = a.cfg.n_touch // 2
    assert s.touch[back] > 0.5
    assert s.touch[0] == 0.0


def test_respawn_brings_back_only_the_body():
    a = Arena()
    a.reset(seed=5)
    food, obstacles = a.food.copy(), a.obstacles.copy()
    a.hp = 0.001
    a.energy = 0.0
    s = a.act((1, 1))
    assert s.dead
    s = a.respawn()
    assert not s.dead and s.hp == 1.0 and s.energy == 1.0
    np.testing.assert_array_equal(a.obstacles, obstacles)
    np.testing.assert_array_equal(a.food, food)


def test_deterministic_under_a_seed():
    def trace(seed):
        a = Arena()
        s = a.reset(seed=seed)
        rng = np.random.default_rng(0)
        out = [s.left.copy()]
        for _ in range(60):
            s = a.respawn() if s.dead else a.act((int(rng.integers(3)), int(rng.integers(3))))
            out.append(np.concatenate([s.left.ravel(), s.right.ravel(), (s.touch * 255).astype(np.uint8), [int(s.hp * 1e4) % 256]]))
        return out

    t1, t2, t3 = trace(11), trace(11), trace(12)
    assert all(np.array_equal(x, y) for x, y in zip(t1, t2))
    assert not all(np.array_equal(x, y) for x, y in zip(t1, t3))


def _food_column(img, color):
    img = img.astype(int)
    mask = (img[..., 1] > img[..., 0] + 40) & (img[..., 1] > img[..., 2] + 40)  # green-dominant: food
    cols = np.nonzero(mask.any(0))[0]
    assert len(cols), "food not visible"
    return cols.mean()


def test_stereo_disparity_is_real_near_shifts_more_than_far():
    def disparity(dist):
        a = empty_arena(eye_w=128, eye_h=64)
        a.food = np.array([[5.0 + dist, 5.0]])
        s = a.act((1, 1))
        # the left eye sits to the left, so the object appears further right in it
        return _food_column(s.left, a.cfg.food_color) - _food_column(s.right, a.cfg.food_color)

    near, far = disparity(1.0), disparity(4.0)
    assert near > 0 and far >= 0
    assert near > far + 1.0


def test_nearer_things_look_bigger_and_brighter():
    def view(dist):
        a = empty_arena()
        a.food = np.array([[5.0 + dist, 5.0]])
        s = a.act((1, 1))
        green = (s.left[..., 1].astype(int) - s.left[..., 0]) > 60
        return green.sum(), s.left[green][:, 1].mean()

    (n1, b1), (n2, b2) = view(1.0), view(3.0)
    assert n1 > n2 and b1 > b2


def test_eyes_change_as_the_robot_turns():
    a = Arena()
    s = a.reset(seed=2)
    before = s.left.copy()
    s = a.act((1, 0))
    assert not np.array_equal(before, s.left)


def test_bad_arena_config_names_the_field():
    from edge_runtime.config import ConfigError

    with pytest.raises(ConfigError, match="arena.moving_hazards"):
        ArenaConfig(n_hazards=1, moving_hazards=3)
    with pytest.raises(ConfigError, match="arena.food_color"):
        ArenaConfig(food_color=(0, 0, 300))


def test_close_is_idempotent_and_context_manager():
    with Arena() as a:
        a.reset(seed=0)
    a.close()
    a.close()
    with pytest.raises(RuntimeError, match="closed"):
        a.act((1, 1))
