"""The built-in arena: a continuous 2-D world seen through two ray-cast eyes.

A round differential-drive robot lives in a walled square with food (restores
energy, is consumed and respawns), hazards (hurt on contact; some drift), and
pillars (hard obstacles). Energy drains every step, faster when driving; at
zero energy HP drains; HP 0 is death. Two eyes a baseline apart render
first-person RGB by casting one ray per pixel column, so stereo disparity and
distance shading are real. A ring of touch sensors feels nearby surfaces.

Nothing here tells the brain what a colour means.
"""
from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass

import numpy as np

from edge_runtime.body import (DRIVE, DRIVE_TURN_HEADS, TURN, Action, Body, BodySpec, Changeable, MotorControl, Restorable,
                               Sense)
from edge_runtime.config import check

from .arena_eyes import RayEyes

_WALL_DIRS = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])  # outward normals of x=0, x=size, y=0, y=size
ACTION_HEADS = DRIVE_TURN_HEADS  # drive: back/stop/forward; turn: left/none/right (edge_runtime.body)


@dataclass
class ArenaConfig:
    size: float = 10.0
    eye_w: int = 64
    eye_h: int = 48
    fov_deg: float = 120.0
    vfov_deg: float = 90.0
    eye_baseline: float = 0.15
    cam_height: float = 0.3
    robot_radius: float = 0.25
    n_food: int = 6
    food_radius: float = 0.25
    food_height: float = 0.4
    food_energy: float = 0.3
    n_hazards: int = 4
    moving_hazards: int = 2
    hazard_radius: float = 0.3
    hazard_height: float = 0.6
    hazard_speed: float = 0.02
    hazard_damage: float = 0.25
    n_obstacles: int = 3
    obstacle_radius: float = 0.5
    obstacle_height: float = 1.2
    wall_height: float = 0.8
    forward_speed: float = 0.2
    back_speed: float = 0.05
    turn_rate_deg: float = 12.0
    energy_drain: float = 1.0 / 400.0
    drive_cost: float = 0.1  # extra drain fraction while driving
    starve_rate: float = 1.0 / 100.0  # HP lost per step at zero energy
    regen_rate: float = 1.0 / 1000.0  # HP regained per step while energy is above regen_above
    regen_above: float = 0.5
    collision_damage: float = 0.01
    n_touch: int = 8
    touch_range: float = 0.2
    control_hz: float = 10.0
    decision_steps: int = 4  # body steps per decision the arena is made for (its spec's action_repeat)
    food_color: tuple[int, int, int] = (60, 200, 60)
    hazard_color: tuple[int, int, int] = (220, 50, 40)
    obstacle_color: tuple[int, int, int] = (70, 90, 200)
    wall_color: tuple[int, int, int] = (150, 150, 150)
    floor_color: tuple[int, int, int] = (90, 75, 60)
    sky_color: tuple[int, int, int] = (170, 200, 230)

    def __post_init__(self):
        w = "arena"
        check(self.size >= 3.0, f"{w}.size", f"must be >= 3, got {self.size}")
        check(self.eye_w >= 16 and self.eye_h >= 16, f"{w}.eye_w", "eye_w and eye_h must be >= 16")
        check(10 <= self.fov_deg <= 170, f"{w}.fov_deg", "must be in [10, 170]")
        check(10 <= self.vfov_deg <= 170, f"{w}.vfov_deg", "must be in [10, 170]")
        check(0 <= self.eye_baseline < 2 * self.robot_radius, f"{w}.eye_baseline", "must be in [0, robot diameter)")
        for name in ("n_food", "n_hazards", "n_obstacles", "moving_hazards", "n_touch"):
            check(getattr(self, name) >= 0, f"{w}.{name}", "must be >= 0")
        check(self.decision_steps >= 1, f"{w}.decision_steps", "must be >= 1")
        check(self.moving_hazards <= self.n_hazards, f"{w}.moving_hazards", "must be <= n_hazards")
        for name in ("robot_radius", "food_radius", "hazard_radius", "obstacle_radius", "forward_speed", "energy_drain", "control_hz"):
            check(getattr(self, name) > 0, f"{w}.{name}", "must be > 0")
        for name in ("food_color", "hazard_color", "obstacle_color", "wall_color", "floor_color", "sky_color"):
            c = tuple(int(x) for x in getattr(self, name))
            check(len(c) == 3 and all(0 <= x <= 255 for x in c), f"{w}.{name}", "must be three integers 0..255")
            setattr(self, name, c)
        free = self.size**2 - self.n_obstacles * math.pi * (self.obstacle_radius + self.robot_radius) ** 2
        check(free > 0.3 * self.size**2, f"{w}.n_obstacles", "obstacles leave too little free space")


