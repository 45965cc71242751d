"""Stereo calibration with OpenCV: board corners in left/right pairs, each camera alone, then the pair.

    pairs  = load_pairs("captures/")                 # name -> (left, right), from DIR/*-left.png + *-right.png
    cal    = calibrate_stereo(pairs, Board.parse("chessboard:9x6:0.025"))
    cal.save("stereo.toml")                          # hardware/stereo_calibration.py: the file, and rectification

Steps: find the board in both images of every pair (pairs where either eye misses it are named in `failed`);
calibrate each camera alone on its views (calibrateCamera); calibrate the pair with those intrinsics fixed
(stereoCalibrate: R, T); per view, the RMS reprojection error in each eye. A view far worse than the rest
(above OUTLIER_FACTOR x the median and above OUTLIER_MIN_PX) is dropped, by name, and the calibration is made
again without it. Then stereoRectify gives the rectifying rotations R1, R2, the projections P1, P2 and Q.
"""
from __future__ import annotations

import logging
from pathlib import Path

import cv2
import numpy as np

from hardware.stereo_calibration import StereoCalibration

from .board import Board

log = logging.getLogger("calibration.stereo")

MIN_PAIRS = 6  # fewer usable pairs than this cannot pin down two lenses and their pose reliably
OUTLIER_FACTOR = 3.0
OUTLIER_MIN_PX = 0.5


class CalibrationFailed(RuntimeError):
    """Not enough to calibrate from; the message names what failed."""


def _grey(img: np.ndarray) -> np.ndarray:
    return img if img.ndim == 2 else cv2.cvtColor(img, cv2.COLOR_BGR2GRAY)


