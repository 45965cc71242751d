"""Stereo cameras through OpenCV from files; the live backends' plumbing with fakes."""
import sys
import types

import cv2
import numpy as np
import pytest

from edge_runtime.config import ConfigError
from hardware import camera as C
from hardware import camera_backends


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return C.make_replay_videos(str(tmp_path_factory.mktemp("vid")), frames=12, size=(64, 48))


def test_replay_video_files(videos):
    cfg = C.CameraConfig(backend="replay", left=videos[0], right=videos[1])
    with C.open_stereo(cfg, (24, 32)) as cam:
        frames = [cam.read() for _ in range(30)]  # loops past the end (12 frames)
    f = frames[0]
    assert f.left.shape == (24, 32, 3) and f.left.dtype == np.uint8
    assert [x.frame_id for x in frames] == list(range(1, 31))
    assert all(b.t >= a.t for a, b in zip(frames, frames[1:]))
    assert not np.array_equal(frames[0].left, frames[0].right)  # the eyes differ (disparity)
    assert not np.array_equal(frames[0].left, frames[1].left)  # the scene moves
    assert cam.stats.stale == 0 and cam.stats.skewed == 0


def test_replay_is_rgb(tmp_path):
    d = tmp_path / "eye"
    d.mkdir()
    img = np.zeros((16, 16, 3), np.uint8)
    img[..., 0] = 255  # pure blue in BGR
    for i in range(3):
        img[0, 0, 1] = i  # differ a little so that they are not stale
        cv2.imwrite(str(d / f"{i:03d}.png"), img)
    cfg = C.CameraConfig(backend="replay", left=str(d), right=str(d))
    with C.open_stereo(cfg, (16, 16)) as cam:
        f = cam.read()
    assert f.left[5, 5].tolist() == [0, 0, 255]


def test_image_folder_stale_frames_detected_then_reconnect_fails(tmp_path):
    d = tmp_path / "frozen"
    d.mkdir()
    img = np.full((20, 20, 3), 77, np.uint8)
    for i in range(4):
        cv2.imwrite(str(d / f"{i:03d}.png"), img)  # the same picture: a frozen camera
    cfg = C.CameraConfig(backend="replay", left=str(d), right=str(d), stale_limit=3, read_timeout_s=0.3,
                         reconnect_backoff_s=0.05)
    cam = C.open_stereo(cfg, (16, 16))
    assert not cam.read().stale
    assert cam.read().stale and cam.read().stale
    with pytest.raises(C.CameraError, match="identical frames in a row .*still frozen after reopening"):
        for _ in range(10):  # the limit reopens the camera once; frozen again after that is an error
            cam.read()
    assert cam.stats.stale >= 3 and cam.stats.failures >= 1 and cam.stats.reconnects >= 1
    cam.close()


def test_side_by_side_split_and_swap(tmp_path):
    d = tmp_path / "sbs"
    d.mkdir()
    for i in range(2):
        img = np.zeros((20, 40, 3), np.uint8)
        img[:, :20] = (0, 0, 200 + i)  # left half red
        img[:, 20:] = (0, 200 + i, 0)  # right half green
        cv2.imwrite(str(d / f"{i}.png"), img)
    cfg = C.CameraConfig(backend="replay", left=str(d), side_by_side=True)
    with C.open_stereo(cfg, (16, 16)) as cam:
        f = cam.read()
    assert f.left[8, 8, 0] >= 200 and f.right[8, 8, 1] >= 200
    cfg = C.CameraConfig(backend="replay", left=str(d), side_by_side=True, swap_halves=True)
    with C.open_stereo(cfg, (16, 16)) as cam:
        f = cam.read()
    assert f.left[8, 8, 1] >= 200


def test_errors_name_the_device(tmp_path):
    with pytest.raises(C.CameraError, match="missing.avi"):
        C.open_stereo(C.CameraConfig(backend="replay", left=str(tmp_path / "missing.avi"), right="x"), (16, 16))
    with pytest.raises(C.CameraError, match="/dev/video97"):
        C.open_stereo(C.CameraConfig(backend="opencv", left="/dev/video97", right="/dev/video98"), (16, 16))


def test_end_of_replay_without_loop(videos):
    cfg = C.CameraConfig(backend="replay", left=videos[0], right=videos[1], loop=False)
    with C.open_stereo(cfg, (16, 16)) as cam:
        for _ in range(12):
            cam.read()
        with pytest.raises(C.CameraError, match="ended"):
            cam.read()


