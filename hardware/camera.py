"""Stereo cameras behind one interface.

    cam = open_stereo(CameraConfig(backend="replay", left="l.mp4", right="r.mp4"), eye_hw=(48, 64))
    frame = cam.read()      # StereoFrame: left/right uint8 RGB at eye size, timestamps, frame id, stale/skew flags

Backends (each gives raw BGR frames plus a capture timestamp per eye):
  replay     video files or image folders read through OpenCV (or one side-by-side file); loops
  opencv     V4L2 devices through OpenCV: two devices (grab both, then retrieve both) or one side-by-side
  picamera2  two CSI cameras on a Raspberry Pi (picamera2 imported only when this backend is opened),
             paired by SensorTimestamp
  gstreamer  Jetson CSI cameras through nvarguscamerasrc pipelines in OpenCV

The StereoCamera wrapper adds what every backend needs: resize to the eye
size, BGR -> RGB, frame ids, stale (repeated) frame and left/right skew
detection with counters, and reconnect with backoff after a failure. Errors
name the device.
"""
from __future__ import annotations

import glob
import logging
import os
import time
from dataclasses import dataclass

import cv2
import numpy as np

from edge_runtime.config import ConfigError

log = logging.getLogger("hardware.camera")

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


class CameraError(RuntimeError):
    """A camera problem; the message names the device."""


class FrozenCamera(CameraError):
    """stale_limit identical frames in a row."""


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
class RawPair:
    left: np.ndarray  # BGR
    right: np.ndarray  # BGR
    t_left: float  # monotonic seconds of capture
    t_right: float


@dataclass
class StereoFrame:
    left: np.ndarray  # RGB uint8, eye size
    right: np.ndarray
    t: float  # monotonic seconds (mean of the two capture times)
    skew_ms: float
    frame_id: int
    stale: bool = False
    skewed: bool = False


# ------------------------------------------------------------------ backends
class Backend:
    name = "camera"

    def open(self) -> None:
        raise NotImplementedError

    def read(self) -> RawPair:
        raise NotImplementedError

    def close(self) -> None:
        pass


def split_side_by_side(img: np.ndarray, swap: bool = False) -> tuple[np.ndarray, np.ndarray]:
    w = img.shape[1] // 2
    a, b = img[:, :w], img[:, w:2 * w]
    return (b, a) if swap else (a, b)


class _FileSource:
    """One eye's replay: a video file or a folder of images, read through OpenCV."""

    def __init__(self, path: str, loop: bool):
        self.path = path
        self.loop = loop
        self.cap = None
        self.files: list[str] = []
        self.i = 0

    def open(self):
        if os.path.isdir(self.path):
            self.files = sorted(f for f in glob.glob(os.path.join(self.path, "*")) if f.lower().endswith(IMAGE_EXT))
            if not self.files:
                raise CameraError(f"replay {self.path}: no images ({', '.join(IMAGE_EXT)}) in the folder")
        else:
            if not os.path.exists(self.path):
                raise CameraError(f"replay {self.path}: no such file")
            self.cap = cv2.VideoCapture(self.path)
            if not self.cap.isOpened():
                raise CameraError(f"replay {self.path}: OpenCV cannot open it as a video")
        self.i = 0

    def read(self) -> np.ndarray:
        if self.files:
            if self.i >= len(self.files):
                if not self.loop:
                    raise EOFError(self.path)
                self.i = 0
            img = cv2.imread(self.files[self.i], cv2.IMREAD_COLOR)
            self.i += 1
            if img is None:
                raise CameraError(f"replay {self.files[self.i - 1]}: unreadable image")
            return img
        ok, img = self.cap.read()
        if not ok:
            if not self.loop:
                raise EOFError(self.path)
            self.cap.set(cv2.CAP_PROP_POS_FRAMES, 0)
            ok, img = self.cap.read()
            if not ok:
                raise CameraError(f"replay {self.path}: no frames")
        return img

    def close(self):
        if self.cap is not None:
            self.cap.release()
            self.cap = None


