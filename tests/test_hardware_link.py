"""Host link <-> virtual MCU over a real pty: senses flow, commands arrive, failsafe, unplug, stall, line noise, stop on exit."""
import os
import time

import pytest

from hardware import protocol as P
from hardware.mcu_link import McuLink, McuLinkError
from hardware.virtual_mcu import VirtualMCU, VirtualMcuConfig


def wait_for(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.01)
    return cond()


@pytest.fixture
def vmcu():
    vm = VirtualMCU(VirtualMcuConfig(seed=3, bump_rate_hz=0.0))
    vm.start()
    yield vm
    vm.close()


def test_virtual_mcu_is_a_real_serial_device(vmcu):
    assert os.path.islink(vmcu.path)
    assert os.readlink(vmcu.path).startswith("/dev/pts/")


def test_senses_flow_and_commands_arrive(vmcu):
    with McuLink(vmcu.path).start(wait_s=3) as link:
        assert link.hello.version == P.PROTOCOL_VERSION and link.hello.n_touch == 8
        r = link.wait_report(time.monotonic(), 2)
        assert r is not None and len(r.msg.touch) == 8 and 6000 < r.msg.battery_mv < 8600
        link.send_motor(400, -300)
        assert wait_for(lambda: vmcu.stats.last_motor == (400, -300))
        seq = link.enc.last_seq
        assert wait_for(lambda: link.latest.msg.ack_seq == seq)
        assert wait_for(lambda: link.stats.rtt_ms)  # heartbeats come back
    assert link.dec.stats.bad_frames == 0


def test_mcu_failsafe_stops_motors_by_itself(vmcu):
    link = McuLink(vmcu.path).start(wait_s=3)
    try:
        link.send_motor(800, 800)
        assert wait_for(lambda: vmcu.left == 800)
        # no more commands (heartbeats keep flowing, they do not keep motors running)
        assert wait_for(lambda: vmcu.left == 0 and vmcu.failsafe, timeout=3)
        assert vmcu.stats.failsafe_stops == 1
        assert wait_for(lambda: link.stats.faults.get("failsafe") == 1)
        assert wait_for(lambda: link.latest.msg.flags & P.FLAG_FAILSAFE)
    finally:
        link.close()


def test_runtime_exit_commands_stop(vmcu):
    link = McuLink(vmcu.path).start(wait_s=3)
    link.send_motor(500, 500)
    assert wait_for(lambda: vmcu.left == 500)
    stops = vmcu.stats.stops
    link.close()
    assert wait_for(lambda: vmcu.stats.stops == stops + 1)
    assert vmcu.left == 0 and vmcu.right == 0 and not vmcu.failsafe  # stopped by the host, not the failsafe
    link.close()  # idempotent


def test_unplugged_cable_is_survived_and_reconnected(vmcu):
    link = McuLink(vmcu.path, backoff_s=0.02, backoff_max_s=0.2).start(wait_s=3)
    try:
        vmcu.unplug(0.4)
        assert wait_for(lambda: not link.connected, 3)
        assert not link.send_motor(100, 100)  # dropped while unplugged, counted
        assert link.stats.dropped_writes >= 1
        assert wait_for(lambda: link.connected and link.hello is not None, 5)
        assert link.stats.reconnects == 1 and vmcu.stats.resets == 1
        assert os.path.exists(vmcu.path)
        t = time.monotonic()
        assert link.wait_report(t, 2) is not None  # senses flow again
        link.send_motor(300, 300)
        assert wait_for(lambda: vmcu.left == 300)
        # the loss shows as a failed read, a failed write (whichever comes first) or silence
        assert link.stats.read_errors + link.stats.write_errors + link.stats.silent_events >= 1
    finally:
        link.close()


def test_stalled_mcu_is_detected_as_silent(vmcu):
    link = McuLink(vmcu.path, silent_s=0.3, heartbeat_s=0.05).start(wait_s=3)
    try:
        link.send_motor(600, 600)
        assert wait_for(lambda: vmcu.left == 600)
        vmcu.stall(1.0)
        assert wait_for(lambda: link.stats.silent_events >= 1, 3)
        assert wait_for(lambda: vmcu.left == 0, 3)  # the board's watchdog cut the motors
        assert wait_for(lambda: link.alive and vmcu.stats.resets == 1, 5)
    finally:
        link.close()


def test_line_noise_drops_and_counts_bad_frames(vmcu):
    vmcu.set_line_noise(0.3)
    link = McuLink(vmcu.path).start(wait_s=5)
    try:
        assert wait_for(lambda: link.stats.reports >= 60 and link.dec.stats.bad_frames >= 5, 10)
        assert link.alive  # the link keeps working through the noise
        st = link.dec.stats
        assert st.bad_frames <= vmcu.stats.frames_corrupted + 1
    finally:
        link.close()


def test_no_mcu_names_the_port(tmp_path):
    with pytest.raises(McuLinkError, match="nothing-here"):
        McuLink(str(tmp_path / "nothing-here")).start(wait_s=0.3)
