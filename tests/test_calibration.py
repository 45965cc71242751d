"""Stereo calibration on real OpenCV work (issue 18): pairs rendered from a known camera model (our own
generator, calibration/synthetic.py) are calibrated by the real code path, and what comes back is checked
against the truth; rectification then runs in the camera pipeline on replayed captures."""
import json
import subprocess
import sys

import cv2
import numpy as np
import pytest

from calibration.board import Board, BoardError
from calibration.stereo import CalibrationFailed, calibrate_stereo, load_pairs, rectified_row_error
from calibration.synthetic import StereoRig, stereo_pairs, write_pairs
from edge_runtime.config import ConfigError
from hardware.camera import CameraConfig, StereoCamera
from hardware.camera_backends import BACKENDS
from hardware.stereo_calibration import CalibrationError, StereoCalibration

RIG = StereoRig()


@pytest.fixture(scope="module")
def chess():
    board = Board.parse("chessboard:9x6:0.025")
    pairs = {f"pair-{i:03d}": p for i, p in enumerate(stereo_pairs(board, RIG, 12, seed=0, noise=1.0))}
    return board, pairs, calibrate_stereo(pairs, board)


def _check_truth(cal, rig):
    assert abs(cal.baseline_m - rig.baseline_m) / rig.baseline_m < 0.01
    for i in (1, 2):
        K, Kt = cal.m[f"K{i}"], getattr(rig, f"K{i}")
        assert abs(K[0, 0] - Kt[0, 0]) / Kt[0, 0] < 0.01 and abs(K[1, 1] - Kt[1, 1]) / Kt[1, 1] < 0.01
    assert cal.rms < 0.5


def test_chessboard_calibration_recovers_the_rig(chess):
    board, pairs, cal = chess
    _check_truth(cal, RIG)
    assert cal.image_size == RIG.size and cal.failed == [] and all(v["used"] for v in cal.views)
    assert all(v["left_px"] < 0.5 and v["right_px"] < 0.5 for v in cal.views)
    # rectified, the same corner lies on the same row in both eyes: every corner of every pair
    rows = rectified_row_error(cal, pairs, board)
    assert rows["max_px"] < 0.5 and rows["corners"] == 12 * 54


def test_charuco_calibration_recovers_the_rig():
    board = Board.parse("charuco:10x7:0.025:0.018")
    pairs = {f"c{i}": p for i, p in enumerate(stereo_pairs(board, RIG, 10, seed=5))}
    cal = calibrate_stereo(pairs, board)
    _check_truth(cal, RIG)
    # ChArUco corners are found with more noise than a chessboard's (RMS reprojection ~0.1 px against ~0.06):
    # the rows match to 0.5 px in RMS over every corner; single corners reach ~0.8 px (measured, seeds 5-6)
    rows = rectified_row_error(cal, pairs, board)
    assert rows["rms_px"] < 0.5 and rows["max_px"] < 1.0


def test_board_size_and_square_are_parameters():
    board = Board.parse("chessboard:7x5:0.04")  # another board: other corners, another square
    rig = StereoRig()
    pairs = {f"b{i}": p for i, p in enumerate(stereo_pairs(board, rig, 8, seed=2))}
    cal = calibrate_stereo(pairs, board)
    assert abs(cal.baseline_m - rig.baseline_m) / rig.baseline_m < 0.01
    with pytest.raises(CalibrationFailed, match="0 usable pair"):  # told the wrong board: nothing found
        calibrate_stereo(pairs, Board.parse("chessboard:9x6:0.04"))


def test_too_few_usable_pairs_names_the_failed_ones(chess):
    board, pairs, _ = chess
    few = dict(list(pairs.items())[:4])
    blank = np.full((480, 640), 120, np.uint8)
    few["empty-left"] = (blank, pairs["pair-000"][1])
    few["empty-both"] = (blank, blank)
    with pytest.raises(CalibrationFailed) as e:
        calibrate_stereo(few, board)
    msg = str(e.value)
    assert "4 usable pair(s) of 6, at least 6 needed" in msg
    assert "empty-left: board not found in the left eye" in msg and "empty-both: board not found in both eyes" in msg