def _halve(c):
    return tuple(int(x) // 2 for x in c)


# What `bench adapt` can do to the world, by name: each maps the arena's config to the changed one.
WORLD_CHANGES = {
    # what looked like food now hurts, and the other way round
    "swap-colours": lambda c: dataclasses.replace(c, food_color=c.hazard_color, hazard_color=c.food_color),
    # drifting hazards move 3x faster
    "fast-hazards": lambda c: dataclasses.replace(c, hazard_speed=c.hazard_speed * 3),
    # floor, walls and sky darker by half
    "dark": lambda c: dataclasses.replace(c, floor_color=_halve(c.floor_color), wall_color=_halve(c.wall_color),
                                          sky_color=_halve(c.sky_color)),
}


class ArenaSense(Sense):
    """A Sense whose eye images are rendered on first access."""

    def __init__(self, render, **kw):
        self._render = render
        self._eyes = None
        super().__init__(left=None, right=None, **kw)

    def _look(self):
        if self._eyes is None:
            self._eyes = self._render()
        return self._eyes

    left = property(lambda self: self._look()[0], lambda self, v: None)
    right = property(lambda self: self._look()[1], lambda self, v: None)


class Arena(Body, MotorControl, Restorable, Changeable):
    """The built-in world and the one robot living in it (the default body of `--sim`)."""

    def __init__(self, config: ArenaConfig | None = None):
        self.cfg = config or ArenaConfig()
        c = self.cfg
        self.spec = BodySpec(
            eye_shape=(c.eye_h, c.eye_w), touch_channels=c.n_touch, action_heads=ACTION_HEADS,
            control_hz=c.control_hz, name="Arena", still=(1, 1), action_repeat=c.decision_steps,
        )
        self.rng = np.random.default_rng()
        self._closed = False
        self._counters = {"food": 0, "hazard_hits": 0, "bumps": 0}
        self._frame = 0
        self._eyes = None  # RayEyes, made on the first look
        self._radii_key = None  # counts _radii was made for
        self._seeded = False

    # ---------------------------------------------------------------- lifecycle
    def reset(self, seed: int | None = None) -> Sense:
        """Reset the whole world (for evaluation from a seed, or the first start)."""
        self._check_open()
        if seed is not None or not self._seeded:
            self.rng = np.random.default_rng(seed)
            self._seeded = True
        c = self.cfg
        self.obstacles = np.zeros((0, 2))
        self.hazards = np.zeros((0, 2))
        self.food = np.zeros((0, 2))
        for _ in range(c.n_obstacles):
            self.obstacles = np.concatenate([self.obstacles, self._free_point(c.obstacle_radius + c.robot_radius * 2.5)[None]])
        self.hazards = np.zeros((0, 2))
        self.food = np.zeros((0, 2))
        for _ in range(c.n_hazards):
            self.hazards = np.concatenate([self.hazards, self._free_point(c.hazard_radius + c.robot_radius)[None]])
        ang = self.rng.uniform(0, 2 * math.pi, c.n_hazards)
        self.hazard_vel = np.stack([np.cos(ang), np.sin(ang)], 1) * c.hazard_speed
        self.hazard_vel[c.moving_hazards:] = 0.0
        for _ in range(c.n_food):
            self.food = np.concatenate([self.food, self._free_point(c.food_radius + 0.1)[None]])
        self._frame = 0
        self._place_robot()
        return self._sense()

    def respawn(self) -> Sense:
        """Only the robot comes back; food, hazards and obstacles stay where the world has them."""
        self._check_open()
        self._place_robot()
        return self._sense()

    def close(self) -> None:
        self._closed = True

    @property
    def counters(self) -> dict:
        """This life's events: food eaten, hazard hits, bumps."""
        return dict(self._counters)

    # -- Changeable: the world changes under the brain's feet (bench adapt)
    world_changes = tuple(WORLD_CHANGES)

    def change_world(self, name: str) -> None:
        if name not in WORLD_CHANGES:
            raise ValueError(f"Arena: no world change {name!r} (known: {', '.join(WORLD_CHANGES)})")
        self.cfg = WORLD_CHANGES[name](self.cfg)

    # -- Restorable: the whole world, bit for bit (a resumed run goes on exactly as an uninterrupted one)
    def checkpoint_state(self) -> dict:
        return {"rng": json.dumps(self.rng.bit_generator.state), "rng_name": type(self.rng.bit_generator).__name__,
                "pos": self.pos.tolist(), "heading": float(self.heading), "food": self.food.tolist(),
                "hazards": self.hazards.tolist(), "hazard_vel": self.hazard_vel.tolist(),
                "obstacles": self.obstacles.tolist(), "hp": float(self.hp), "energy": float(self.energy),
                "in_hazard": [bool(x) for x in self._in_hazard], "frame": int(self._frame),
                "counters": json.dumps(self._counters)}

    def load_checkpoint_state(self, st: dict) -> Sense:
        self._check_open()
        if type(self.rng.bit_generator).__name__ != st["rng_name"]:
            self.rng = np.random.Generator(getattr(np.random, st["rng_name"])())
        self.rng.bit_generator.state = json.loads(st["rng"])
        self._seeded = True

        def plain(x):  # lists (this format) or tensors (checkpoints written before it)
            return x.tolist() if hasattr(x, "tolist") else x

        def f64(x, cols=None):
            a = np.array(plain(x), dtype=np.float64)
            return a.reshape(-1, cols) if cols else a
        self.pos, self.heading = f64(st["pos"]), float(st["heading"])
        self.food, self.hazards, self.obstacles = f64(st["food"], 2), f64(st["hazards"], 2), f64(st["obstacles"], 2)
        self.hazard_vel, self.hp, self.energy = f64(st["hazard_vel"], 2), float(st["hp"]), float(st["energy"])
        self._in_hazard, self._frame = np.array(plain(st["in_hazard"]), dtype=bool), int(st["frame"])
        self.dead = self.hp <= 0.0
        self._counters = json.loads(st["counters"])
        return self._sense()

    def _check_open(self):
        if self._closed:
            raise RuntimeError("Arena: body is closed")

    def _place_robot(self):
        c = self.cfg
        self.pos = self._free_point(c.robot_radius + 0.3, avoid_hazards_margin=1.0)
        self.heading = float(self.rng.uniform(-math.pi, math.pi))
        self.hp = 1.0
        self.energy = 1.0
        self.dead = False
        self._in_hazard = np.zeros(c.n_hazards, dtype=bool)
        self._counters = {k: 0 for k in self._counters}  # per life

    def _free_point(self, clearance: float, avoid_hazards_margin: float = 0.0, avoid_robot: bool = False) -> np.ndarray:
        c = self.cfg
        for _ in range(10_000):
            p = self.rng.uniform(clearance, c.size - clearance, 2)
            ok = True
            for arr, rad, extra in ((self.obstacles, c.obstacle_radius, 0.0), (self.hazards, c.hazard_radius, avoid_hazards_margin), (self.food, c.food_radius, 0.0)):
                finite = arr[np.isfinite(arr[:, 0])] if len(arr) else arr
                if len(finite) and np.min(np.hypot(*(finite - p).T) - rad - extra) < clearance:
                    ok = False
                    break
            if ok and avoid_robot:
                ok = np.hypot(*(self.pos - p)) > c.robot_radius + clearance + 0.5
            if ok:
                return p
        raise RuntimeError("Arena: no free space left to place an object (check arena config counts and sizes)")

    # ---------------------------------------------------------------- dynamics
    def act(self, action: Action) -> Sense:
        self._check_open()
        if self.dead:
            raise RuntimeError("Arena: act() on a dead body; call respawn() or reset()")
        c = self.cfg
        drive_i, turn_i = self.spec.normalize_action(action)
        # console `motors stop` (MotorControl): the robot holds still whatever the brain chooses
        drive, turn = (0.0, 0.0) if self.motors_held else (DRIVE[drive_i], TURN[turn_i])
        self.heading = (self.heading + turn * math.radians(c.turn_rate_deg) + math.pi) % (2 * math.pi) - math.pi
        speed = c.forward_speed if drive > 0 else (c.back_speed if drive < 0 else 0.0)
        v = np.array([math.cos(self.heading), math.sin(self.heading)]) * speed * (1 if drive >= 0 else -1)
        p = self.pos + v
        bumped = False
        r = c.robot_radius
        lo, hi = r, c.size - r
        if not (lo <= p[0] <= hi and lo <= p[1] <= hi):
            p = np.clip(p, lo, hi)
            bumped = True
        if len(self.obstacles):
            d = p - self.obstacles
            dist = np.hypot(d[:, 0], d[:, 1])
            for i in np.nonzero(dist < r + c.obstacle_radius)[0]:
                n = d[i] / max(dist[i], 1e-9)
                p = self.obstacles[i] + n * (r + c.obstacle_radius)
                bumped = True
        self.pos = p
        if bumped and speed > 0:
            self.hp -= c.collision_damage
            self._counters["bumps"] += 1
        self._move_hazards()
        # hazards hurt once per contact, then push the robot out
        if len(self.hazards):
            d = self.pos - self.hazards
            dist = np.hypot(d[:, 0], d[:, 1])
            touching = dist < r + c.hazard_radius
            new_hits = touching & ~self._in_hazard
            if new_hits.any():
                self.hp -= c.hazard_damage * int(new_hits.sum())
                self._counters["hazard_hits"] += int(new_hits.sum())
            for i in np.nonzero(touching)[0]:
                n = d[i] / max(dist[i], 1e-9)
                self.pos = np.clip(self.hazards[i] + n * (r + c.hazard_radius + 0.02), lo, hi)
            self._in_hazard = touching
        # food is eaten on contact and grows back elsewhere
        if len(self.food):
            d = self.food - self.pos
            eaten = np.nonzero(np.hypot(d[:, 0], d[:, 1]) < r + c.food_radius)[0]
            for i in eaten:
                self.energy = min(1.0, self.energy + c.food_energy)
                self._counters["food"] += 1
                self.food[i] = np.inf  # not an obstacle to its own replacement
                self.food[i] = self._free_point(c.food_radius + 0.1, avoid_robot=True)
        drain = c.energy_drain * (1.0 + (c.drive_cost if speed > 0 else 0.0))
        self.energy = max(0.0, self.energy - drain)
        if self.energy <= 0.0:
            self.hp -= c.starve_rate
        elif self.energy > c.regen_above:
            self.hp = min(1.0, self.hp + c.regen_rate)
        self.hp = max(0.0, self.hp)
        self.dead = self.hp <= 0.0
        self._frame += 1
        return self._sense()

    def _move_hazards(self):
        c = self.cfg
        k = c.moving_hazards
        if k == 0:
            return
        vel = self.hazard_vel[:k]  # a view: edits below land in self.hazard_vel
        # a slow random turn keeps drifting hazards from settling into a fixed orbit
        ang = np.arctan2(vel[:, 1], vel[:, 0]) + self.rng.normal(0, 0.05, k)
        vel[:, 0] = np.cos(ang) * c.hazard_speed
        vel[:, 1] = np.sin(ang) * c.hazard_speed
        p = self.hazards[:k] + vel
        rad = c.hazard_radius
        out = (p < rad) | (p > c.size - rad)
        if out.any():
            vel[out] *= -1
            np.clip(p, rad, c.size - rad, out=p)
        obs = self.obstacles
        if len(obs):
            reach = rad + c.obstacle_radius
            # one look at every pair first: a hazard bounces off a pillar rarely, and only then does the
            # order matter (a push off one pillar is seen by the next)
            if (np.abs(p[:, None, :] - obs[None, :, :]).max(-1) < reach).any():
                for j in range(len(obs)):
                    d = p - obs[j]
                    dist = np.hypot(d[:, 0], d[:, 1])
                    hit = dist < reach
                    if hit.any():
                        n = d[hit] / np.maximum(dist[hit], 1e-9)[:, None]
                        p[hit] = obs[j] + n * reach
                        v = vel[hit]
                        vel[hit] = v - 2 * np.sum(v * n, 1, keepdims=True) * n
        self.hazards[:k] = p

    # ---------------------------------------------------------------- senses
    def _touch(self) -> np.ndarray:
        c = self.cfg
        n = c.n_touch
        out = np.zeros(n, dtype=np.float32)
        if n == 0:
            return out
        r = c.robot_radius
        x, y = self.pos
        things = np.concatenate([self.obstacles, self.hazards, self.food])
        d = np.concatenate([things - self.pos, _WALL_DIRS])
        gaps = np.empty(len(d))
        gaps[:len(things)] = np.hypot(d[:len(things), 0], d[:len(things), 1]) - r - self._touch_radii()
        gaps[len(things):] = (x - r, c.size - x - r, y - r, c.size - y - r)
        near = gaps < c.touch_range
        if not near.any():
            return out
        d, g = d[near], gaps[near]
        rel = (np.arctan2(d[:, 1], d[:, 0]) - self.heading) % (2 * math.pi)
        sector = np.round(rel / (2 * math.pi / n)).astype(int) % n
        val = np.clip(1.0 - g / c.touch_range, 0.0, 1.0)
        np.maximum.at(out, sector, val.astype(np.float32))
        return out

    def _touch_radii(self) -> np.ndarray:
        """Radius of every round thing, in _touch's order (obstacles, hazards, food)."""
        key = (len(self.obstacles), len(self.hazards), len(self.food))
        if self._radii_key != key:
            c = self.cfg
            self._radii_key = key
            self._radii = np.repeat([c.obstacle_radius, c.hazard_radius, c.food_radius], key)
        return self._radii

    def render_eyes(self) -> tuple[np.ndarray, np.ndarray]:
        """Both eyes as the robot sees the world now."""
        return self._render_view((self.pos, self.heading, self.food, self.hazards, self.obstacles))

    def _sense(self) -> Sense:
        # the eyes are rendered when first looked at, from the world as it was at this step:
        # inside an action repeat nobody looks at the in-between frames
        view = (self.pos.copy(), self.heading, self.food.copy(), self.hazards.copy(), self.obstacles)
        return ArenaSense(
            lambda: self._render_view(view), touch=self._touch(), hp=float(self.hp), energy=float(self.energy),
            dead=bool(self.dead), t=self._frame / self.cfg.control_hz, frame_id=self._frame,
        )

    def _render_view(self, view):
        if self._eyes is None or self._eyes.cfg is not self.cfg:  # first look, or a world change repainted it
            self._eyes = RayEyes(self.cfg)
        return self._eyes.render(*view)

    # ---------------------------------------------------------------- for the oracle and tests only
    def world_state(self) -> dict:
        return {
            "pos": self.pos.copy(), "heading": self.heading, "food": self.food.copy(),
            "hazards": self.hazards.copy(), "obstacles": self.obstacles.copy(), "hp": self.hp, "energy": self.energy,
        }