class ReplayBackend(Backend):
    def __init__(self, cfg: CameraConfig):
        self.cfg = cfg
        self.name = f"replay {cfg.left}" + ("" if cfg.side_by_side else f" + {cfg.right}")
        self.srcs = [_FileSource(cfg.left, cfg.loop)] + ([] if cfg.side_by_side else [_FileSource(cfg.right, cfg.loop)])
        self._next_t = 0.0

    def open(self):
        for s in self.srcs:
            s.open()
        self._next_t = time.monotonic()

    def read(self) -> RawPair:
        if self.cfg.replay_fps > 0:  # pace like a camera
            now = time.monotonic()
            if now < self._next_t:
                time.sleep(self._next_t - now)
            self._next_t = max(self._next_t + 1.0 / self.cfg.replay_fps, time.monotonic() - 1.0)
        t = time.monotonic()
        if self.cfg.side_by_side:
            left, right = split_side_by_side(self.srcs[0].read(), self.cfg.swap_halves)
        else:
            left, right = self.srcs[0].read(), self.srcs[1].read()
        return RawPair(left, right, t, t)

    def close(self):
        for s in self.srcs:
            s.close()


def _device(spec: str):
    return int(spec) if str(spec).isdigit() else spec


class OpenCVBackend(Backend):
    """V4L2 through OpenCV: two devices (grab both, then retrieve both, for close timestamps) or one side by side."""

    def __init__(self, cfg: CameraConfig, api: int | None = None):
        self.cfg = cfg
        self.api = cv2.CAP_V4L2 if api is None else api
        self.devices = [cfg.left] + ([] if cfg.side_by_side else [cfg.right])
        self.name = "V4L2 " + " + ".join(str(d) for d in self.devices)
        self.caps = []

    def _open_one(self, dev) -> "cv2.VideoCapture":
        c = self.cfg
        cap = cv2.VideoCapture(_device(dev), self.api)
        if not cap.isOpened():
            raise CameraError(f"camera {dev}: cannot open (is it plugged in, and is the user in group 'video'?)")
        cap.set(cv2.CAP_PROP_FRAME_WIDTH, c.width * (2 if c.side_by_side else 1))
        cap.set(cv2.CAP_PROP_FRAME_HEIGHT, c.height)
        cap.set(cv2.CAP_PROP_FPS, c.fps)
        cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)
        return cap

    def open(self):
        self.close()
        self.caps = [self._open_one(d) for d in self.devices]

    def read(self) -> RawPair:
        ts = []
        for cap, dev in zip(self.caps, self.devices):
            if not cap.grab():
                raise CameraError(f"camera {dev}: grab failed")
            ts.append(time.monotonic())
        imgs = []
        for cap, dev in zip(self.caps, self.devices):
            ok, img = cap.retrieve()
            if not ok or img is None:
                raise CameraError(f"camera {dev}: retrieve failed")
            imgs.append(img)
        if self.cfg.side_by_side:
            left, right = split_side_by_side(imgs[0], self.cfg.swap_halves)
            return RawPair(left, right, ts[0], ts[0])
        return RawPair(imgs[0], imgs[1], ts[0], ts[1])

    def close(self):
        for cap in self.caps:
            cap.release()
        self.caps = []


def jetson_pipeline(sensor_id: int, width: int, height: int, fps: float) -> str:
    """The GStreamer pipeline for one Jetson CSI camera (nvarguscamerasrc), ending in BGR frames for OpenCV."""
    return (f"nvarguscamerasrc sensor-id={int(sensor_id)} ! "
            f"video/x-raw(memory:NVMM),width={int(width)},height={int(height)},framerate={int(round(fps))}/1 ! "
            "nvvidconv ! video/x-raw,format=BGRx ! videoconvert ! video/x-raw,format=BGR ! "
            "appsink drop=true max-buffers=1")