def test_an_outlier_view_is_dropped_by_name(chess):
    board, pairs, _ = chess
    bad = dict(pairs)
    # the right image of one pair taken with the board elsewhere: found, but not where the rig says
    bad["pair-005"] = (pairs["pair-005"][0], pairs["pair-009"][1])
    cal = calibrate_stereo(bad, board)
    dropped = [v["name"] for v in cal.views if not v["used"]]
    assert dropped == ["pair-005"]
    _check_truth(cal, RIG)


def test_calibration_file_round_trip_and_bad_files(tmp_path, chess):
    _, _, cal = chess
    p = tmp_path / "stereo.toml"
    cal.save(p)
    back = StereoCalibration.load(p)
    assert back.image_size == cal.image_size and back.board == cal.board
    for k, v in cal.m.items():
        assert np.allclose(back.m[k], v), k
    (tmp_path / "bad.toml").write_text(p.read_text().replace("T = [", "T_gone = ["))
    with pytest.raises(CalibrationError, match="stereo.T is missing"):
        StereoCalibration.load(tmp_path / "bad.toml")
    with pytest.raises(CalibrationError, match="no such file"):
        StereoCalibration.load(tmp_path / "nope.toml")
    with pytest.raises(BoardError, match="chessboard:COLSxROWS"):
        Board.parse("chessboard:9x6")


def _replay_dirs(tmp_path, pairs, size=None):
    for side, k in (("left", 0), ("right", 1)):
        (tmp_path / side).mkdir(exist_ok=True)
        for i, p in enumerate(pairs.values()):
            img = cv2.cvtColor(p[k], cv2.COLOR_GRAY2BGR)
            if size:
                img = cv2.resize(img, size, interpolation=cv2.INTER_AREA)
            cv2.imwrite(str(tmp_path / side / f"{i:03d}.png"), img)
    return str(tmp_path / "left"), str(tmp_path / "right")


def _camera(tmp_path, chess, size, eye_hw):
    board, pairs, cal = chess
    cal.save(tmp_path / "stereo.toml")
    left, right = _replay_dirs(tmp_path, pairs, size)
    cfg = CameraConfig(backend="replay", left=left, right=right, loop=False, calibration=str(tmp_path / "stereo.toml"))
    return StereoCamera(BACKENDS["replay"](cfg), eye_hw, cfg)


def _rows_after_camera(tmp_path, chess, size, eye_hw):
    """Read the pairs through StereoCamera with the calibration; |row difference| of the board's corners."""
    board, pairs, _ = chess
    worst = []
    with _camera(tmp_path, chess, size, eye_hw) as cam:
        for _ in pairs:
            f = cam.read()
            assert f.left.shape == (*eye_hw, 3)
            a = board.find(cv2.cvtColor(f.left, cv2.COLOR_RGB2GRAY))
            b = board.find(cv2.cvtColor(f.right, cv2.COLOR_RGB2GRAY))
            assert a is not None and b is not None
            worst.append(float(np.abs(a[1][:, 0, 1] - b[1][:, 0, 1]).max()))
    return worst


def test_camera_pipeline_returns_rectified_frames(tmp_path, chess):
    worst = _rows_after_camera(tmp_path, chess, None, (480, 640))  # eyes as big as the capture: rows checkable
    assert len(worst) == 12 and max(worst) < 0.5


def test_a_calibration_at_another_scale_is_scaled(tmp_path, chess):
    worst = _rows_after_camera(tmp_path, chess, (320, 240), (240, 320))  # captured at half the calibration's size
    assert len(worst) == 12 and max(worst) < 0.5


