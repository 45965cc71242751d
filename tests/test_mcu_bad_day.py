"""The MCU link on a bad day, against a board we did not write (tests/doc_mcu.py, written from
docs/serial-protocol.md alone) and against a scripted board on a pty that sends exactly the frames a test needs.

The bar: the host never counts more bumps than the board made, and no protocol artefact (a reboot, a duplicated,
reordered or lost report, garbage on the line) becomes an injury or a death.
"""
import os
import random
import struct
import time
import tty

import pytest

from doc_mcu import DocMcu
from hardware import protocol as P
from hardware.protocol_stream import StreamDecoder
from hardware.camera import CameraConfig, make_replay_videos
from hardware.mcu_link import McuLink, McuVersionError
from hardware.robot import McuConfig, RobotBody, RobotConfig
from hardware.virtual_mcu import VirtualMCU, VirtualMcuConfig
from test_hardware_link import wait_for


def settle(link: McuLink, board: DocMcu, timeout: float = 3.0) -> bool:
    """Wait until the host has seen a report newer than now (the board's counter has reached the host)."""
    t = time.monotonic() + 0.1
    time.sleep(0.1)
    return link.wait_report(t, timeout) is not None


@pytest.fixture
def board():
    b = DocMcu(n_touch=4, seed=3)
    b.start()
    yield b
    b.close()


@pytest.fixture
def link(board):
    with McuLink(board.path).start(wait_s=5) as ln:
        yield ln


def test_reboots_rebase_the_bump_counter(board, link):
    """The issue's measurement: 11 bumps over 2 boots were counted as 256 by the host."""
    assert settle(link, board)  # bumps before the host's first report are not the host's to count
    board.bump(6)
    assert settle(link, board)
    boots = link.stats.boots
    board.reboot()
    assert wait_for(lambda: link.stats.boots == boots + 1, 3)
    board.bump(5)
    assert settle(link, board)
    assert board.total_bumps == 11 and board.boots == 2
    assert link.bumps_total == 11
    assert link.stats.counter_restarts == 0  # the reset fault re-based it, not the plausibility guard


def test_duplicated_reordered_and_lost_reports(board, link):
    assert settle(link, board)
    for i in range(6):
        board.bump(1)
        getattr(board, ["duplicate_next_report", "reorder_next_reports", "drop_next_reports"][i % 3])(
            *([2] if i % 3 == 2 else []))
        time.sleep(0.15)
        board.bump(1)
        time.sleep(0.1)
    assert settle(link, board)
    assert link.bumps_total == board.total_bumps == 12
    s = link.stats
    assert s.duplicate_reports >= 2 and s.late_reports >= 2 and link.dec.stats.lost >= 4
    assert link.dec.stats.duplicates >= 2
    # a late report filled the gap it left: it is counted late, not lost (the board used no other seq for it)
    assert link.dec.stats.late >= 2


def line_fault(board: DocMcu, rng: random.Random):
    """One fault of the line or the board, at random: garbage, a duplicate, a swapped pair, lost reports, a reboot."""
    r = rng.random()
    if r < 0.3:
        board.garbage(rng.randint(1, 60))
    elif r < 0.5:
        board.duplicate_next_report()
    elif r < 0.7:
        board.reorder_next_reports()
    elif r < 0.9:
        board.drop_next_reports(rng.randint(1, 4))
    else:
        board.reboot()


def test_garbage_and_reboots_fuzzed_never_count_more_than_the_board(board, link):
    assert settle(link, board)
    rng = random.Random(7)
    t_end = time.monotonic() + 6.0
    while time.monotonic() < t_end:
        if rng.random() < 0.35:
            board.bump(rng.randint(1, 3))
        else:
            line_fault(board, rng)
        time.sleep(rng.uniform(0.02, 0.15))
    assert settle(link, board)
    assert 0 < link.bumps_total <= board.total_bumps
    assert link.dec.stats.bad_frames > 0 and board.boots > 1