@pytest.mark.parametrize("kw,field", [
    ({"backend": "kinect", "left": "a", "right": "b"}, "camera.backend"),
    ({"left": "a"}, "camera.right"),
    ({"left": "", "right": "b"}, "camera.left"),
    ({"left": "a", "right": "b", "fps": 0}, "camera.fps"),
])
def test_config_errors_name_the_field(kw, field):
    with pytest.raises(ConfigError, match=field):
        C.CameraConfig(**kw)


class FakeCap:
    """Stands in for cv2.VideoCapture: a grab/retrieve camera with a clock."""

    opened = []

    def __init__(self, src, api=None):
        self.src, self.api, self.n = src, api, 0
        FakeCap.opened.append((src, api))

    def isOpened(self):
        return True

    def set(self, *a):
        return True

    def grab(self):
        self.n += 1
        return True

    def retrieve(self):
        img = np.full((30, 40, 3), self.n % 250, np.uint8)
        return True, img

    def release(self):
        pass


def test_opencv_two_devices_grab_then_retrieve(monkeypatch):
    monkeypatch.setattr(C.cv2, "VideoCapture", FakeCap)
    FakeCap.opened = []
    cfg = C.CameraConfig(backend="opencv", left="/dev/video0", right="2")
    with C.open_stereo(cfg, (16, 16)) as cam:
        a, b = cam.read(), cam.read()
    assert FakeCap.opened == [("/dev/video0", cv2.CAP_V4L2), (2, cv2.CAP_V4L2)]
    assert b.frame_id == 2 and not b.stale and a.skew_ms < 20


def test_jetson_pipeline_string(monkeypatch):
    p = camera_backends.jetson_pipeline(1, 1280, 720, 30)
    assert p.startswith("nvarguscamerasrc sensor-id=1 ! video/x-raw(memory:NVMM),width=1280,height=720,framerate=30/1 !")
    assert p.endswith("video/x-raw,format=BGR ! appsink drop=true max-buffers=1")
    monkeypatch.setattr(C.cv2, "VideoCapture", FakeCap)
    FakeCap.opened = []
    with C.open_stereo(C.CameraConfig(backend="gstreamer", left="0", right="1", width=1280, height=720), (16, 16)) as cam:
        cam.read()
    assert [o[1] for o in FakeCap.opened] == [cv2.CAP_GSTREAMER] * 2
    assert "sensor-id=0" in FakeCap.opened[0][0] and "sensor-id=1" in FakeCap.opened[1][0]


def test_picamera2_is_imported_lazily_and_pairs_by_sensor_timestamp(monkeypatch):
    # A documented mock: libcamera cannot run here. It mimics the picamera2 calls the backend uses.
    assert "picamera2" not in sys.modules  # importing hardware.camera did not import it
    period_ns = int(1e9 / 30)

    class FakeRequest:
        def __init__(self, cam):
            self.cam = cam

        def make_array(self, name):
            return np.full((30, 40, 3), self.cam.n % 250, np.uint8)

        def get_metadata(self):
            return {"SensorTimestamp": self.cam.n * period_ns + self.cam.offset}

        def release(self):
            pass

    class FakePicamera2:
        made = []

        def __init__(self, i):
            self.i, self.n = i, 0
            self.offset = 0 if i == 0 else period_ns  # camera 1 starts one frame ahead
            FakePicamera2.made.append(self)

        def create_video_configuration(self, main, controls=None):
            assert main["format"] == "RGB888"
            return {"main": main}

        def configure(self, conf):
            pass

        def start(self):
            pass

        def capture_request(self):
            self.n += 1
            return FakeRequest(self)

        def stop(self):
            pass

        def close(self):
            pass

    monkeypatch.setitem(sys.modules, "picamera2", types.SimpleNamespace(Picamera2=FakePicamera2))
    cfg = C.CameraConfig(backend="picamera2", left="0", right="1", fps=30, max_skew_ms=5)
    with C.open_stereo(cfg, (16, 16)) as cam:
        f = cam.read()
    assert f.skew_ms < 5 and not f.skewed  # the lagging eye took one more frame to pair
    assert FakePicamera2.made[0].n == 2 and FakePicamera2.made[1].n == 1


def test_picamera2_missing_says_how_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "picamera2", None)  # import fails
    with pytest.raises(C.CameraError, match="python3-picamera2"):
        C.open_stereo(C.CameraConfig(backend="picamera2", left="0", right="1"), (16, 16))
