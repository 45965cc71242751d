"""Synthetic stereo pairs of a calibration board, rendered through a known camera model.

For tests and for trying the tools without a rig: a planar board (Board.image()) is seen by two pinhole
cameras with lens distortion; every output pixel is traced back through the distortion (undistortPoints),
out along its ray to the board plane, and samples the board there. So the truth (K, distortion, R, T) is
known exactly and the real calibration code path has to recover it.

Conventions are OpenCV's: a point X in the left camera's frame is R @ X + T in the right camera's frame.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from .board import Board


def _undistort(pts: np.ndarray, K: np.ndarray, D: np.ndarray) -> np.ndarray:
    """Pixels to normalised coordinates, iterated to convergence (the default 5 iterations leave ~0.1 px)."""
    crit = (cv2.TERM_CRITERIA_COUNT | cv2.TERM_CRITERIA_EPS, 40, 1e-10)
    if hasattr(cv2, "undistortPointsIter"):  # OpenCV 4.x spells the iterated form separately; 5.x has `criteria`
        return cv2.undistortPointsIter(pts, K, D, None, None, crit)
    return cv2.undistortPoints(pts, K, D, None, None, None, crit)


def _rot(rx: float, ry: float, rz: float) -> np.ndarray:
    return cv2.Rodrigues(np.array([rx, ry, rz], float))[0]


@dataclass
class StereoRig:
    """The true cameras: intrinsics, distortion (k1, k2, p1, p2, k3) and the right camera's pose."""

    size: tuple[int, int] = (640, 480)
    K1: np.ndarray = field(default_factory=lambda: np.array([[600.0, 0, 322.0], [0, 600.0, 238.0], [0, 0, 1]]))
    D1: np.ndarray = field(default_factory=lambda: np.array([-0.12, 0.05, 0.0008, -0.0005, 0.0]))
    K2: np.ndarray = field(default_factory=lambda: np.array([[612.0, 0, 316.0], [0, 611.0, 243.0], [0, 0, 1]]))
    D2: np.ndarray = field(default_factory=lambda: np.array([-0.10, 0.03, -0.0006, 0.0004, 0.0]))
    R: np.ndarray = field(default_factory=lambda: _rot(0.004, -0.012, 0.006))
    T: np.ndarray = field(default_factory=lambda: np.array([-0.15, 0.002, 0.001]))  # a 15 cm baseline

    @property
    def baseline_m(self) -> float:
        return float(np.linalg.norm(self.T))


def pixel_rays(K: np.ndarray, D: np.ndarray, size: tuple[int, int], ss: int = 2) -> np.ndarray:
    """Normalised image coordinates (x, y) of every (sub)pixel of a camera: its rays, computed once per camera."""
    w, h = size
    u, v = np.meshgrid((np.arange(w * ss) + 0.5) / ss - 0.5, (np.arange(h * ss) + 0.5) / ss - 0.5)
    pts = np.stack([u.ravel(), v.ravel()], 1).astype(np.float64).reshape(-1, 1, 2)
    return _undistort(pts, K, D).reshape(-1, 2)


def render(board: Board, texture: np.ndarray, corner_px: tuple[float, float], px_per_square: int,
           rays: np.ndarray, rvec: np.ndarray, tvec: np.ndarray, size: tuple[int, int], ss: int = 2,
           background: int = 110) -> np.ndarray:
    """One camera's view (grey uint8) of the board at pose (rvec, tvec): X_cam = R(rvec) X_board + tvec.
    `rays` are the camera's pixel_rays(): supersampled `ss` times, then averaged as a sensor integrates."""
    w, h = size
    Rm = cv2.Rodrigues(np.asarray(rvec, float))[0]
    # the ray of each pixel, in board coordinates: origin C, direction d; the board is the plane z = 0
    C = -Rm.T @ np.asarray(tvec, float).reshape(3)
    d = np.column_stack([rays, np.ones(len(rays))]) @ Rm  # each row: (Rm.T @ ray).T
    with np.errstate(divide="ignore", invalid="ignore"):
        s = -C[2] / d[:, 2]
    P = C[None, :2] + s[:, None] * d[:, :2]
    mx = (P[:, 0] / board.square * px_per_square + corner_px[0]).astype(np.float32)
    my = (P[:, 1] / board.square * px_per_square + corner_px[1]).astype(np.float32)
    mx[~(s > 0)] = -1e6  # looking away from the board
    img = cv2.remap(texture, mx.reshape(h * ss, w * ss), my.reshape(h * ss, w * ss), cv2.INTER_LINEAR,
                    borderMode=cv2.BORDER_CONSTANT, borderValue=background)
    return cv2.resize(img, (w, h), interpolation=cv2.INTER_AREA)