@pytest.mark.parametrize("how", ["fault-only", "hello-then-fault"])
def test_version_mismatch_is_one_clear_error_at_once(how):
    """The board speaks v2: the independent board answers FAULT version only; ours (like the firmware) sends its
    hello (v2) and then FAULT version. Either way: one error naming the port and both versions, well before the
    connect timeout."""
    if how == "fault-only":
        b = DocMcu(version=2)
        path = b.start()
    else:
        b = VirtualMCU(VirtualMcuConfig(seed=1))
        b.set_version(2)
        path = b.start()
    try:
        t = time.monotonic()
        with pytest.raises(McuVersionError) as e:
            McuLink(path).start(wait_s=5)
        assert time.monotonic() - t < 2.0
        msg = str(e.value)
        assert path in msg and "v2" in msg and f"v{P.PROTOCOL_VERSION}" in msg
    finally:
        b.close()


def test_the_board_refuses_a_host_of_another_version():
    """The other direction: a host speaking v9 gets FAULT version from the doc board and cannot drive it."""
    b = DocMcu()
    path = b.start()
    fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
    try:
        tty.setraw(fd)
        enc, dec = P.Encoder(), StreamDecoder()
        os.write(fd, enc.frame(P.Hello(9, 0, 0, 0, "future-host")) + enc.frame(P.MotorCommand(500, 500)))
        got, end = [], time.monotonic() + 1.0
        while time.monotonic() < end:
            os.set_blocking(fd, False)
            try:
                got += dec.feed(os.read(fd, 4096))
            except BlockingIOError:
                time.sleep(0.02)
        faults = [r.msg for r in got if isinstance(r.msg, P.Fault) and r.msg.code == P.FAULT_VERSION]
        assert faults and faults[0].detail == 1 and b.motor == (0, 0) and b.last_host_hello_version == 9
    finally:
        os.close(fd)
        b.close()


# ---------------------------------------------------------------- a scripted board: exact frames
class ScriptedBoard:
    """A pty whose master side the test writes frames into, one by one."""

    def __init__(self):
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave
        self.enc = P.Encoder()
        self.ms = 60_000
        self.bumps = 0

    def send(self, msg, seq=None):
        if seq is not None:
            self.enc.seq = seq
        os.write(self.master, self.enc.frame(msg))

    def report(self, seq=None, ms=None, bumps=None):
        self.ms = self.ms + 20 if ms is None else ms
        self.bumps = self.bumps if bumps is None else bumps
        self.send(P.SensorReport(self.ms, 8000, 0, 0, 0, self.bumps & 0xFF, 0, (0, 0)), seq)

    def drain(self):  # what the host writes (hellos, heartbeats) is read and thrown away
        os.set_blocking(self.master, False)
        try:
            while os.read(self.master, 4096):
                pass
        except (BlockingIOError, OSError):
            pass

    def close(self):
        os.close(self.master)
        os.close(self._slave)


@pytest.fixture
def scripted():
    b = ScriptedBoard()
    link = McuLink(b.path, silent_s=5.0, heartbeat_s=0.5)
    link.start()
    time.sleep(0.2)
    b.drain()
    b.send(P.Hello(P.PROTOCOL_VERSION, 2, 300, 1, "scripted"), seq=0)
    assert link.wait_connected(3)
    yield b, link
    link.close()
    b.close()


def deliver(b, link, n_reports):
    assert wait_for(lambda: link.stats.reports + link.stats.late_reports + link.stats.duplicate_reports >= n_reports, 3)


