"""Stereo cameras behind one interface.

    cam = open_stereo(CameraConfig(backend="replay", left="l.mp4", right="r.mp4"), eye_hw=(48, 64))
    frame = cam.read()      # StereoFrame: left/right uint8 RGB at eye size, timestamps, frame id, stale/skew flags

Backends (hardware/camera_backends.py; each gives raw BGR frames plus a capture timestamp per eye):
  replay     video files or image folders read through OpenCV (or one side-by-side file); loops
  opencv     V4L2 devices through OpenCV: two devices (grab both, then retrieve both) or one side-by-side
  picamera2  two CSI cameras on a Raspberry Pi (picamera2 imported only when this backend is opened),
             paired by SensorTimestamp
  gstreamer  Jetson CSI cameras through nvarguscamerasrc pipelines in OpenCV

The StereoCamera wrapper adds what every backend needs: rectification (with
camera.calibration, hardware/stereo_calibration.py), resize to the eye
size, BGR -> RGB, frame ids, stale (repeated) frame and left/right skew
detection with counters, and reconnect with backoff after a failure. Errors
name the device.
"""
from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge_runtime.config import ConfigError

from .camera_backends import BACKENDS, Backend, CameraError, FrozenCamera, RawPair
from .stereo_calibration import CalibrationError, Rectifier

__all__ = ["BACKENDS", "Backend", "CameraConfig", "CameraError", "CameraStats", "FrozenCamera", "RawPair", "StereoCamera",
           "StereoFrame", "make_replay_videos", "open_stereo"]

log = logging.getLogger("hardware.camera")


@dataclass
class CameraConfig:
    backend: str = "replay"  # replay | opencv | picamera2 | gstreamer
    left: str = ""  # replay: file/folder; opencv: device path or index; picamera2/gstreamer: camera/sensor id
    right: str = ""  # empty with side_by_side = true: one device/file carries both eyes
    side_by_side: bool = False
    swap_halves: bool = False  # side by side: the left eye is the right half
    width: int = 640  # capture size per eye (live backends)
    height: int = 480
    fps: float = 30.0
    replay_fps: float = 0.0  # replay: > 0 paces frames at this rate; 0 = a new frame on every read
    loop: bool = True  # replay: start again at the end
    stale_limit: int = 5  # this many identical frames in a row is a camera failure (reconnect)
    max_skew_ms: float = 20.0  # left/right capture time difference counted as skewed
    reconnect_backoff_s: float = 0.2
    reconnect_max_s: float = 5.0
    read_timeout_s: float = 2.0
    calibration: str = ""  # a stereo.toml from `edge-runtime calibrate stereo`: every pair is rectified with it

    def __post_init__(self):
        if self.backend not in ("replay", "opencv", "picamera2", "gstreamer"):
            raise ConfigError(f"camera.backend: must be replay|opencv|picamera2|gstreamer, got {self.backend!r}")
        if not self.left:
            raise ConfigError("camera.left: a device, camera id or file is needed")
        if not self.right and not self.side_by_side:
            raise ConfigError("camera.right: needed unless camera.side_by_side = true")
        if self.width < 8 or self.height < 8:
            raise ConfigError("camera.width: width and height must be >= 8")
        if self.fps <= 0:
            raise ConfigError("camera.fps: must be > 0")
        if self.stale_limit < 1:
            raise ConfigError("camera.stale_limit: must be >= 1")
        if self.max_skew_ms <= 0:
            raise ConfigError("camera.max_skew_ms: must be > 0")


@dataclass
class StereoFrame:
    left: np.ndarray  # RGB uint8, eye size
    right: np.ndarray
    t: float  # monotonic seconds (mean of the two capture times)
    skew_ms: float
    frame_id: int
    stale: bool = False
    skewed: bool = False



# ------------------------------------------------------------------ the wrapper
@dataclass
class CameraStats:
    frames: int = 0
    stale: int = 0
    skewed: int = 0
    failures: int = 0
    reconnects: int = 0
    last_error: str = ""

    def as_dict(self) -> dict:
        return {"frames": self.frames, "stale": self.stale, "skewed": self.skewed, "failures": self.failures,
                "reconnects": self.reconnects}


