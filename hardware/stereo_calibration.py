"""A stereo calibration file (stereo.toml) and the rectification it gives the camera pipeline.

`edge-runtime calibrate stereo` (calibration/stereo.py) writes the file; `camera.calibration = "stereo.toml"`
makes StereoCamera.read() rectify every pair with it: both eyes remapped so that a point in the world lies on
the same pixel row in both (then disparity is a horizontal shift only), and then resized to the eye size.

The maps are computed once per frame size. A calibration made at one resolution and used at another is
scaled when the aspect ratio is the same (the intrinsics and projections scale with the image; the distortion
and rotations do not), and refused when it is not (a crop or a different sensor mode: calibrate again).

File layout (every matrix row-major, OpenCV's conventions: X_right = R X_left + T, metres):

    [stereo]
    image_width = 640          image_height = 480       board = "chessboard:9x6:0.025"
    rms = 0.21                 rms_left = 0.18          rms_right = 0.19      baseline_m = 0.150
    K1 = [[fx, 0, cx], [0, fy, cy], [0, 0, 1]]          D1 = [k1, k2, p1, p2, k3]
    K2 = ...                   D2 = ...
    R = [[...] x3]             T = [tx, ty, tz]
    R1 = ..., R2 = ..., P1 = [[...] x3 of 4], P2 = ..., Q = [[...] x4 of 4]
    [[stereo.views]]           name = "pair-003", left_px = 0.17, right_px = 0.21, used = true
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from edge_runtime.config import tomllib

MATRICES = {"K1": (3, 3), "D1": (-1,), "K2": (3, 3), "D2": (-1,), "R": (3, 3), "T": (3,), "R1": (3, 3), "R2": (3, 3),
            "P1": (3, 4), "P2": (3, 4), "Q": (4, 4)}


class CalibrationError(ValueError):
    """A calibration that cannot be used here; the message names the file and what is wrong."""


@dataclass
class StereoCalibration:
    image_size: tuple[int, int]  # (width, height) the calibration was made at
    m: dict[str, np.ndarray]  # K1 D1 K2 D2 R T R1 R2 P1 P2 Q
    rms: float
    rms_left: float
    rms_right: float
    board: str
    views: list[dict] = field(default_factory=list)  # name, left_px, right_px, used
    failed: list[str] = field(default_factory=list)  # pairs where the board was not found in both eyes

    @property
    def baseline_m(self) -> float:
        return float(np.linalg.norm(self.m["T"]))

    def to_toml(self) -> dict:
        s = {"image_width": int(self.image_size[0]), "image_height": int(self.image_size[1]), "board": self.board,
             "rms": round(self.rms, 5), "rms_left": round(self.rms_left, 5), "rms_right": round(self.rms_right, 5),
             "baseline_m": round(self.baseline_m, 6), "failed": list(self.failed)}
        for k in MATRICES:
            s[k] = np.asarray(self.m[k], float).tolist()
        s["views"] = [dict(v) for v in self.views]
        return {"stereo": s}

    def save(self, path: str | Path) -> None:
        import tomli_w

        p = Path(path)
        tmp = p.with_name(p.name + ".tmp")
        tmp.write_text(tomli_w.dumps(self.to_toml()))
        tmp.replace(p)

    @classmethod
    def load(cls, path: str | Path) -> "StereoCalibration":
        p = Path(path)
        try:
            d = tomllib.loads(p.read_text())["stereo"]
        except FileNotFoundError:
            raise CalibrationError(f"camera.calibration: {p}: no such file") from None
        except (tomllib.TOMLDecodeError, KeyError, UnicodeDecodeError) as e:
            raise CalibrationError(f"camera.calibration: {p}: not a stereo calibration file ({e})") from None
        m = {}
        for k, shape in MATRICES.items():
            if k not in d:
                raise CalibrationError(f"camera.calibration: {p}: stereo.{k} is missing")
            try:
                a = np.array(d[k], float)
                m[k] = a.reshape(shape) if shape != (-1,) else a.reshape(-1)
            except ValueError:
                raise CalibrationError(f"camera.calibration: {p}: stereo.{k} is not a {shape} matrix") from None
            if not np.isfinite(m[k]).all():
                raise CalibrationError(f"camera.calibration: {p}: stereo.{k} has non-finite values")
        try:
            size = (int(d["image_width"]), int(d["image_height"]))
        except (KeyError, TypeError, ValueError):
            raise CalibrationError(f"camera.calibration: {p}: stereo.image_width/image_height missing") from None
        return cls(size, m, float(d.get("rms", "nan")), float(d.get("rms_left", "nan")),
                   float(d.get("rms_right", "nan")), str(d.get("board", "")), list(d.get("views", [])),
                   list(d.get("failed", [])))

    def scaled_to(self, width: int, height: int, where: str = "") -> dict[str, np.ndarray]:
        """The matrices for frames of this size: the same when it is the calibration's, scaled intrinsics and
        projections when only the scale differs; a different aspect ratio is refused."""
        W, H = self.image_size
        if (width, height) == (W, H):
            return self.m
        sx, sy = width / W, height / H
        if abs(sx - sy) > 0.01 * max(sx, sy):
            raise CalibrationError(f"{where}calibration made at {W}x{H}, frames are {width}x{height}: another aspect "
                                   f"ratio (a crop or another sensor mode), so it does not apply; calibrate at "
                                   f"{width}x{height}")
        # pixel centres sit at integers (OpenCV's convention): a resize by s maps x to (x + 0.5) * s - 0.5
        S = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5], [0.0, 0.0, 1.0]])
        m = dict(self.m)
        for k in ("K1", "K2", "P1", "P2"):
            m[k] = S @ self.m[k]
        return m


class Rectifier:
    """Rectifies stereo pairs with one calibration; the undistort-rectify maps are built once per frame size."""

    def __init__(self, cal: StereoCalibration, where: str = ""):
        self.cal = cal
        self.where = where
        self._maps: dict[tuple[int, int], tuple] = {}

    @classmethod
    def load(cls, path: str | Path, where: str = "") -> "Rectifier":
        return cls(StereoCalibration.load(path), where)

    def maps(self, width: int, height: int):
        key = (width, height)
        if key not in self._maps:
            m = self.cal.scaled_to(width, height, self.where)
            self._maps[key] = tuple(
                cv2.initUndistortRectifyMap(m[f"K{i}"], m[f"D{i}"], m[f"R{i}"], m[f"P{i}"], key, cv2.CV_16SC2)
                for i in (1, 2))
        return self._maps[key]

    def __call__(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if left.shape[:2] != right.shape[:2]:
            raise CalibrationError(f"{self.where}left and right frames differ in size: {left.shape[:2]} vs "
                                   f"{right.shape[:2]}")
        h, w = left.shape[:2]
        (l1, l2), (r1, r2) = self.maps(w, h)
        return (cv2.remap(left, l1, l2, cv2.INTER_LINEAR), cv2.remap(right, r1, r2, cv2.INTER_LINEAR))
