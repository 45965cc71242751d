"""The real body this package offers the runtime (entry point `edge_runtime.bodies` in pyproject.toml)."""
from __future__ import annotations

from edge_runtime.bodies import BodyError, BodyKind


def _make_robot(cfg, arg):
    from .camera import CameraError
    from .robot import build_robot_body

    try:
        return build_robot_body(cfg)
    except CameraError as e:
        raise BodyError(str(e)) from None


ROBOT = BodyKind("robot", _make_robot, "the robot: stereo cameras + the MCU on a serial port ([robot] [camera] [mcu])",
                 selected_by=("robot", "camera", "mcu"),
                 config_sections={"robot": "hardware.robot:RobotConfig", "camera": "hardware.camera:CameraConfig",
                                  "mcu": "hardware.robot:McuConfig"})
