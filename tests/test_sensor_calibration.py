"""Battery and touch calibration end to end (issue 18): a virtual board in raw mode (a Li-ion discharge curve
read through an ADC with gain and offset error; touch channels idling at their own baselines) behind a real
pty, recorded and calibrated by the CLI, then applied by the robot body."""
import json
import subprocess
import sys
import time

import numpy as np
import pytest

from calibration.sensors import SensorCalibrationError, fit_energy_curve, fit_touch, read_log
from edge_runtime.config import Config, ConfigError, tomllib
from hardware.camera import CameraConfig, make_replay_videos
from hardware.robot import McuConfig, RobotBody, RobotConfig
from hardware.sensor_calibration import energy_from_mv
from hardware.virtual_mcu import VirtualMCU, VirtualMcuConfig
from hardware.virtual_wiring import RAW_ADC_GAIN, RAW_ADC_OFFSET_MV, RAW_OCV, _interp


def cli(*args, stdin=""):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "calibrate", *args], capture_output=True, text=True,
                       input=stdin, timeout=300)
    return p.returncode, p.stdout, p.stderr


def _raw_reading(soc: float, cfg: VirtualMcuConfig) -> float:
    """What the raw board reports at rest for a state of charge (the truth the curve must recover)."""
    v = cfg.empty_mv + (cfg.full_mv - cfg.empty_mv) * _interp(soc, RAW_OCV)
    return v * RAW_ADC_GAIN + RAW_ADC_OFFSET_MV


def test_battery_curve_from_a_live_discharge_recovers_the_pack(tmp_path):
    vcfg = VirtualMcuConfig(raw=True, battery_s=10.0, report_hz=100.0, seed=4, recharge_on_revive=False)
    (tmp_path / "robot.toml").write_text('[mcu]\nport = "virtual"\n[mcu.virtual]\nraw = true\nbattery_s = 10.0\n'
                                         'report_hz = 100.0\nseed = 4\nrecharge_on_revive = false\n')
    rc, out, err = cli("battery", "--config", str(tmp_path / "robot.toml"), "--record", str(tmp_path / "d.jsonl"),
                       "--minutes", "1", "--out", str(tmp_path / "battery.toml"), "--json")
    assert rc == 0, err
    res = json.loads(out)
    assert res["readings"] > 500 and len(read_log(tmp_path / "d.jsonl")) == res["readings"]
    curve = tomllib.loads((tmp_path / "battery.toml").read_text())["robot"]["energy_curve"]
    Config.from_dict({"robot": {"energy_curve": curve}})  # a valid robot config as written
    socs = np.linspace(0.05, 1.0, 39)
    calibrated = [abs(energy_from_mv(_raw_reading(s, vcfg), curve) - s) for s in socs]
    rc_ = RobotConfig()  # the uncalibrated mapping: linear from empty_mv to full_mv
    linear = [abs(min(1, max(0, (_raw_reading(s, vcfg) - rc_.empty_mv) / (rc_.full_mv - rc_.empty_mv))) - s) for s in socs]
    assert max(calibrated) < 0.05  # within 5% of the true charge everywhere
    assert max(linear) > 0.12  # ...where the straight line is off by more than twice that


def test_battery_fit_from_a_csv_log_and_bad_logs(tmp_path):
    t = np.linspace(0, 3600, 400)
    soc = 1 - t / 3600
    mv = 6000 + 2400 * soc ** 0.5  # a made-up monotone pack
    (tmp_path / "d.csv").write_text("t,battery_mv\n" + "".join(f"{a},{b:.0f}\n" for a, b in zip(t, mv)))
    curve = fit_energy_curve(read_log(tmp_path / "d.csv"))
    assert max(abs(energy_from_mv(6000 + 2400 * s ** 0.5, curve) - s) for s in np.linspace(0, 1, 21)) < 0.06
    with pytest.raises(SensorCalibrationError, match="at least"):
        fit_energy_curve([{"t": 0, "battery_mv": 8000}] * 10)
    with pytest.raises(SensorCalibrationError, match="only moved"):
        fit_energy_curve([{"t": i, "battery_mv": 8000 + i % 3} for i in range(200)])
    with pytest.raises(SensorCalibrationError, match="backwards"):
        fit_energy_curve([{"t": -i, "battery_mv": 8000 - i} for i in range(200)])
    (tmp_path / "bad.csv").write_text("t,volts\n1,2\n")
    with pytest.raises(SensorCalibrationError, match="line 2: needs t and battery_mv"):
        read_log(tmp_path / "bad.csv")
    rc, _, err = cli("battery", "--log", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "b.toml"))
    assert rc == 2 and "no such file" in err


def test_a_bad_energy_curve_names_the_field():
    with pytest.raises(ConfigError, match="robot.energy_curve: energy must not decrease"):
        Config.from_dict({"robot": {"energy_curve": [[6500, 0.5], [7000, 0.2]]}})
    with pytest.raises(ConfigError, match="robot.energy_curve: mV must increase"):
        Config.from_dict({"robot": {"energy_curve": [[7000, 0.0], [7000, 1.0]]}})
    with pytest.raises(ConfigError, match="robot.touch_threshold"):
        Config.from_dict({"robot": {"touch_threshold": [300.0]}})


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_replay_videos(str(tmp_path_factory.mktemp("vid")), frames=12, size=(64, 48))


def test_touch_thresholds_from_idle_readings_silence_idle_channels(tmp_path, videos):
    vm = VirtualMCU(VirtualMcuConfig(raw=True, n_touch=4, seed=7, bump_rate_hz=0.0))
    port = vm.start()
    try:
        (tmp_path / "robot.toml").write_text(f'[mcu]\nport = "{port}"\n')
        rc, out, err = cli("touch", "--config", str(tmp_path / "robot.toml"), "--seconds", "1.5",
                           "--out", str(tmp_path / "touch.toml"), "--json", stdin="\n")
        assert rc == 0, err
        t = json.loads(out)
        assert t["readings"] > 30 and len(t["threshold"]) == 4
        assert all(b > 10 for b in t["baseline"])  # raw channels idle well above 0
        thr = tomllib.loads((tmp_path / "touch.toml").read_text())["robot"]["touch_threshold"]
        cam = CameraConfig(backend="replay", left=videos[0], right=videos[1])
        for calibrated in (False, True):
            rcfg = RobotConfig(control_hz=50, touch_threshold=tuple(thr) if calibrated else ())
            with RobotBody(rcfg, cam, McuConfig(port=port)) as body:
                body.reset()
                idle = [body.act((1, 1)).touch.copy() for _ in range(30)]
                vm.bump(channel=2)
                bumped = max(float(body.act((1, 1)).touch[2]) for _ in range(5))
                time.sleep(vm.cfg.bump_ms / 1000 + 0.1)  # the bump switch opens again before the next round
            if calibrated:
                assert np.max(idle) == 0.0  # nothing touches the robot: every channel reads 0
            else:
                assert np.min(np.mean(idle, 0)) > 0.04  # uncalibrated, idle channels read their baseline
            assert bumped > 0.5  # a bump still reads as one
    finally:
        vm.close()


def test_touch_fit_needs_idle_readings():
    with pytest.raises(SensorCalibrationError, match="at least 20"):
        fit_touch([{"touch": [1, 2]}] * 5)
    t = fit_touch([{"touch": [20 + (i % 3), 40]} for i in range(100)], k=4)
    assert t["threshold"][0] == pytest.approx(21 + 4 * np.std([20, 21, 22] * 33 + [20]), abs=0.2)
    assert t["threshold"][1] == 42.0  # a channel that never moved still gets a margin (noise floor 0.5)