def board_poses(board: Board, rig: StereoRig, n: int, seed: int = 0) -> list[tuple[np.ndarray, np.ndarray]]:
    """n varied board poses (left camera frame) with the whole board inside both images, well clear of the edges."""
    rng = np.random.default_rng(seed)
    obj = board.object_points().astype(np.float64)
    centre = obj.mean(0)
    out = []
    for _ in range(n * 200):
        if len(out) == n:
            break
        rvec = np.array([rng.uniform(-0.45, 0.45), rng.uniform(-0.45, 0.45), rng.uniform(-0.3, 0.3)])
        Rm = cv2.Rodrigues(rvec)[0]
        z = rng.uniform(0.35, 0.75)
        target = np.array([rng.uniform(-0.25, 0.25) * z, rng.uniform(-0.2, 0.2) * z, z])
        tvec = target - Rm @ centre
        ok = True
        for K, D, r, t in ((rig.K1, rig.D1, rvec, tvec), (rig.K2, rig.D2, cv2.Rodrigues(rig.R @ Rm)[0],
                                                          rig.R @ tvec + rig.T)):
            # the board's outer squares too: a margin of one square all round
            ext = obj[[0, -1]].copy()
            lo, hi = ext.min(0) - board.square, ext.max(0) + board.square
            box = np.array([[lo[0], lo[1], 0], [hi[0], lo[1], 0], [hi[0], hi[1], 0], [lo[0], hi[1], 0]])
            px = cv2.projectPoints(box, r, t, K, D)[0].reshape(-1, 2)
            w, h = rig.size
            if not ((px[:, 0] > 15).all() and (px[:, 0] < w - 15).all() and (px[:, 1] > 15).all() and (px[:, 1] < h - 15).all()):
                ok = False
                break
            cam = (cv2.Rodrigues(r)[0] @ box.T).T + np.asarray(t).reshape(3)
            if (cam[:, 2] < 0.1).any():
                ok = False
                break
        if ok:
            out.append((rvec, tvec))
    if len(out) < n:
        raise RuntimeError(f"synthetic: only {len(out)} of {n} board poses fit both images")
    return out


def stereo_pairs(board: Board, rig: StereoRig, n: int, seed: int = 0, noise: float = 0.0) -> list[tuple[np.ndarray, np.ndarray]]:
    """n (left, right) grey image pairs of the board in varied poses; `noise` is the std of added pixel noise."""
    pps = 60
    texture = board.image(pps)
    corner = board.image_corner_px(pps)
    rng = np.random.default_rng(seed + 1)
    pairs = []
    rays_l, rays_r = pixel_rays(rig.K1, rig.D1, rig.size), pixel_rays(rig.K2, rig.D2, rig.size)
    for rvec, tvec in board_poses(board, rig, n, seed):
        Rm = cv2.Rodrigues(rvec)[0]
        left = render(board, texture, corner, pps, rays_l, rvec, tvec, rig.size)
        right = render(board, texture, corner, pps, rays_r, cv2.Rodrigues(rig.R @ Rm)[0], rig.R @ tvec + rig.T, rig.size)
        if noise > 0:
            left, right = (np.clip(x + rng.normal(0, noise, x.shape), 0, 255).astype(np.uint8) for x in (left, right))
        pairs.append((left, right))
    return pairs


def write_pairs(directory: str | Path, pairs, prefix: str = "pair") -> list[Path]:
    """Save pairs as DIR/pair-000-left.png, DIR/pair-000-right.png, ... (the layout `calibrate stereo --images` reads)."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    for i, (left, right) in enumerate(pairs):
        for side, img in (("left", left), ("right", right)):
            p = d / f"{prefix}-{i:03d}-{side}.png"
            cv2.imwrite(str(p), img)
            out.append(p)
    return out


def fov_deg(K: np.ndarray, width: int) -> float:
    return math.degrees(2 * math.atan(width / 2 / K[0, 0]))
