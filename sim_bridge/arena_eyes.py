"""The arena's eyes: two pinhole cameras a baseline apart, rendered by casting one ray per pixel column.

Walls, pillars, food and hazards are vertical boxes and cylinders on a flat floor, so one ray per column finds
what each column sees and its distance; each pixel row then knows whether it falls on that thing, on the floor
or on the sky. Distance darkens what is seen; each wall side has its own shade. Stereo disparity and distance
shading are real, so two eyes tell more than one.

Speed (issue 21): a column's ray meets only a few things (the wall and, typically, one or two more), so the
per-pixel work is done over those K nearest things only, and colour and shade (which depend on the thing and
its distance, not on the row) are computed once per column and thing, then looked up per pixel. The images
are bit for bit those of the first, all-pairs renderer (tests/arena_eyes_reference.py, test_arena.py).
"""
from __future__ import annotations

import math

import numpy as np


class RayEyes:
    """Rendering for one ArenaConfig (eye size, field of view, colours): rays and backdrop are prepared once."""

    def __init__(self, cfg):
        self.cfg = c = cfg
        W, H = c.eye_w, c.eye_h
        fov = math.radians(c.fov_deg)
        # column i looks at angle offset +fov/2 (left) ... -fov/2 (right), on a flat image plane
        fx = (W / 2) / math.tan(fov / 2)
        xs = (np.arange(W) + 0.5 - W / 2) / fx
        self._ray_off = -np.arctan(xs)  # (W,)
        self._cos_off = np.cos(self._ray_off)
        self._fy = (H / 2) / math.tan(math.radians(c.vfov_deg) / 2)
        self._rows = (np.arange(H) + 0.5)[:, None]  # (H,1)
        # floor/sky backdrop with distance shading on the floor
        img = np.empty((H, W, 3), np.float32)
        horizon = H / 2
        for y in range(H):
            yc = y + 0.5
            if yc < horizon:
                img[y] = np.array(c.sky_color, np.float32)
            else:
                dist = c.cam_height * self._fy / max(yc - horizon, 1e-3)
                img[y] = np.array(c.floor_color, np.float32) * self._shade(dist)
        self._backdrop = img
        self._backdrop_u8 = np.clip(img, 0, 255).astype(np.uint8).reshape(H * W, 3)  # the palette's first H*W
        self._sky_idx = np.broadcast_to(np.arange(H * W, dtype=np.int32).reshape(H, W)[None], (2, H, W))
        self._col_rows = np.arange(2 * W)[:, None]
        self._col_base = (np.arange(2, dtype=np.int32)[:, None] * W + np.arange(W, dtype=np.int32)[None, :])[:, None, :]  # (eye, 1, column)
        wall_tint = np.array([[1.0], [0.85], [0.7], [0.55]], np.float32)  # a different shade per wall side
        self._wall_cols = np.array(c.wall_color, np.float32)[None, :] * wall_tint  # (4,3)
        self._things = None

    @staticmethod
    def _shade(dist):
        return 1.0 / (1.0 + 0.12 * np.asarray(dist))

    def _thing_table(self, n_food: int, n_hazards: int, n_obstacles: int):
        """Squared radius, height above the eyes and colour of every thing (index 0 is the wall)."""
        key = (n_food, n_hazards, n_obstacles)
        if self._things is None or self._things[0] != key:
            c = self.cfg
            r = np.repeat([c.food_radius, c.hazard_radius, c.obstacle_radius], key)
            h = np.repeat([c.wall_height, c.food_height, c.hazard_height, c.obstacle_height], (1,) + key)
            col = np.repeat(np.array([(0, 0, 0), c.food_color, c.hazard_color, c.obstacle_color], np.float32), (1,) + key, 0)
            self._things = (key, r**2, h - c.cam_height, col)
        return self._things[1:]

    def render(self, pos, heading, food, hazards, obstacles) -> tuple[np.ndarray, np.ndarray]:
        """Left and right eye (uint8 RGB) of a robot at `pos` facing `heading`, among these round things."""
        c = self.cfg
        H, W = c.eye_h, c.eye_w
        r2, h_rel, colors = self._thing_table(len(food), len(hazards), len(obstacles))
        px, py = float(pos[0]), float(pos[1])
        ox, oy = (-math.sin(heading) * c.eye_baseline) / 2, (math.cos(heading) * c.eye_baseline) / 2
        ex = np.array([[px + ox], [px - ox]])  # (2,1): left eye, right eye
        ey = np.array([[py + oy], [py - oy]])
        ang = heading + self._ray_off
        dx, dy = np.cos(ang), np.sin(ang)  # (W,)
        # walls: distance along each ray to the box
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = (np.where(dx > 0, c.size, 0.0) - ex) / dx  # (2,W)
            ty = (np.where(dy > 0, c.size, 0.0) - ey) / dy
        tx[~(tx >= 0)] = np.inf  # behind the eye, or NaN: that wall is not seen
        ty[~(ty >= 0)] = np.inf
        t_wall = np.minimum(tx, ty)
        wall_id = np.where(tx < ty, (dx > 0).astype(np.intp), 2 + (dy > 0))
        # round things: food, hazards, obstacles; ray-circle intersection
        centers = np.concatenate([food, hazards, obstacles]).reshape(-1, 2)
        ocx, ocy = ex - centers[:, 0], ey - centers[:, 1]  # (2,N)
        b = dx[:, None] * ocx[:, None, :]
        b += dy[:, None] * ocy[:, None, :]  # (2,W,N)
        disc = b * b
        disc -= (ocx * ocx + ocy * ocy - r2)[:, None, :]
        sq = np.sqrt(np.maximum(disc, 0.0))
        t = -b - sq
        t = np.where(t > 0, t, np.where(-b + sq > 0, 1e-3, np.inf))  # an eye inside a thing sees it at once
        t[disc < 0] = np.inf
        dist = np.concatenate([t_wall[:, :, None], t], -1)  # (2,W,N+1), thing 0 is the wall
        # only what a column's ray meets can be seen in it: keep the K nearest, nearest first
        order = np.argsort(dist, axis=-1, kind="stable")  # ties: the lower index, as an argmin would
        d = dist.reshape(2 * W, -1)[self._col_rows, order.reshape(2 * W, -1)].reshape(order.shape)
        K = max(int(np.count_nonzero(d.reshape(2 * W, -1).min(0) < np.inf)), 1)
        order, d = order[..., :K], d[..., :K]
        unseen = ~(d < np.inf)
        perp = np.maximum(d * self._cos_off[None, :, None], 1e-3)
        horizon = H / 2
        top = horizon - self._fy * h_rel[order] / perp
        bot = horizon + self._fy * c.cam_height / perp
        bot[unseen] = -np.inf
        # palette: the backdrop's pixels, then one colour per (eye, column, k); each pixel picks one entry
        idx = self._sky_idx.copy()
        base = H * W + self._col_base * K
        rows = self._rows
        for k in range(K - 1, -1, -1):  # far to near, so the nearest thing covering a pixel is painted last
            np.copyto(idx, base + k, where=(rows >= top[:, None, :, k]) & (rows < bot[:, None, :, k]))
        # the wall's colour depends on which side a column sees: walls are things N+1..N+4 of the colour table
        what = np.where(order == 0, len(colors) + wall_id[..., None], order)
        d[unseen] = 0.0
        col = np.concatenate([colors, self._wall_cols])[what] * self._shade(d)[..., None]  # float64, as always
        pal = np.concatenate([self._backdrop_u8, np.clip(col, 0, 255).astype(np.uint8).reshape(-1, 3)])
        img = np.take(pal, idx, axis=0)  # (2,H,W,3)
        return img[0], img[1]
