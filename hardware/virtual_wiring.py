"""What the virtual MCU is wired to: the battery, the motors' currents, the bump switches, the revive button.

The firmware half (hardware/virtual_mcu.py) reads these the way the real board reads its ADC and GPIO pins;
this half is the simulated robot around the board:

* a 2S pack whose state of charge drains with the current drawn (idle + motors, more while a motor pushes
  against something) and whose voltage sags under load (internal resistance); flat, it reads below the board's
  cut-off;
* bump switches that close at random while driving, at a rate proportional to motor load, for `bump_ms`, with a
  stall current while they are closed;
* sensor noise on voltage, currents and touch;
* the revive button (held for a moment when pressed).

Raw mode (`raw = true`), readings as an uncalibrated board gives them, so `edge-runtime calibrate battery` and
`calibrate touch` have something to calibrate:

* the pack's open-circuit voltage follows a Li-ion discharge curve (steep when full and nearly empty, flat in
  between: RAW_OCV), not a straight line, and the board's ADC reads it with a gain and an offset error
  (RAW_ADC_GAIN, RAW_ADC_OFFSET_MV) in steps of RAW_ADC_LSB_MV;
* every touch channel idles at its own baseline with its own noise (drawn once per board from the seed), not 0.
"""
from __future__ import annotations

import random

from . import protocol as P

BUMP_TOUCH_LEVEL = 230.0  # what a closed bump switch reads on its touch channel (0..255)

# raw mode: (state of charge, fraction of the way from empty_mv to full_mv) of a Li-ion cell at rest
RAW_OCV = ((0.0, 0.0), (0.05, 0.25), (0.1, 0.38), (0.2, 0.48), (0.3, 0.53), (0.4, 0.57), (0.5, 0.61),
           (0.6, 0.66), (0.7, 0.72), (0.8, 0.79), (0.9, 0.87), (1.0, 1.0))
RAW_ADC_GAIN, RAW_ADC_OFFSET_MV, RAW_ADC_LSB_MV = 1.035, -90.0, 8.0


class VirtualWiring:
    """The simulated robot around the virtual board. `cfg` is a VirtualMcuConfig; counts bumps into `stats`."""

    def __init__(self, cfg, rng: random.Random, stats):
        self.cfg = cfg
        self.rng = rng
        self.stats = stats
        self.soc = 1.0  # state of charge
        self.bump_until = 0.0
        self.bump_channel = 0
        self.button_until = 0.0
        self.currents_ma = (0.0, 0.0)  # per motor, unsigned
        self.total_a = 0.0
        # raw mode: each touch channel's idle level and noise, fixed for this board
        self.touch_base = [rng.uniform(12, 60) if cfg.raw else 0.0 for _ in range(cfg.n_touch)]
        self.touch_noise = [rng.uniform(2, 6) if cfg.raw else cfg.noise_touch for _ in range(cfg.n_touch)]

    def battery_mv(self, current_a: float) -> int:
        """The pack's voltage while `current_a` flows (no noise)."""
        c = self.cfg
        shape = self.soc
        if c.raw:
            shape = _interp(self.soc, RAW_OCV)
        v = c.empty_mv + (c.full_mv - c.empty_mv) * shape - current_a * c.internal_mohm
        if self.soc <= 0:
            v = c.low_battery_mv - 200
        return int(max(0, v))

    def bumping(self, now: float) -> bool:
        return now < self.bump_until

    def button(self, now: float) -> bool:
        return now < self.button_until

    def press_button(self, now: float, seconds: float = 0.3):
        self.button_until = now + seconds

    def start_bump(self, now: float, channel: int | None = None):
        """A bump switch closes now, on `channel` (random when None)."""
        self.bump_until = now + self.cfg.bump_ms / 1000
        n = max(1, self.cfg.n_touch)
        self.bump_channel = self.rng.randrange(n) if channel is None else int(channel) % n
        self.stats.bumps += 1

    def step(self, now: float, dt: float, left: int, right: int):
        """`dt` seconds pass with the motors at (left, right) permille: random bumps, currents, the battery drains."""
        c = self.cfg
        load = (abs(left) + abs(right)) / (2 * P.MOTOR_MAX)
        if load > 0 and not self.bumping(now) and self.rng.random() < c.bump_rate_hz * load * dt:
            self.start_bump(now)
        per_motor = c.stall_ma if self.bumping(now) else c.motor_ma
        il = per_motor * abs(left) / P.MOTOR_MAX
        ir = per_motor * abs(right) / P.MOTOR_MAX
        total_ma = c.idle_ma + il + ir
        capacity_mas = c.idle_ma * c.battery_s  # mA*s from full to empty at idle
        self.soc = max(0.0, self.soc - total_ma * dt / capacity_mas)
        self.currents_ma = (il, ir)
        self.total_a = total_ma / 1000

    def readings(self, now: float, left: int, right: int) -> tuple[int, int, int, tuple[int, ...]]:
        """What the board's ADCs read now: battery mV, signed motor currents (mA), touch channels (0..255)."""
        c = self.cfg
        g = self.rng.gauss
        mv = self.battery_mv(self.total_a) + g(0, c.noise_mv)
        if c.raw:  # what an uncalibrated ADC makes of it
            mv = round((mv * RAW_ADC_GAIN + RAW_ADC_OFFSET_MV) / RAW_ADC_LSB_MV) * RAW_ADC_LSB_MV
        mv = int(mv)
        il, ir = self.currents_ma
        il = int((il + g(0, c.noise_ma)) * (1 if left >= 0 else -1))
        ir = int((ir + g(0, c.noise_ma)) * (1 if right >= 0 else -1))
        bumping = self.bumping(now)
        touch = tuple(int(min(255, max(0, (BUMP_TOUCH_LEVEL if bumping and ch == self.bump_channel else 0.0)
                                       + self._idle_touch(ch)))) for ch in range(c.n_touch))
        return max(0, mv), max(-32768, min(32767, il)), max(-32768, min(32767, ir)), touch

    def _idle_touch(self, ch: int) -> float:
        noise = self.rng.gauss(0, self.touch_noise[ch])
        return self.touch_base[ch] + noise if self.cfg.raw else abs(noise)


def _interp(x: float, table) -> float:
    for (x0, y0), (x1, y1) in zip(table, table[1:]):
        if x <= x1:
            return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
    return table[-1][1]