class GStreamerBackend(OpenCVBackend):
    """Jetson CSI: two nvarguscamerasrc pipelines opened by OpenCV with CAP_GSTREAMER."""

    def __init__(self, cfg: CameraConfig):
        if cfg.side_by_side:
            raise CameraError("gstreamer: side_by_side is not supported; give camera.left and camera.right sensor ids")
        super().__init__(cfg, api=cv2.CAP_GSTREAMER)
        self.pipelines = [jetson_pipeline(int(d), cfg.width, cfg.height, cfg.fps) for d in self.devices]
        self.name = "Jetson CSI sensor-id " + " + ".join(str(d) for d in self.devices)

    def _open_one(self, dev):
        pipe = jetson_pipeline(int(dev), self.cfg.width, self.cfg.height, self.cfg.fps)
        cap = cv2.VideoCapture(pipe, cv2.CAP_GSTREAMER)
        if not cap.isOpened():
            raise CameraError(f"camera sensor-id={dev}: cannot open GStreamer pipeline (needs OpenCV built with "
                              f"GStreamer and nvarguscamerasrc; pipeline: {pipe})")
        return cap

    def open(self):
        self.close()
        self.caps = [self._open_one(d) for d in self.devices]


class Picamera2Backend(Backend):
    """Two CSI cameras on a Raspberry Pi. picamera2 (python3-picamera2 from apt) is imported here, lazily."""

    def __init__(self, cfg: CameraConfig):
        if cfg.side_by_side:
            raise CameraError("picamera2: side_by_side is not supported; give camera.left and camera.right camera numbers")
        self.cfg = cfg
        self.ids = [int(cfg.left), int(cfg.right)]
        self.name = "picamera2 " + " + ".join(str(i) for i in self.ids)
        self.cams = []

    def open(self):
        try:
            from picamera2 import Picamera2  # noqa: lazy on purpose (needs libcamera from the OS)
        except ImportError as e:
            raise CameraError(f"picamera2 cameras {self.ids}: cannot import picamera2 ({e}); on Raspberry Pi OS: "
                              "apt install python3-picamera2 and use a venv with --system-site-packages") from None
        self.close()
        c = self.cfg
        for i in self.ids:
            try:
                cam = Picamera2(i)
                conf = cam.create_video_configuration(main={"size": (c.width, c.height), "format": "RGB888"},
                                                      controls={"FrameRate": c.fps})
                cam.configure(conf)
                cam.start()
            except Exception as e:
                raise CameraError(f"picamera2 camera {i}: cannot start ({e})") from None
            self.cams.append(cam)

    def _capture(self, k: int):
        req = self.cams[k].capture_request()
        try:
            img = req.make_array("main")  # RGB888 arrives as BGR in numpy
            ts = req.get_metadata().get("SensorTimestamp")
        finally:
            req.release()
        return img, (ts / 1e9 if ts else time.monotonic())

    def read(self) -> RawPair:
        (l, tl), (r, tr) = self._capture(0), self._capture(1)
        # pair by sensor timestamp: if one eye is a frame behind, take the next frame of that eye
        period = 1.0 / self.cfg.fps
        for _ in range(2):
            if tr - tl > period / 2:
                l, tl = self._capture(0)
            elif tl - tr > period / 2:
                r, tr = self._capture(1)
            else:
                break
        return RawPair(l, r, tl, tr)

    def close(self):
        for cam in self.cams:
            try:
                cam.stop()
                cam.close()
            except Exception:
                pass
        self.cams = []


BACKENDS = {"replay": ReplayBackend, "opencv": OpenCVBackend, "gstreamer": GStreamerBackend, "picamera2": Picamera2Backend}


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
    def __init__(self, backend: Backend, eye_hw: tuple[int, int], cfg: CameraConfig):
        self.backend = backend
        self.h, self.w = eye_hw
        self.cfg = cfg
        self.stats = CameraStats()
        self._prev: tuple[bytes, bytes] | None = None
        self._same = 0
        self._frozen_reopen = False
        self._open = False

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
        return StereoFrame(self._eye(raw.left), self._eye(raw.right), (raw.t_left + raw.t_right) / 2, skew_ms,
                           self.stats.frames, stale, skewed)

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