class StereoCamera:
    RECTIFY_AT = 4  # with a calibration, frames are rectified at >= this many times the eye size (_rectified)

    def __init__(self, backend: Backend, eye_hw: tuple[int, int], cfg: CameraConfig):
        self.backend = backend
        self.h, self.w = eye_hw
        self.cfg = cfg
        self.stats = CameraStats()
        self._prev: tuple[bytes, bytes] | None = None
        self._same = 0
        self._frozen_reopen = False
        self._open = False
        try:  # a bad file fails here, when the camera is made, naming it; never a silent unrectified eye
            self.rectify = Rectifier.load(cfg.calibration, f"{backend.name}: ") if cfg.calibration else None
        except CalibrationError as e:
            raise ConfigError(str(e)) from None

    @property
    def name(self) -> str:
        return self.backend.name

    def open(self) -> "StereoCamera":
        self.backend.open()
        self._open = True
        return self

    def _fingerprint(self, img: np.ndarray) -> bytes:
        small = img[:: max(1, img.shape[0] // 16), :: max(1, img.shape[1] // 16)]
        return small.tobytes()

    def read(self) -> StereoFrame:
        """One stereo pair. On a failure: reconnect with backoff until read_timeout_s, then CameraError."""
        deadline = time.monotonic() + self.cfg.read_timeout_s
        backoff = self.cfg.reconnect_backoff_s
        while True:
            try:
                if not self._open:
                    self.backend.open()
                    self._open = True
                    self.stats.reconnects += 1
                raw = self.backend.read()
                return self._finish(raw)
            except (CameraError, EOFError, cv2.error) as e:
                if isinstance(e, FrozenCamera):
                    if self._frozen_reopen:  # still frozen after reopening it: give up
                        raise CameraError(f"{e} (still frozen after reopening)") from None
                    self._frozen_reopen = True
                self.stats.failures += 1
                self.stats.last_error = str(e)
                self._open = False
                try:
                    self.backend.close()
                except Exception:
                    pass
                if isinstance(e, EOFError) or time.monotonic() + backoff > deadline:
                    msg = f"replay {e} ended" if isinstance(e, EOFError) else str(e)
                    raise CameraError(f"{self.name}: {msg} (after {self.stats.failures} failures)") from None
                log.warning("%s: %s; reopening in %.2f s", self.name, e, backoff)
                time.sleep(backoff)
                backoff = min(self.cfg.reconnect_max_s, backoff * 2)

    def _finish(self, raw: RawPair) -> StereoFrame:
        fp = (self._fingerprint(raw.left), self._fingerprint(raw.right))
        stale = fp == self._prev
        self._prev = fp
        if stale:
            self.stats.stale += 1
            self._same += 1
            if self._same >= self.cfg.stale_limit:
                self._same = 0
                raise FrozenCamera(f"{self.name}: {self.cfg.stale_limit} identical frames in a row (frozen camera)")
        else:
            self._same = 0
            self._frozen_reopen = False
        skew_ms = abs(raw.t_left - raw.t_right) * 1000
        skewed = skew_ms > self.cfg.max_skew_ms
        if skewed:
            self.stats.skewed += 1
        self.stats.frames += 1
        left, right = raw.left, raw.right
        if self.rectify is not None:
            left, right = self._rectified(left, right)
        return StereoFrame(self._eye(left), self._eye(right), (raw.t_left + raw.t_right) / 2, skew_ms,
                           self.stats.frames, stale, skewed)

    def _rectified(self, left: np.ndarray, right: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Rectify a reduced frame, not the full capture: the eyes are small, and remapping a quarter of the pixels
        or fewer is what makes it cheap (measured at 640x480 to 64x48 eyes: 0.8 ms per pair against 4.2 ms, and
        within 0.5 grey levels on average of rectifying the full frame; tests/test_calibration.py). The
        calibration is scaled to the reduced size (StereoCalibration.scaled_to)."""
        h, w = left.shape[:2]
        # an integer reduction of the capture (OpenCV's fast area path), to at least RECTIFY_AT x the eye size
        k = min(w // (self.RECTIFY_AT * self.w), h // (self.RECTIFY_AT * self.h))
        if k >= 2 and w % k == 0 and h % k == 0:
            left, right = (cv2.resize(x, (w // k, h // k), interpolation=cv2.INTER_AREA) for x in (left, right))
        try:
            return self.rectify(left, right)
        except CalibrationError as e:  # a calibration that does not fit these frames: a config error
            raise ConfigError(f"camera.calibration: {e}") from None

    def _eye(self, bgr: np.ndarray) -> np.ndarray:
        if bgr.ndim == 2:
            bgr = cv2.cvtColor(bgr, cv2.COLOR_GRAY2BGR)
        if bgr.shape[:2] != (self.h, self.w):
            bgr = cv2.resize(bgr, (self.w, self.h), interpolation=cv2.INTER_AREA)
        return cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)

    def close(self):
        if self._open:
            self.backend.close()
            self._open = False

    def __enter__(self):
        return self if self._open else self.open()

    def __exit__(self, *exc):
        self.close()
        return False


def open_stereo(cfg: CameraConfig, eye_hw: tuple[int, int]) -> StereoCamera:
    return StereoCamera(BACKENDS[cfg.backend](cfg), eye_hw, cfg).open()


def make_replay_videos(directory: str, frames: int = 60, size: tuple[int, int] = (64, 48), fps: float = 20.0,
                       seed: int = 0) -> tuple[str, str]:
    """Write a small synthetic stereo pair of videos (moving shapes, a horizontal disparity) for replay."""
    os.makedirs(directory, exist_ok=True)
    w, h = size
    rng = np.random.default_rng(seed)
    paths = (os.path.join(directory, "left.avi"), os.path.join(directory, "right.avi"))
    fourcc = cv2.VideoWriter_fourcc(*"MJPG")
    writers = [cv2.VideoWriter(p, fourcc, fps, (w, h)) for p in paths]
    if not all(wr.isOpened() for wr in writers):
        raise CameraError(f"replay {directory}: OpenCV cannot write MJPG .avi files here")
    blobs = [(rng.uniform(0, w), rng.uniform(0, h), rng.uniform(-1.5, 1.5), rng.uniform(3, 9),
              tuple(int(c) for c in rng.integers(40, 255, 3))) for _ in range(5)]
    for i in range(frames):
        for eye, wr in enumerate(writers):
            img = np.full((h, w, 3), (40, 60, 50), np.uint8)
            img[h // 2:] = (70, 80, 90)
            for x, y, vx, r, col in blobs:
                cx = (x + vx * i) % w + (2 if eye == 0 else -2) * r / 3  # nearer (bigger) blobs: more disparity
                cv2.circle(img, (int(cx), int(y)), int(r), col, -1)
            wr.write(img)
    for wr in writers:
        wr.release()
    return paths
