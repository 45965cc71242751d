"""The fast arena renderer and physics (issue 21) against what they replaced.

Rendering: every frame of random lives in several worlds, and the awkward scenes (an eye inside a thing, a
corner, axis-aligned headings, an empty world), bit for bit against the first renderer, kept verbatim in
tests/arena_eyes_reference.py. Physics: the lives' touch, HP, energy and final world state hash to what the
arena before the speed-up gave (recorded by running that code on the same seeds and actions)."""
import hashlib
import json
import math

import numpy as np
import pytest

from sim_bridge.arena import WORLD_CHANGES, Arena, ArenaConfig
from sim_bridge.arena_eyes import RayEyes
from tests.arena_eyes_reference import ReferenceEyes

WORLDS = {
    "default": {},
    "small-eyes": dict(eye_w=32, eye_h=24, fov_deg=90.0, vfov_deg=60.0),
    "crowded": dict(n_food=10, n_hazards=8, moving_hazards=8, hazard_speed=0.08, n_obstacles=6, obstacle_radius=0.4),
    "empty": dict(n_food=0, n_hazards=0, moving_hazards=0, n_obstacles=0),
    "wide-eyes": dict(eye_w=96, eye_h=40, fov_deg=160.0, eye_baseline=0.4),
}


def _views(cfg: ArenaConfig, seed: int, steps: int):
    a = Arena(cfg)
    s = a.reset(seed=seed)
    rng = np.random.default_rng(seed)
    for _ in range(steps):
        s = a.act((int(rng.integers(3)), int(rng.integers(3))))
        if s.dead:
            s = a.respawn()
        yield a.pos.copy(), a.heading, a.food.copy(), a.hazards.copy(), a.obstacles.copy()


def _same(cfg, view):
    fast, ref = RayEyes(cfg).render(*view), ReferenceEyes(cfg).render(*view)
    for f, r in zip(fast, ref):
        assert f.dtype == np.uint8 and f.shape == r.shape
        assert np.array_equal(f, r), f"{int((f != r).any(-1).sum())} pixels differ"


@pytest.mark.parametrize("world", list(WORLDS))
def test_fast_eyes_render_what_the_reference_renders(world):
    cfg = ArenaConfig(**WORLDS[world])
    fast, ref = RayEyes(cfg), ReferenceEyes(cfg)
    n = 0
    for seed in (1, 2):
        for view in _views(cfg, seed, 400):
            for f, r in zip(fast.render(*view), ref.render(*view)):
                assert np.array_equal(f, r), f"{world} seed {seed} frame {n}: {int((f != r).any(-1).sum())} pixels differ"
            n += 1
    assert n == 800


@pytest.mark.parametrize("change", list(WORLD_CHANGES))
def test_changed_worlds_render_as_before(change):
    cfg = WORLD_CHANGES[change](ArenaConfig())
    for view in _views(cfg, 5, 150):
        _same(cfg, view)


def test_awkward_scenes_render_as_before():
    cfg = ArenaConfig()
    food = np.array([[2.0, 2.0], [5.0, 5.1]])
    hazards = np.array([[5.0, 5.0], [8.0, 3.0]])
    obstacles = np.array([[3.0, 7.0]])
    scenes = [((5.0, 5.0), 0.3)]  # both eyes inside a hazard and next to food
    scenes += [((x, y), h) for x, y in ((0.25, 0.25), (9.75, 9.75), (0.25, 9.75)) for h in (0.0, math.pi / 4, -3 * math.pi / 4)]
    scenes += [((4.0, 4.0), h) for h in (0.0, math.pi / 2, math.pi, -math.pi / 2, -math.pi)]  # rays along the axes
    for pos, heading in scenes:
        _same(cfg, (np.array(pos), heading, food, hazards, obstacles))
        _same(cfg, (np.array(pos), heading, np.zeros((0, 2)), np.zeros((0, 2)), np.zeros((0, 2))))


# sha256 (first 16 hex) of every step's touch, HP and energy and the final world state, recorded with the arena
# as it was before the speed-up (commit 5b1301b), on these seeds and this action stream. numpy's float64
# sin, cos and arctan2 over arrays take a SIMD path that depends on the CPU (and numpy's build), so the last
# bits, and the digest, differ between machines: each digest here was recorded by running 5b1301b's arena on
# that machine (the first on an earlier session's machine; the second with numpy 2.4.6 on an AVX2 machine,
# where 5b1301b and the sped-up arena give the same digest, with or without AVX2). A change to the physics
# gives a digest that is neither.
RECORDED_PHYSICS = {
    "default": ({}, 1, {"992340c39a3b7c10", "63ab6bf59ed8dc75"}),
    "crowded": (dict(n_hazards=6, moving_hazards=6, hazard_speed=0.08, n_obstacles=5), 2,
                {"3a1aad9e8e3b2821", "aed67c7d7fd29755"}),
}


@pytest.mark.parametrize("world", list(RECORDED_PHYSICS))
def test_physics_as_before_the_speed_up(world):
    kw, seed, recorded = RECORDED_PHYSICS[world]
    a = Arena(ArenaConfig(**kw))
    s = a.reset(seed=seed)
    rng = np.random.default_rng(seed)
    h = hashlib.sha256()
    for _ in range(3000):
        s = a.act((int(rng.integers(3)), int(rng.integers(3))))
        h.update(s.touch.tobytes())
        h.update(np.float64([s.hp, s.energy]).tobytes())
        if s.dead:
            s = a.respawn()
    h.update(json.dumps(a.checkpoint_state(), sort_keys=True).encode())
    assert h.hexdigest()[:16] in recorded
