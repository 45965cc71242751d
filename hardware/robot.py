"""The real robot as a Body: stereo camera + MCU link + the mapping from hardware to what the body feels.

    battery (filtered mV)            -> energy 0..1 (empty_mv .. full_mv)
    bump events (MCU bump counter)   -> injury: hp -= bump_damage each
    motor current above spike_ma     -> injury: hp -= spike_damage_per_s while it lasts
    tilt flag                        -> death (if tilt_is_death)
    no injury for regen_delay_s      -> hp += regen_per_s (slow recovery)
    hp <= 0, or battery below critical_mv for critical_hold_s -> death

On death the motors are stopped, the MCU is told (it blinks its LED and
refuses to drive), and the body waits to be revived: the MCU's button, a
timeout (as robot.revive says), or revive() (the console). It is `Revivable`:
the runtime polls poll_revive() and keeps serving the console and the watchdog
meanwhile. It is `MotorControl`: the console can stop and hold the motors.

Bumps come from the link's running total (hardware.mcu_link), which already
drops duplicate and late reports and re-bases on every board (re)boot: a
reboot, a duplicated or a reordered report can never hurt the body. Action heads are ordered
like the arena's (drive: back/stop/forward, turn: left/none/right), so the
same brain config fits both bodies.

Config sections: [robot] (RobotConfig), [camera] (hardware.camera.CameraConfig),
[mcu] (McuConfig, required: port is a serial device, or "virtual" to start a
virtual MCU in this process with its settings in [mcu.virtual]). docs/hardware.md documents every field.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass

import numpy as np

from edge_runtime.body import DRIVE, DRIVE_TURN_HEADS, TURN, Action, Body, BodySpec, MotorControl, Revivable, Sense
from edge_runtime.config import ConfigError, check

from . import protocol as P
from .camera import CameraConfig, StereoCamera, open_stereo
from .mcu_link import McuLink, McuLinkError, McuVersionError
from .sensor_calibration import check_energy_curve, check_touch_threshold, energy_from_mv, touch_from_raw
from .virtual_mcu import VirtualMCU, VirtualMcuConfig

log = logging.getLogger("hardware.robot")



@dataclass
class RobotConfig:
    eye_h: int = 48
    eye_w: int = 64
    control_hz: float = 10.0  # body steps per second; 0 = as fast as camera and loop allow
    drive_power: int = 600  # permille of full motor power for drive forward/back
    turn_power: int = 400  # permille added/subtracted per side for a turn
    full_mv: int = 8400  # energy 1.0
    empty_mv: int = 6600  # energy 0.0
    critical_mv: int = 6500  # below this (filtered) for critical_hold_s: death
    critical_hold_s: float = 1.0
    battery_filter_s: float = 1.0  # time constant of the battery low-pass (sag under load, noise)
    bump_damage: float = 0.2  # hp per bump event
    spike_ma: int = 1800  # motor current counted as a collision/stall
    spike_damage_per_s: float = 0.5
    tilt_is_death: bool = True
    regen_per_s: float = 0.01  # slow hp recovery
    regen_delay_s: float = 3.0  # ...starting this long after the last injury
    revive: str = "button"  # button | timeout | manual | "button,timeout" ...; revive() always works
    revive_timeout_s: float = 30.0
    revive_min_energy: float = 0.2  # a body that died of a flat battery comes back only above this
    report_timeout_s: float = 0.5  # a sensor report older than this marks the step as link-down
    link_wait_s: float = 3.0  # how long one step waits for a lost MCU link to come back
    decision_steps: int = 4  # control steps per decision the robot is made for (its spec's action_repeat)
    # from `edge-runtime calibrate battery|touch` (hardware/sensor_calibration.py); empty: the linear defaults
    energy_curve: tuple[tuple[float, float], ...] = ()  # [[filtered mV, energy], ...], monotone
    touch_threshold: tuple[float, ...] = ()  # per touch channel, raw 0..255: below it a channel reads 0

    def __post_init__(self):
        w = "robot"
        check_energy_curve(self.energy_curve)
        check_touch_threshold(self.touch_threshold)
        check(self.eye_h >= 16 and self.eye_w >= 16, f"{w}.eye_h", "eye_h and eye_w must be >= 16")
        check(self.control_hz >= 0, f"{w}.control_hz", "must be >= 0")
        check(self.decision_steps >= 1, f"{w}.decision_steps", "must be >= 1")
        check(0 < self.drive_power <= P.MOTOR_MAX, f"{w}.drive_power", f"must be in 1..{P.MOTOR_MAX}")
        check(0 <= self.turn_power <= P.MOTOR_MAX, f"{w}.turn_power", f"must be in 0..{P.MOTOR_MAX}")
        check(self.empty_mv < self.full_mv, f"{w}.empty_mv", "must be < full_mv")
        check(self.critical_mv <= self.empty_mv, f"{w}.critical_mv", "must be <= empty_mv")
        check(self.critical_hold_s >= 0, f"{w}.critical_hold_s", "must be >= 0")
        check(self.battery_filter_s >= 0, f"{w}.battery_filter_s", "must be >= 0")
        check(0 <= self.bump_damage <= 1, f"{w}.bump_damage", "must be in [0, 1]")
        check(self.spike_ma > 0, f"{w}.spike_ma", "must be > 0")
        check(self.spike_damage_per_s >= 0, f"{w}.spike_damage_per_s", "must be >= 0")
        check(self.regen_per_s >= 0, f"{w}.regen_per_s", "must be >= 0")
        check(self.regen_delay_s >= 0, f"{w}.regen_delay_s", "must be >= 0")
        modes = [m.strip() for m in self.revive.split(",") if m.strip()]
        check(bool(modes) and all(m in ("button", "timeout", "manual") for m in modes), f"{w}.revive",
              f"must be button, timeout, manual or a comma list of them, got {self.revive!r}")
        check(self.revive_timeout_s > 0, f"{w}.revive_timeout_s", "must be > 0")
        check(0 <= self.revive_min_energy < 1, f"{w}.revive_min_energy", "must be in [0, 1)")
        check(self.report_timeout_s > 0, f"{w}.report_timeout_s", "must be > 0")
        check(self.link_wait_s >= 0, f"{w}.link_wait_s", "must be >= 0")

    @property
    def revive_modes(self) -> set[str]:
        return {m.strip() for m in self.revive.split(",") if m.strip()}


@dataclass
class McuConfig:
    port: str = ""  # required: serial device (prefer /dev/serial/by-id/...), or "virtual" for an in-process virtual MCU
    baud: int = 115200
    connect_timeout_s: float = 5.0
    silent_s: float = 0.5  # no frame for this long: the MCU is silent, reopen the port
    heartbeat_s: float = 0.1
    touch: int = -1  # expected touch channels; -1: whatever the MCU's hello says
    virtual: VirtualMcuConfig | None = None  # [mcu.virtual]: the simulated board's settings (port = "virtual")

    def __post_init__(self):
        w = "mcu"
        check(bool(self.port), f"{w}.port", "required: the MCU's serial device (prefer /dev/serial/by-id/...), "
              "or \"virtual\" for the simulated board")
        check(self.baud > 0, f"{w}.baud", "must be > 0")
        check(self.connect_timeout_s > 0, f"{w}.connect_timeout_s", "must be > 0")
        check(self.silent_s > 0, f"{w}.silent_s", "must be > 0")
        check(0 < self.heartbeat_s < self.silent_s, f"{w}.heartbeat_s", "must be > 0 and < silent_s")
        check(-1 <= self.touch <= P.MAX_TOUCH, f"{w}.touch", f"must be -1 or 0..{P.MAX_TOUCH}")
        check(self.virtual is None or isinstance(self.virtual, VirtualMcuConfig), f"{w}.virtual", "must be a table")


def robot_configs(cfg) -> tuple[RobotConfig, CameraConfig, McuConfig]:
    """The robot's three sections of a runtime Config; [camera] and [mcu] have no defaults to fall back on."""
    if not cfg.has("camera"):
        raise ConfigError("camera: section needed for the robot body ([camera] backend, left, right)")
    if not cfg.has("mcu"):
        raise ConfigError("mcu: section needed for the robot body: [mcu] port = \"/dev/serial/by-id/...\" "
                          "(or port = \"virtual\" for the simulated board)")
    return cfg.section("robot"), cfg.section("camera"), cfg.section("mcu")


