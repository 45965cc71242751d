"""The arena's first renderer, kept as the reference the fast one (sim_bridge/arena_eyes.py) is checked against.

The arena's eyes: two pinhole cameras a baseline apart, rendered by casting one ray per pixel column.

Walls, pillars, food and hazards are vertical boxes and cylinders on a flat floor, so one ray per column finds
what each column sees and its distance; each pixel row then knows whether it falls on that thing, on the floor
or on the sky. Distance darkens what is seen; each wall side has its own shade. Stereo disparity and distance
shading are real, so two eyes tell more than one.
"""
from __future__ import annotations

import math

import numpy as np

from sim_bridge.arena_eyes import RayEyes


class ReferenceEyes(RayEyes):
    """The rays and backdrop are prepared as they always were (RayEyes.__init__); render() is the first one."""

    def render(self, pos, heading, food, hazards, obstacles) -> tuple[np.ndarray, np.ndarray]:
        """Left and right eye (uint8 RGB) of a robot at `pos` facing `heading`, among these round things."""
        c = self.cfg
        H = c.eye_h
        left_dir = np.array([-math.sin(heading), math.cos(heading)])
        eyes = np.stack([pos + left_dir * c.eye_baseline / 2, pos - left_dir * c.eye_baseline / 2])  # (2,2)
        ang = heading + self._ray_off  # (W,)
        dirs = np.stack([np.cos(ang), np.sin(ang)], -1)  # (W,2)
        # walls: distance along each ray to the box
        with np.errstate(divide="ignore", invalid="ignore"):
            tx = np.where(dirs[None, :, 0] > 0, (c.size - eyes[:, None, 0]) / dirs[None, :, 0], -eyes[:, None, 0] / dirs[None, :, 0])
            ty = np.where(dirs[None, :, 1] > 0, (c.size - eyes[:, None, 1]) / dirs[None, :, 1], -eyes[:, None, 1] / dirs[None, :, 1])
        tx = np.where(np.isfinite(tx) & (tx >= 0), tx, np.inf)
        ty = np.where(np.isfinite(ty) & (ty >= 0), ty, np.inf)
        t_wall = np.minimum(tx, ty)  # (2,W)
        wall_id = np.where(tx < ty, np.where(dirs[None, :, 0] > 0, 1, 0), np.where(dirs[None, :, 1] > 0, 3, 2))
        # round things: food, hazards, obstacles
        centers = np.concatenate([food, hazards, obstacles]).reshape(-1, 2)
        radii = np.concatenate([np.full(len(food), c.food_radius), np.full(len(hazards), c.hazard_radius), np.full(len(obstacles), c.obstacle_radius)])
        heights = np.concatenate([np.full(len(food), c.food_height), np.full(len(hazards), c.hazard_height), np.full(len(obstacles), c.obstacle_height)])
        colors = np.concatenate([np.tile(c.food_color, (len(food), 1)), np.tile(c.hazard_color, (len(hazards), 1)), np.tile(c.obstacle_color, (len(obstacles), 1))]).astype(np.float32).reshape(-1, 3)
        oc = eyes[:, None, :] - centers[None, :, :]  # (2,N,2)
        b = np.einsum("wk,enk->ewn", dirs, oc)  # (2,W,N)
        cc = np.sum(oc * oc, -1)[:, None, :] - radii[None, None, :] ** 2  # (2,1,N)
        disc = b * b - cc
        sq = np.sqrt(np.maximum(disc, 0.0))
        t = -b - sq
        t = np.where(t > 0, t, np.where(-b + sq > 0, 1e-3, np.inf))
        t = np.where(disc >= 0, t, np.inf)  # (2,W,N)
        # z-buffer over walls + objects, per pixel
        dist_all = np.concatenate([t_wall[:, :, None], t], -1)  # (2,W,N+1)
        h_all = np.concatenate([np.full(1, c.wall_height), heights])  # (N+1,)
        perp = dist_all * self._cos_off[None, :, None]
        perp = np.maximum(perp, 1e-3)
        horizon = H / 2
        top = horizon - self._fy * (h_all[None, None, :] - c.cam_height) / perp  # (2,W,N+1)
        bot = horizon + self._fy * c.cam_height / perp
        rows = self._rows[None, :, :, None]  # (1,H,1,1)
        cover = (rows >= top[:, None]) & (rows < bot[:, None]) & np.isfinite(dist_all)[:, None]  # (2,H,W,N+1)
        depth = np.where(cover, dist_all[:, None], np.inf)
        idx = np.argmin(depth, -1)  # (2,H,W)
        dmin = np.take_along_axis(depth, idx[..., None], -1)[..., 0]
        hit = np.isfinite(dmin)
        wall_tint = np.array([[1.0], [0.85], [0.7], [0.55]], np.float32)  # a different shade per wall side
        wall_cols = np.array(c.wall_color, np.float32)[None, :] * wall_tint  # (4,3)
        col_wall = wall_cols[wall_id]  # (2,W,3)
        col_obj = np.concatenate([np.zeros((1, 3), np.float32), colors])  # index 0 = wall placeholder
        col = col_obj[idx]  # (2,H,W,3)
        is_wall = idx == 0
        col = np.where(is_wall[..., None], np.broadcast_to(col_wall[:, None], col.shape), col)
        col = col * self._shade(np.where(hit, dmin, 0.0))[..., None]
        img = np.where(hit[..., None], col, self._backdrop[None])
        img = np.clip(img, 0, 255).astype(np.uint8)
        return img[0], img[1]