def test_small_eyes_are_rectified_as_the_full_frame_would_be(tmp_path, chess):
    """At the eye size the pipeline rectifies a reduced frame (an integer reduction to at least four times the
    eye size, not the capture): the eyes it returns are the full-resolution rectification, area-reduced, to
    within a few grey levels at the squares' edges (measured: mean 0.46, 99th percentile 4)."""
    _, pairs, cal = chess
    m = cal.m
    maps = [cv2.initUndistortRectifyMap(m[f"K{i}"], m[f"D{i}"], m[f"R{i}"], m[f"P{i}"], (640, 480), cv2.CV_32FC1)
            for i in (1, 2)]
    diffs = []
    with _camera(tmp_path, chess, None, (48, 64)) as cam:
        for left, right in pairs.values():
            f = cam.read()
            for img, got, (mx, my) in ((left, f.left, maps[0]), (right, f.right, maps[1])):
                ref = cv2.resize(cv2.remap(img, mx, my, cv2.INTER_LINEAR), (64, 48), interpolation=cv2.INTER_AREA)
                diffs.append(np.abs(ref.astype(int) - got[..., 0].astype(int)))
    d = np.stack(diffs)
    assert d.mean() < 1.0 and np.percentile(d, 99) < 8  # grey levels of 255; the squares' edges differ most


def test_a_calibration_at_another_aspect_ratio_is_refused(tmp_path, chess):
    board, pairs, cal = chess
    cal.save(tmp_path / "stereo.toml")
    left, right = _replay_dirs(tmp_path, pairs, (640, 360))
    cfg = CameraConfig(backend="replay", left=left, right=right, calibration=str(tmp_path / "stereo.toml"))
    with StereoCamera(BACKENDS["replay"](cfg), (48, 64), cfg) as cam:
        with pytest.raises(ConfigError, match="made at 640x480, frames are .*another aspect ratio"):
            cam.read()


def test_a_bad_calibration_file_fails_when_the_camera_is_made(tmp_path):
    (tmp_path / "l").mkdir()
    cfg = CameraConfig(backend="replay", left=str(tmp_path / "l"), right=str(tmp_path / "l"),
                       calibration=str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match="camera.calibration: .*missing.toml: no such file"):
        StereoCamera(BACKENDS["replay"](cfg), (48, 64), cfg)


def test_cli_calibrates_a_folder_of_pairs(tmp_path, chess):
    board, pairs, _ = chess
    write_pairs(tmp_path / "pairs", list(pairs.values())[:8])
    assert len(load_pairs(tmp_path / "pairs")) == 8
    out = tmp_path / "stereo.toml"
    run = [sys.executable, "-m", "edge_runtime.cli", "calibrate", "stereo", "--images", str(tmp_path / "pairs"),
           "--board", "chessboard:9x6:0.025", "--out", str(out)]
    p = subprocess.run(run + ["--json"], capture_output=True, text=True, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["pairs_used"] == 8 and r["rms_px"] < 0.5 and abs(r["baseline_m"] - 0.15) < 0.0015
    assert StereoCalibration.load(out).image_size == (640, 480)
    p = subprocess.run(run[:-4] + ["--board", "chessboard:9x6", "--out", str(out)], capture_output=True, text=True)
    assert p.returncode == 2 and "expected chessboard:COLSxROWS:SQUARE" in p.stderr


def test_cli_captures_live_from_the_configured_cameras(tmp_path, chess):
    """--camera-config: pairs read from the robot's [camera] (here the replay backend over the synthetic
    captures), one per Enter, at the capture size; kept only when both eyes see the board, and saved."""
    board, pairs, _ = chess
    left, right = _replay_dirs(tmp_path, dict(list(pairs.items())[:8]))
    cfg = tmp_path / "robot.toml"
    cfg.write_text(f'[camera]\nbackend = "replay"\nleft = "{left}"\nright = "{right}"\n')
    out = tmp_path / "stereo.toml"
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "calibrate", "stereo", "--camera-config", str(cfg),
                        "--captures", "8", "--board", "chessboard:9x6:0.025", "--out", str(out), "--json"],
                       capture_output=True, text=True, input="\n" * 8, timeout=300)
    assert p.returncode == 0, p.stderr
    r = json.loads(p.stdout)
    assert r["pairs_used"] == 8 and r["image_size"] == [640, 480] and abs(r["baseline_m"] - 0.15) < 0.0015
    saved = sorted((tmp_path / "stereo-captures").iterdir())
    assert len(saved) == 16 and saved[0].name == "pair-000-left.png"