def test_a_reboot_whose_hello_and_reset_were_lost_is_found_by_the_board_clock(scripted):
    b, link = scripted
    b.report(seq=1, bumps=200)
    b.report(bumps=203)
    b.report(bumps=205)
    deliver(b, link, 3)
    assert link.bumps_total == 5
    boots, lost = link.stats.boots, link.dec.stats.lost
    # the board restarts; its hello and FAULT reset never arrive: seq 2, clock 40 ms, counter 0
    b.report(seq=2, ms=40, bumps=0)
    b.report(bumps=1)
    b.report(bumps=3)
    deliver(b, link, 6)
    assert link.bumps_total == 8  # 5 before, 3 after: nothing from the counter going 205 -> 0
    assert link.stats.boots == boots + 1
    # seqs 2 and 3 were seen before the reboot: a new count with another clock, neither duplicates nor lost frames
    assert link.stats.duplicate_reports == 0 and link.stats.late_reports == 0 and link.stats.reports == 6
    assert link.dec.stats.lost == lost


def test_an_old_report_replayed_late_is_not_a_reboot(scripted):
    """A report 1.9 s old arrives after 100 newer ones (outside the seq window): its clock is behind by more than the
    reboot threshold, but far too old to belong to a board that booted since the last report."""
    b, link = scripted
    b.report(seq=1, ms=10_000, bumps=0)
    old = P.SensorReport(10_100, 8000, 0, 0, 0, 0, 0, (0, 0))
    for i in range(100):
        b.report(ms=12_000 + 20 * i, bumps=min(9, i // 10))
    deliver(b, link, 101)
    assert link.bumps_total == 9
    b.enc.seq = 7  # the old frame as it was sent, long ago
    os.write(b.master, b.enc.frame(old))
    b.report(seq=105, ms=14_100, bumps=9)
    deliver(b, link, 103)
    assert link.bumps_total == 9 and link.stats.late_reports == 1 and link.stats.boots == 0


def test_a_stale_reset_fault_does_not_count_bumps_twice(scripted):
    b, link = scripted
    b.report(seq=1, ms=30_000, bumps=0)
    for k in range(1, 7):
        b.report(bumps=k)
    deliver(b, link, 7)
    assert link.bumps_total == 6
    b.send(P.Fault(P.FAULT_RESET, 0), seq=0)  # a duplicate of a boot long past, delivered late
    b.report(seq=9, bumps=6)  # the board's clock goes on: no boot happened
    b.report(bumps=7)
    deliver(b, link, 9)
    assert link.bumps_total == 7 and link.stats.boots == 0


def test_one_bogus_backward_counter_does_not_count_later_bumps_twice(scripted):
    b, link = scripted
    b.report(seq=1, bumps=5)
    b.report(bumps=1)  # garbage that passed the CRC, or a glitch: believed only if the next report agrees
    b.report(bumps=6)
    b.report(bumps=6)
    deliver(b, link, 4)
    assert link.bumps_total == 1 and link.stats.counter_restarts == 0


def test_a_stale_report_and_an_exact_duplicate_are_dropped(scripted):
    b, link = scripted
    b.report(seq=1, bumps=7)  # (the hello was seq 0)
    b.report(seq=2, bumps=8)
    b.report(seq=4, bumps=10)  # 3 is late
    b.ms -= 40
    b.report(seq=3, ms=b.ms + 20, bumps=9)  # arrives after 4: dropped, not 255 phantom bumps
    b.ms += 20
    b.report(seq=4, ms=b.ms, bumps=10)  # the same frame again
    deliver(b, link, 5)
    assert link.bumps_total == 3 and link.stats.late_reports == 1 and link.stats.duplicate_reports == 1
    assert link.dec.stats.lost == 0  # 3 was missing, then arrived


def test_a_counter_that_goes_back_without_any_other_sign_is_rebased(scripted):
    """A board that restarted less than a second after booting: its clock cannot tell; the counter can."""
    b, link = scripted
    b.report(seq=1, ms=500, bumps=4)
    b.report(ms=520, bumps=5)
    b.report(ms=540, bumps=1)  # went back: a restart (or garbage that passed the CRC): nothing counted yet
    b.report(ms=560, bumps=2)  # ...confirmed by the next report: the count goes on from the new value
    deliver(b, link, 4)
    assert link.bumps_total == 2 and link.stats.counter_restarts == 1


# ---------------------------------------------------------------- the robot body: no phantom injury or death
@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    return make_replay_videos(str(tmp_path_factory.mktemp("vid")), frames=12, size=(64, 48))


def test_robot_survives_reboots_duplicates_and_reorders_of_the_doc_board(board, videos):
    body = RobotBody(RobotConfig(control_hz=50, bump_damage=0.05, spike_damage_per_s=0.0, regen_per_s=0.0,
                                 revive="manual"),
                     CameraConfig(backend="replay", left=videos[0], right=videos[1]), McuConfig(port=board.path))
    try:
        body.reset()
        for i in range(40):
            if i % 8 == 0:
                board.bump(1)
            if i == 10:
                board.reboot()
            if i == 20:
                board.duplicate_next_report()
            if i == 25:
                board.reorder_next_reports()
            if i == 30:
                board.reboot()
            s = body.act({"drive": 1, "turn": 1})
            assert not s.dead
        time.sleep(0.2)
        body.act({"drive": 1, "turn": 1})
        felt = body.counts["bumps"]
        assert felt == board.total_bumps == 5 and body.counts["deaths"] == 0  # each bump felt once, across reboots
        assert s.hp == pytest.approx(1.0 - 0.05 * felt, abs=1e-6)
        c = body.counters
        assert c["mcu_boots"] >= 2 and c["mcu_hellos"] >= 2
    finally:
        body.close()


def test_a_firmware_change_mid_run_stops_the_body_with_the_version_error(board, videos):
    body = RobotBody(RobotConfig(control_hz=50, revive="manual"),
                     CameraConfig(backend="replay", left=videos[0], right=videos[1]), McuConfig(port=board.path))
    try:
        body.reset()
        body.act({"drive": 2, "turn": 1})
        board.set_version(3)
        board.reboot()  # the board comes back with other firmware: its hello says v3
        with pytest.raises(McuVersionError, match="v3"):
            for _ in range(100):
                body.act({"drive": 2, "turn": 1})
        assert board.motor == (0, 0)
    finally:
        body.close()


def test_report_layout_is_what_the_doc_says():
    """A guard for the doc as contract: SENSOR is 15 bytes + n_touch, little-endian, in the documented order."""
    p = P.SensorReport(0x01020304, 7400, -5, 6, 0x0041, 250, 9, (1, 2)).pack()
    assert len(p) == 17
    assert struct.unpack("<IHhhHBBB", p[:15]) == (0x01020304, 7400, -5, 6, 0x41, 250, 9, 2)


def test_fuzzed_line_without_a_single_bump_never_hurts_the_robot(board, videos):
    """With no bump on the board, any injury or energy jump the host felt would be a protocol artefact."""
    body = RobotBody(RobotConfig(control_hz=50, bump_damage=0.5, regen_per_s=0.0, revive="manual"),
                     CameraConfig(backend="replay", left=videos[0], right=videos[1]), McuConfig(port=board.path))
    rng = random.Random(11)
    try:
        s = body.reset()
        hps, energies = [], [s.energy]
        t_end = time.monotonic() + 8.0
        while time.monotonic() < t_end:
            if rng.random() < 0.5:
                line_fault(board, rng)
            s = body.act({"drive": rng.randrange(3), "turn": rng.randrange(3)})
            hps.append(s.hp)
            energies.append(s.energy)
        assert set(hps) == {1.0} and body.counts["deaths"] == 0 and body.counts["bumps"] == 0
        assert max(abs(b - a) for a, b in zip(energies, energies[1:])) < 0.01  # the battery never jumped
        c = body.counters
        assert c["mcu_boots"] >= 3 and c["mcu_duplicate_reports"] >= 3 and c["mcu_late_reports"] >= 1
    finally:
        body.close()
