"""Calibration boards: what a user prints, described by one string, and finding it in an image.

    chessboard:COLSxROWS:SQUARE                  inner corners across x down, square side in metres
                                                 (a 10x7-square board has 9x6 inner corners: chessboard:9x6:0.025)
    charuco:COLSxROWS:SQUARE:MARKER[:DICT]       squares across x down, square and marker side in metres,
                                                 an OpenCV ArUco dictionary (default DICT_5X5_100)

Board size and square size are always parameters: users bring their own boards.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


class BoardError(ValueError):
    """A board description that cannot be used; the message names what is wrong."""


@dataclass(frozen=True)
class Board:
    kind: str  # chessboard | charuco
    cols: int  # chessboard: inner corners across; charuco: squares across
    rows: int
    square: float  # metres
    marker: float = 0.0  # charuco only
    dictionary: str = "DICT_5X5_100"

    @classmethod
    def parse(cls, text: str) -> "Board":
        parts = text.split(":")
        kind = parts[0]
        try:
            if kind == "chessboard" and len(parts) == 3:
                cols, rows = (int(x) for x in parts[1].lower().split("x"))
                b = cls(kind, cols, rows, float(parts[2]))
            elif kind == "charuco" and len(parts) in (4, 5):
                cols, rows = (int(x) for x in parts[1].lower().split("x"))
                b = cls(kind, cols, rows, float(parts[2]), float(parts[3]), *(parts[4:] or []))
            else:
                raise BoardError(f"--board {text!r}: expected chessboard:COLSxROWS:SQUARE or "
                                 f"charuco:COLSxROWS:SQUARE:MARKER[:DICT]")
        except ValueError as e:
            if isinstance(e, BoardError):
                raise
            raise BoardError(f"--board {text!r}: sizes must be numbers ({e})") from None
        b.check(text)
        return b

    def check(self, text: str) -> None:
        least = 3 if self.kind == "chessboard" else 3
        if self.cols < least or self.rows < least:
            raise BoardError(f"--board {text!r}: at least {least}x{least} needed")
        if self.square <= 0:
            raise BoardError(f"--board {text!r}: the square size must be > 0 (metres)")
        if self.kind == "charuco":
            if not 0 < self.marker < self.square:
                raise BoardError(f"--board {text!r}: the marker must be smaller than the square")
            if not hasattr(cv2.aruco, self.dictionary):
                raise BoardError(f"--board {text!r}: no ArUco dictionary {self.dictionary!r} in this OpenCV")

    def describe(self) -> str:
        if self.kind == "chessboard":
            return f"chessboard:{self.cols}x{self.rows}:{self.square:g}"
        return f"charuco:{self.cols}x{self.rows}:{self.square:g}:{self.marker:g}:{self.dictionary}"

    # -------------------------------------------------------------- geometry
    def object_points(self) -> np.ndarray:
        """Every corner the board can show, (N, 3) float32 in metres, z = 0, in detection id order."""
        if self.kind == "chessboard":
            nx, ny = self.cols, self.rows
        else:
            nx, ny = self.cols - 1, self.rows - 1  # charuco corners are the inner chessboard corners
        g = np.zeros((nx * ny, 3), np.float32)
        g[:, :2] = np.mgrid[0:nx, 0:ny].T.reshape(-1, 2) * self.square
        return g

    def _charuco(self):
        d = cv2.aruco.getPredefinedDictionary(getattr(cv2.aruco, self.dictionary))
        return cv2.aruco.CharucoBoard((self.cols, self.rows), self.square, self.marker, d)

    def image(self, px_per_square: int = 80, margin_squares: float = 0.5) -> np.ndarray:
        """The board to print (grey, uint8), with a white margin."""
        m = int(px_per_square * margin_squares)
        if self.kind == "charuco":
            w, h = self.cols * px_per_square, self.rows * px_per_square
            return cv2.copyMakeBorder(self._charuco().generateImage((w, h)), m, m, m, m, cv2.BORDER_CONSTANT, value=255)
        sx, sy = self.cols + 1, self.rows + 1  # squares
        img = np.full((sy * px_per_square, sx * px_per_square), 255, np.uint8)
        for j in range(sy):
            for i in range(sx):
                if (i + j) % 2 == 0:
                    img[j * px_per_square:(j + 1) * px_per_square, i * px_per_square:(i + 1) * px_per_square] = 0
        return cv2.copyMakeBorder(img, m, m, m, m, cv2.BORDER_CONSTANT, value=255)

    def image_corner_px(self, px_per_square: int = 80, margin_squares: float = 0.5) -> tuple[float, float]:
        """Where object point (0, 0) sits in image(): pixel coordinates (pixel centres at integers, as OpenCV
        has them) of the first inner corner, the edge between pixel m + s - 1 and pixel m + s."""
        m = int(px_per_square * margin_squares)
        return m + px_per_square - 0.5, m + px_per_square - 0.5

    # -------------------------------------------------------------- detection
    def find(self, grey: np.ndarray) -> tuple[np.ndarray, np.ndarray] | None:
        """(ids, corners (K, 1, 2) float32 refined to sub-pixel) of the corners seen, or None if too few."""
        if self.kind == "chessboard":
            flags = cv2.CALIB_CB_ADAPTIVE_THRESH | cv2.CALIB_CB_NORMALIZE_IMAGE
            ok, corners = cv2.findChessboardCorners(grey, (self.cols, self.rows), flags=flags)
            if not ok:
                return None
            crit = (cv2.TERM_CRITERIA_EPS + cv2.TERM_CRITERIA_MAX_ITER, 50, 1e-4)
            corners = cv2.cornerSubPix(grey, corners, (5, 5), (-1, -1), crit)
            return np.arange(len(corners)), corners.astype(np.float32).reshape(-1, 1, 2)
        det = cv2.aruco.CharucoDetector(self._charuco())
        corners, ids, _, _ = det.detectBoard(grey)
        if ids is None or len(ids) < 6:
            return None
        return ids.reshape(-1), corners.astype(np.float32).reshape(-1, 1, 2)