def connect_mcu(mcu: McuConfig) -> tuple[McuLink, VirtualMCU | None]:
    """A started link to the configured board; for port = "virtual", an in-process virtual board behind it (also
    returned, to close). On a failure nothing is left running."""
    vmcu, port = None, mcu.port
    if port == "virtual":
        vmcu = VirtualMCU(mcu.virtual or VirtualMcuConfig())
        port = vmcu.start()
        log.info("virtual MCU on %s", port)
    link = McuLink(port, mcu.baud, silent_s=mcu.silent_s, heartbeat_s=mcu.heartbeat_s)
    try:
        link.start(wait_s=mcu.connect_timeout_s)
    except BaseException:
        link.close()
        if vmcu is not None:
            vmcu.close()
        raise
    return link, vmcu


class RobotBody(Body, MotorControl, Revivable):
    def __init__(self, robot: RobotConfig, camera: CameraConfig | StereoCamera, mcu: McuConfig):
        self.cfg = robot
        self.mcu_cfg = mcu
        self.vmcu = None
        self.link: McuLink | None = None
        self.camera: StereoCamera | None = None
        self._closed = False
        self._revive = threading.Event()
        self._interrupted = threading.Event()
        self.counts = {"deaths": 0, "bumps": 0, "revived": 0, "link_down_steps": 0, "battery_deaths": 0,
                       "tilt_deaths": 0, "injury_deaths": 0, "old_report_steps": 0}
        try:
            self.link, self.vmcu = connect_mcu(mcu)
            port = self.link.port
            n_touch = self.link.hello.n_touch
            if mcu.touch >= 0 and mcu.touch != n_touch:
                raise ConfigError(f"mcu.touch: config says {mcu.touch} touch channels, the MCU on {port} reports {n_touch}")
            if robot.touch_threshold and len(robot.touch_threshold) != n_touch:
                raise ConfigError(f"robot.touch_threshold: {len(robot.touch_threshold)} thresholds, the MCU on {port} "
                                  f"reports {n_touch} touch channels (calibrate touch again for this board)")
            self._touch_thr = np.asarray(robot.touch_threshold, np.float32) if robot.touch_threshold else None
            self.spec = BodySpec(eye_shape=(robot.eye_h, robot.eye_w), touch_channels=n_touch,
                                 action_heads=DRIVE_TURN_HEADS, control_hz=robot.control_hz or 10.0, name="Robot",
                                 still=(1, 1), action_repeat=robot.decision_steps)
            self.camera = camera if isinstance(camera, StereoCamera) else open_stereo(camera, (robot.eye_h, robot.eye_w))
        except BaseException:
            self.close()
            raise
        self._init_state()

    # ---------------------------------------------------------------- state
    def _init_state(self):
        now = time.monotonic()
        self.hp = 1.0
        self.dead = False
        self.cause = ""
        self.t_death = 0.0
        self.mv_f: float | None = None
        self._bumps_seen: int | None = None  # the link's bump total at the last report this body felt
        self.last_injury = -1e9
        self.t_last = now
        self.t_next = now
        self.critical_since: float | None = None
        self.button_prev = False
        self.touch = np.zeros(self.spec.touch_channels, np.float32)
        self.report: P.SensorReport | None = None
        self.link_ok = False
        self._said_battery = False
        self._last_state_t = 0.0

    @property
    def energy(self) -> float:
        c = self.cfg
        if self.mv_f is None:
            return 1.0
        if c.energy_curve:
            return energy_from_mv(self.mv_f, c.energy_curve)
        return float(min(1.0, max(0.0, (self.mv_f - c.empty_mv) / (c.full_mv - c.empty_mv))))

    @property
    def counters(self) -> dict:
        d = dict(self.counts)
        if self.link:
            d.update({f"mcu_{k}": v for k, v in self.link.counters().items()})
        if self.camera:
            d.update({f"cam_{k}": v for k, v in self.camera.stats.as_dict().items()})
        return d

    # ---------------------------------------------------------------- the contract
    def reset(self, seed: int | None = None) -> Sense:
        self.link.stop_motors()
        self.link.send_state(False)
        self._init_state()
        sense = self._sense(feel=False)
        if self.mv_f is not None and self.mv_f < self.cfg.critical_mv:  # switched on flat: dead until charged
            self.dead, self.cause, self.t_death = True, "battery", time.monotonic()
            self.link.send_state(True)
            log.warning("battery at %.0f mV (critical %d mV): dead until charged and revived", self.mv_f, self.cfg.critical_mv)
            return self._sense(feel=False)
        return sense

    def act(self, action: Action) -> Sense:
        if self.dead:
            raise RuntimeError("Robot: act() on a dead body; wait for poll_revive() or call revive()")
        drive, turn = self.spec.normalize_action(action)
        c = self.cfg
        d, t = DRIVE[drive] * c.drive_power, TURN[turn] * c.turn_power
        if self.motors_held:  # console `motors stop`: the brain acts, the wheels do not
            d = t = 0.0
        self.link.send_motor(int(d - t), int(d + t))
        if c.control_hz > 0:  # hold the action for one control period
            self.t_next = max(self.t_next + 1.0 / c.control_hz, time.monotonic() - 1.0 / c.control_hz)
            wait = self.t_next - time.monotonic()
            if wait > 0:
                time.sleep(wait)
        sense = self._sense(feel=True)
        if sense.dead:
            self._die()
        return sense

    # -- MotorControl (the held flag is the capability's; stopping also tells the board at once)
    def stop_motors(self) -> None:
        super().stop_motors()
        self.link.stop_motors()

    # -- Revivable
    @property
    def waiting_for(self) -> str:
        if not self.dead:
            return "nothing (alive)"
        if self.cause == "battery" and self.energy < self.cfg.revive_min_energy:
            return f"a charged battery ({self.mv_f or 0:.0f} mV now), then a revive"
        return " or ".join(sorted(self.cfg.revive_modes | {"console revive"}))

    def poll_revive(self) -> Sense | None:
        if not self.dead:
            return None
        c = self.cfg
        self._sense(feel=False, wait_s=min(0.2, c.link_wait_s))  # keep reading the board (battery, button)
        now = time.monotonic()
        if now - self._last_state_t > 0.5:  # repeat: a board that rebooted must learn it is dead
            self.link.stop_motors()
            self.link.send_state(True)
            self._last_state_t = now
        pressed = self.report is not None and bool(self.report.flags & P.FLAG_BUTTON)
        trig = self._revive.is_set() or ("button" in c.revive_modes and pressed and not self.button_prev) \
            or ("timeout" in c.revive_modes and now - self.t_death >= c.revive_timeout_s)
        self.button_prev = pressed
        self._revive.clear()
        return self.revive() if trig else None

    def request_revive(self):
        """Thread-safe: the next poll_revive() revives the body (like pressing its button)."""
        self._revive.set()

    def revive(self) -> Sense | None:
        c = self.cfg
        if self.dead and self.cause == "battery" and self.energy < c.revive_min_energy:
            if not self._said_battery:
                log.warning("revive asked, but the battery is at %.0f mV: charge or swap it", self.mv_f or 0)
                self._said_battery = True
            return None
        self.counts["revived"] += 1
        self.hp = 1.0
        self.dead = False
        self.cause = ""
        self.critical_since = None
        self.last_injury = -1e9
        self._said_battery = False
        self.link.send_state(False)
        self.t_next = time.monotonic()
        log.info("revived")
        return self._sense(feel=False)

    def interrupt(self):
        """End a blocking respawn() wait at once (a stop was requested)."""
        self._interrupted.set()

    def respawn(self) -> Sense:
        """Block until revived (button / timeout / revive(), per robot.revive), or interrupt()/close().

        The runtime does not use this (it polls poll_revive()); it is here for the Body contract."""
        if not self.dead:
            return self._sense(feel=False)
        self.link.stop_motors()
        self.link.send_state(True)
        log.info("dead (%s): waiting for %s", self.cause, self.waiting_for)
        while not self._closed:
            if self._interrupted.is_set():  # stay dead, motors stopped
                self._interrupted.clear()
                log.info("stop requested while dead: not waiting for a revive")
                return self._sense(feel=False)
            s = self.poll_revive()
            if s is not None:
                return s
            time.sleep(0.02)
        return self._sense(feel=False)

    def close(self):
        if self._closed:
            return
        self._closed = True
        if self.link is not None:
            self.link.close()  # sends STOP before letting go of the port
        if self.camera is not None:
            self.camera.close()
        if self.vmcu is not None:
            self.vmcu.close()

    # ---------------------------------------------------------------- hardware -> feeling
    def _die(self):
        self.counts["deaths"] += 1
        if self.cause == "injury":
            self.counts["injury_deaths"] += 1
        self.t_death = time.monotonic()
        self._last_state_t = self.t_death
        self.link.stop_motors()
        self.link.send_state(True)
        log.info("death: %s", self.cause)

    def _fresh_report(self, wait_s: float, count: bool = True):
        """The newest report if it is recent; else wait up to wait_s for one (the link may be reconnecting)."""
        if self.link.version_error:
            raise McuVersionError(self.link.version_error)
        c = self.cfg
        latest = self.link.latest
        now = time.monotonic()
        if latest is not None and now - latest.t <= c.report_timeout_s:
            return latest
        if count:
            self.counts["old_report_steps"] += 1
        return self.link.wait_report(now - c.report_timeout_s, wait_s)

    def _sense(self, feel: bool, wait_s: float | None = None) -> Sense:
        c = self.cfg
        frame = self.camera.read()
        report = self._fresh_report(c.link_wait_s if wait_s is None else wait_s, count=feel)
        rep = report.msg if report is not None else None
        now = time.monotonic()
        dt = max(0.0, min(1.0, now - self.t_last))
        self.t_last = now
        self.link_ok = rep is not None
        if rep is None and feel:  # (a dead body's polls are not steps)
            self.counts["link_down_steps"] += 1
        else:
            self.report = rep
            a = 1.0 if self.mv_f is None or c.battery_filter_s == 0 else 1 - math.exp(-dt / c.battery_filter_s)
            self.mv_f = rep.battery_mv if self.mv_f is None else self.mv_f + a * (rep.battery_mv - self.mv_f)
            raw = np.asarray(rep.touch[: self.spec.touch_channels], np.float32)
            self.touch = raw / 255.0 if self._touch_thr is None else touch_from_raw(raw, self._touch_thr[:len(raw)])
            if self.touch.shape[0] < self.spec.touch_channels:
                self.touch = np.pad(self.touch, (0, self.spec.touch_channels - self.touch.shape[0]))
            # the link's running total is already free of duplicates, late reports and board restarts
            new_bumps = 0 if self._bumps_seen is None else max(0, report.bumps_total - self._bumps_seen)
            self._bumps_seen = report.bumps_total
            if feel and not self.dead:
                injury = new_bumps * c.bump_damage
                if max(abs(rep.current_left_ma), abs(rep.current_right_ma)) > c.spike_ma or rep.flags & P.FLAG_STALL:
                    injury += c.spike_damage_per_s * dt
                self.counts["bumps"] += new_bumps
                if injury > 0:
                    self.hp -= injury
                    self.last_injury = now
                elif now - self.last_injury >= c.regen_delay_s:
                    self.hp = min(1.0, self.hp + c.regen_per_s * dt)
                if rep.flags & P.FLAG_TILT and c.tilt_is_death:
                    self.hp = 0.0
                    self.cause = "tilt"
                    self.counts["tilt_deaths"] += 1
                if self.mv_f < c.critical_mv:
                    self.critical_since = now if self.critical_since is None else self.critical_since
                    if now - self.critical_since >= c.critical_hold_s and not self.cause:
                        self.cause = "battery"
                        self.counts["battery_deaths"] += 1
                        self.dead = True
                else:
                    self.critical_since = None
                if self.hp <= 0:
                    self.hp = 0.0
                    self.cause = self.cause or "injury"
                    self.dead = True
        extra = {"link": self.link_ok, "skew_ms": frame.skew_ms, "stale": frame.stale,
                 "battery_mv": rep.battery_mv if rep else None, "flags": rep.flags if rep else None}
        if self.dead:
            extra["cause"] = self.cause
        return Sense(left=frame.left, right=frame.right, touch=self.touch.copy(), hp=float(self.hp),
                     energy=self.energy, dead=bool(self.dead), t=now, frame_id=frame.frame_id, extra=extra)


def build_robot_body(cfg) -> RobotBody:
    """The robot body from a runtime Config ([robot], [camera], [mcu])."""
    robot, camera, mcu = robot_configs(cfg)
    try:
        return RobotBody(robot, camera, mcu)
    except McuVersionError:
        raise  # not a config problem: firmware and host disagree (the message names the port and both versions)
    except McuLinkError as e:
        raise ConfigError(f"mcu.port: {e}") from None
