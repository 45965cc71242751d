"""`edge-runtime virtual-mcu`: a virtual MCU on a pty until quit, its faults played by commands on stdin.

The command table (COMMANDS) is the one place the commands are defined: the
`help` text and docs/hardware.md list the same.
"""
from __future__ import annotations

import json
import sys
import time

from .virtual_mcu import VirtualMCU, VirtualMcuConfig

def _n(args, default=None, kind=int):
    if not args:
        if default is None:
            raise ValueError("needs a number")
        return default
    v = kind(args[0])
    if v < 0:
        raise ValueError("must be >= 0")
    return v


# command -> (what it does, how it runs); the same table is the `help` text and the docs' list
COMMANDS = {
    "noise": ("P: corrupt outgoing frames with probability P", lambda vm, a: vm.set_line_noise(_n(a, kind=float))),
    "stall": ("S: firmware hangs S s, then its watchdog resets it", lambda vm, a: vm.stall(_n(a, kind=float))),
    "unplug": ("S: cable out for S s (the board reboots)", lambda vm, a: vm.unplug(_n(a, kind=float))),
    "reboot": ("the board resets now", lambda vm, a: vm.reboot()),
    "brownout": ("battery sag: motors off, reset", lambda vm, a: vm.brownout()),
    "garbage": ("N: N random bytes on the line", lambda vm, a: vm.garbage(_n(a, 32))),
    "dup": ("N: the next N sensor reports sent twice", lambda vm, a: vm.duplicate_reports(_n(a, 1))),
    "reorder": ("N: the next N pairs of reports swapped", lambda vm, a: vm.reorder_reports(_n(a, 1))),
    "drop": ("N: the next N sensor reports lost", lambda vm, a: vm.drop_reports(_n(a, 1))),
    "version": ("V: speak protocol version V", lambda vm, a: vm.set_version(_n(a))),
    "button": ("press the revive button", lambda vm, a: vm.press_button()),
    "bump": ("[CH]: a bump (on touch channel CH)", lambda vm, a: vm.bump(_n(a) if a else None)),
    "recharge": ("a full battery", lambda vm, a: vm.recharge()),
    "status": ("the board's state and counters (JSON)", lambda vm, a: None),
}


def serve(argv: list[str]) -> int:
    """`edge-runtime virtual-mcu`: run a virtual MCU until quit/Ctrl-C, commands on stdin."""
    import argparse

    ap = argparse.ArgumentParser(prog="edge-runtime virtual-mcu", description=__doc__.split("\n\n")[0])
    ap.add_argument("--link", default=None, help="device path to create (a symlink to the pty); default: a temp dir")
    ap.add_argument("--touch", type=int, default=8, help="touch channels")
    ap.add_argument("--battery-s", type=float, default=600.0, help="seconds of battery at idle current")
    ap.add_argument("--failsafe-ms", type=int, default=300)
    ap.add_argument("--bump-rate", type=float, default=0.5, help="bumps per second at full drive")
    ap.add_argument("--line-noise", type=float, default=0.0, help="probability of a corrupted outgoing frame")
    ap.add_argument("--revive-after", type=float, default=2.0, help="seconds after death until the button is pressed (0: never)")
    ap.add_argument("--events", default=None, metavar="FILE", help="append one JSON line per board event (monotonic clock)")
    ap.add_argument("--seed", type=int, default=None)
    a = ap.parse_args(argv)
    try:
        cfg = VirtualMcuConfig(n_touch=a.touch, battery_s=a.battery_s, failsafe_ms=a.failsafe_ms, bump_rate_hz=a.bump_rate,
                               line_noise=a.line_noise, revive_after_s=a.revive_after, seed=a.seed)
    except ValueError as e:
        print(f"edge-runtime virtual-mcu: error: {e}", file=sys.stderr)
        return 2
    vm = VirtualMCU(cfg, link=a.link, events=a.events)
    vm.start()
    print(vm.path, flush=True)
    print(f"virtual MCU on {vm.path} -> {vm._pty_name}; commands: {' | '.join(COMMANDS)} | help | quit",
          file=sys.stderr, flush=True)
    try:
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            cmd, args = words[0], words[1:]
            if cmd == "quit":
                break
            if cmd == "help":
                print("\n".join(f"  {k:<9} {v[0]}" for k, v in COMMANDS.items()), file=sys.stderr, flush=True)
                continue
            if cmd not in COMMANDS:
                print(f"unknown command {cmd!r} (help lists them)", file=sys.stderr, flush=True)
                continue
            try:
                COMMANDS[cmd][1](vm, args)
            except (ValueError, IndexError) as e:
                print(f"{cmd}: bad argument ({e})", file=sys.stderr, flush=True)
                continue
            print(json.dumps(vm.status()), file=sys.stderr, flush=True)
        else:  # stdin closed (e.g. started in the background): run until interrupted
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        vm.close()
    return 0