def load_pairs(directory: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """DIR/NAME-left.EXT and DIR/NAME-right.EXT (png, jpg, bmp, tif), paired by NAME, in name order."""
    d = Path(directory)
    if not d.is_dir():
        raise CalibrationFailed(f"--images {d}: no such directory")
    exts = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
    files = {p.name: p for p in d.iterdir() if p.suffix.lower() in exts}
    pairs, unpaired = {}, []
    for name, p in sorted(files.items()):
        stem = p.stem
        if stem.endswith("-left"):
            base = stem[:-5]
            right = next((files[n] for n in files if Path(n).stem == base + "-right"), None)
            if right is None:
                unpaired.append(name)
                continue
            left_img, right_img = cv2.imread(str(p)), cv2.imread(str(right))
            if left_img is None or right_img is None:
                raise CalibrationFailed(f"--images {d}: cannot read {name if left_img is None else right.name}")
            pairs[base] = (left_img, right_img)
        elif not stem.endswith("-right"):
            unpaired.append(name)
    if unpaired:
        log.warning("%s: not part of a NAME-left/NAME-right pair, ignored: %s", d, ", ".join(unpaired))
    if not pairs:
        raise CalibrationFailed(f"--images {d}: no NAME-left.png / NAME-right.png pairs found")
    return pairs


def find_corners(pairs: dict[str, tuple[np.ndarray, np.ndarray]], board: Board):
    """name -> (ids, left corners, right corners) for the pairs where both eyes show enough of the board
    (the corners both eyes see), and the names of the others with the reason."""
    found, failed = {}, {}
    size = None
    for name, (left, right) in pairs.items():
        gl, gr = _grey(left), _grey(right)
        if gl.shape != gr.shape:
            raise CalibrationFailed(f"pair {name}: left {gl.shape[1]}x{gl.shape[0]} and right {gr.shape[1]}x{gr.shape[0]} differ")
        if size is None:
            size = gl.shape[::-1]
        elif gl.shape[::-1] != size:
            raise CalibrationFailed(f"pair {name}: {gl.shape[1]}x{gl.shape[0]}, the first pair is {size[0]}x{size[1]}: "
                                    "one resolution per calibration")
        a, b = board.find(gl), board.find(gr)
        if a is None or b is None:
            failed[name] = "board not found in " + ("both eyes" if a is None and b is None else
                                                    "the left eye" if a is None else "the right eye")
            continue
        common, ia, ib = np.intersect1d(a[0], b[0], return_indices=True)
        if len(common) < 6:
            failed[name] = f"only {len(common)} corners seen by both eyes"
            continue
        found[name] = (common, a[1][ia], b[1][ib])
    return found, failed, size


def _per_view_rms(obj, img, rvecs, tvecs, K, D) -> list[float]:
    out = []
    for o, i, r, t in zip(obj, img, rvecs, tvecs):
        p = cv2.projectPoints(o, r, t, K, D)[0].reshape(-1, 2)
        out.append(float(np.sqrt(np.mean(np.sum((p - i.reshape(-1, 2)) ** 2, axis=1)))))
    return out


def _calibrate(names, found, board, size):
    obj_all = board.object_points()
    obj = [obj_all[found[n][0]] for n in names]
    il = [found[n][1] for n in names]
    ir = [found[n][2] for n in names]
    rms_l, K1, D1, rv1, tv1 = cv2.calibrateCamera(obj, il, size, None, None)
    rms_r, K2, D2, rv2, tv2 = cv2.calibrateCamera(obj, ir, size, None, None)
    crit = (cv2.TERM_CRITERIA_COUNT + cv2.TERM_CRITERIA_EPS, 200, 1e-10)
    rms, K1, D1, K2, D2, R, T, _, _ = cv2.stereoCalibrate(obj, il, ir, K1, D1, K2, D2, size,
                                                          flags=cv2.CALIB_FIX_INTRINSIC, criteria=crit)
    # per view: each eye's error at its own pose (the stereo pose ties the right one to the left)
    err_l = _per_view_rms(obj, il, rv1, tv1, K1, D1)
    rv_r = [cv2.Rodrigues(R @ cv2.Rodrigues(r)[0])[0] for r in rv1]
    tv_r = [R @ t.reshape(3, 1) + T.reshape(3, 1) for t in tv1]
    err_r = _per_view_rms(obj, ir, rv_r, tv_r, K2, D2)
    return dict(rms=rms, rms_l=rms_l, rms_r=rms_r, K1=K1, D1=D1, K2=K2, D2=D2, R=R, T=T, err_l=err_l, err_r=err_r)


def calibrate_stereo(pairs: dict[str, tuple[np.ndarray, np.ndarray]], board: Board, min_pairs: int = MIN_PAIRS,
                     drop_outliers: bool = True) -> StereoCalibration:
    found, failed, size = find_corners(pairs, board)
    names = sorted(found)
    if len(names) < min_pairs:
        why = "; ".join(f"{n}: {r}" for n, r in sorted(failed.items())) or "none failed"
        raise CalibrationFailed(f"{len(names)} usable pair(s) of {len(pairs)}, at least {min_pairs} needed "
                                f"(board {board.describe()}). Failed: {why}")
    dropped: list[str] = []
    r = _calibrate(names, found, board, size)
    while drop_outliers:
        worst = [max(a, b) for a, b in zip(r["err_l"], r["err_r"])]
        med = float(np.median(worst))
        bad = [n for n, e in zip(names, worst) if e > OUTLIER_FACTOR * med and e > OUTLIER_MIN_PX]
        if not bad or len(names) - len(bad) < min_pairs:
            break
        log.warning("dropping outlier view(s) %s (reprojection error above %.1fx the median %.3f px)",
                    ", ".join(bad), OUTLIER_FACTOR, med)
        dropped += bad
        errs = {n: (a, b) for n, a, b in zip(names, r["err_l"], r["err_r"])}
        names = [n for n in names if n not in bad]
        r = _calibrate(names, found, board, size)
        r["dropped_errs"] = {**r.get("dropped_errs", {}), **{n: errs[n] for n in bad}}
    R1, R2, P1, P2, Q, _, _ = cv2.stereoRectify(r["K1"], r["D1"], r["K2"], r["D2"], size, r["R"], r["T"], alpha=0)
    views = [{"name": n, "left_px": round(a, 4), "right_px": round(b, 4), "used": True}
             for n, a, b in zip(names, r["err_l"], r["err_r"])]
    views += [{"name": n, "left_px": round(a, 4), "right_px": round(b, 4), "used": False}
              for n, (a, b) in r.get("dropped_errs", {}).items()]
    m = {"K1": r["K1"], "D1": r["D1"].reshape(-1), "K2": r["K2"], "D2": r["D2"].reshape(-1), "R": r["R"],
         "T": r["T"].reshape(-1), "R1": R1, "R2": R2, "P1": P1, "P2": P2, "Q": Q}
    return StereoCalibration(tuple(size), m, float(r["rms"]), float(r["rms_l"]), float(r["rms_r"]),
                             board.describe(), sorted(views, key=lambda v: v["name"]),
                             [f"{n}: {why}" for n, why in sorted(failed.items())])


def rectified_row_error(cal: StereoCalibration, pairs: dict[str, tuple[np.ndarray, np.ndarray]], board: Board) -> dict:
    """|y_left - y_right| of the board's corners after rectification, over the pairs (pixels): max and RMS.
    0 for a perfect calibration and perfect detections: rectified epipolar lines are pixel rows. What remains
    is the calibration's error plus the corner detector's noise in both eyes."""
    found, _, _ = find_corners(pairs, board)
    diffs = []
    for common, cl, cr in found.values():
        pl = cv2.undistortPoints(cl, cal.m["K1"], cal.m["D1"], R=cal.m["R1"], P=cal.m["P1"])
        pr = cv2.undistortPoints(cr, cal.m["K2"], cal.m["D2"], R=cal.m["R2"], P=cal.m["P2"])
        diffs.append(np.abs(pl[:, 0, 1] - pr[:, 0, 1]))
    d = np.concatenate(diffs)
    return {"max_px": float(d.max()), "rms_px": float(np.sqrt(np.mean(d ** 2))), "corners": int(len(d))}
