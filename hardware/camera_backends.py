"""Camera backends: where a stereo pair of raw frames comes from (files, V4L2, a Pi's CSI cameras, a Jetson's).

Each backend gives raw BGR frames plus a capture timestamp per eye (`RawPair`); `hardware.camera.StereoCamera`
around it does what every backend needs (resizing, stale and skew detection, reconnects). To add one: subclass
`Backend` (`open()`, `read() -> RawPair`, `close()`), add it to BACKENDS and to the `backend` check of
`CameraConfig`. Vendor libraries (picamera2) are imported inside their backend, so other boards never need them.
"""
from __future__ import annotations

import glob
import logging
import os
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np

if TYPE_CHECKING:
    from .camera import CameraConfig

log = logging.getLogger("hardware.camera")

IMAGE_EXT = (".png", ".jpg", ".jpeg", ".bmp", ".ppm")


class CameraError(RuntimeError):
    """A camera problem; the message names the device."""


class FrozenCamera(CameraError):
    """stale_limit identical frames in a row."""



@dataclass
class RawPair:
    left: np.ndarray  # BGR
    right: np.ndarray  # BGR
    t_left: float  # monotonic seconds of capture
    t_right: float


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

