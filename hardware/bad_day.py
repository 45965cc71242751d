"""A day in the life of the robot service, on the virtual MCU, with everything an ordinary bad day brings.

    edge-runtime bench bad-day [--minutes M] [--seed S] [--out DIR] [--json]

Real parts, each in its own process, as on the robot:

- the board: `edge-runtime virtual-mcu` behind a pty (its stdin takes the fault commands, its --events file is
  the ground truth of what it did: bumps, boots, the dead state the host told it);
- the runtime: `edge-runtime run --config robot.toml --run-dir run --continue --console PTY`, exactly what the
  systemd unit runs, with $NOTIFY_SOCKET and $WATCHDOG_USEC set;
- the service manager's side: a datagram socket reading READY/WATCHDOG/STATUS/STOPPING with the sender's pid
  (SO_PASSCRED, as systemd does); the console: the other end of the pty.

The fault schedule (CYCLE) runs once per runtime process; a process ends with SIGTERM or SIGKILL and the next one
starts with `--continue`. Checked, and reported as `violations` (an empty list is a clean day):

- no phantom bump: the bumps the host felt never exceed the bumps the board made;
- no phantom death: the host dies exactly once per scheduled kill, every death is an injury and the board made
  enough bumps in that life to cause it;
- no watchdog miss: WATCHDOG=1 pings from each process, READY to STOPPING (or to its kill), never further apart
  than WatchdogSec;
- every restart resumes the newest valid checkpoint (what `checkpoints verify` names before the restart);
- counters add up: a process starts from the run's counters where the last one stopped (after SIGTERM: exactly;
  after SIGKILL: at most the killed process's, the difference reported as lost) and stops with its start plus
  what it counted itself;
- STOPPING=1 arrives before the process exits; a dead robot's wait keeps the console answering.
"""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import tty
from pathlib import Path

from edge_runtime.checkpoint import verify
from edge_runtime.console import ConsoleClient
from edge_runtime.jsonout import dumps

from .day_rig import Board, NotifyListener

# (seconds after READY=1, who, what). "board" lines go to the virtual MCU's stdin, "console" lines to the console;
# "kill" bumps the robot to death (BUMPS_TO_KILL board bumps), waits DEAD_WAIT_S dead, then revives it by the
# board's button or the console; "motors" holds the motors from the console and checks the board sees them still.
CYCLE = [
    (2.0, "board", "reboot"),
    (4.0, "board", "dup 3"),
    (5.0, "board", "reorder 2"),
    (6.0, "board", "garbage 300"),
    (8.0, "board", "brownout"),
    (11.0, "board", "stall 3"),  # 3 s of silence both ways, then the board's watchdog resets it
    (17.0, "console", "lr 0.4 0.9"),
    (18.0, "console", "learn off"),
    (20.0, "console", "learn on"),
    (21.0, "board", "unplug 1.5"),
    (25.0, "board", "drop 5"),
    (26.0, "kill", "button"),
    (34.0, "kill", "console"),
    (42.0, "motors", ""),
]
CYCLE_S = 46.0  # the stop comes this long after READY=1
# the CI test's later processes: a reboot, duplicates and a death are enough to check resume and counters
SHORT_CYCLE = [(1.0, "board", "reboot"), (2.0, "board", "dup 2"), (3.0, "kill", "console")]
SHORT_CYCLE_S = 12.0
BUMPS_TO_KILL = 5  # bump_damage 0.25: the 4th bump kills; the 5th lands on a dead body
BUMP_GAP_S = 0.45  # the virtual board's bump lasts 300 ms: separate events
DEAD_WAIT_S = 4.0
WATCHDOG_S = 10.0
ADDITIVE = ("bumps", "deaths", "injury_deaths", "revived", "mcu_bumps", "mcu_boots", "mcu_reconnects")


def robot_toml(videos: tuple[str, str], port: str) -> str:
    return f"""# written by `edge-runtime bench bad-day`
[robot]
control_hz = 20
bump_damage = 0.25
spike_damage_per_s = 0.0   # injuries come from bumps only: every death can be traced to the board's bumps
regen_per_s = 0.0
revive = "button"
critical_mv = 6500
empty_mv = 6600

[camera]
backend = "replay"
left = "{videos[0]}"
right = "{videos[1]}"
replay_fps = 0

[mcu]
port = "{port}"

[console]
writable = true

[checkpoint]
every_s = 10.0
min_interval_s = 5.0

[runtime]
action_repeat = 2
"""


class Day:
    def __init__(self, work: Path, seed: int = 0, log=print):
        from hardware.camera import make_replay_videos

        self.work = work
        self.log = log
        self.violations: list[str] = []
        self.faults: dict[str, int] = {}
        self.kills: list[dict] = []
        self.resumes: list[dict] = []
        self.processes: list[dict] = []
        self.gaps: list[float] = []
        self.lost: dict[str, int] = {}  # counts the run lost at SIGKILLs (counted after the last checkpoint)
        videos = make_replay_videos(str(work / "video"), frames=24, size=(64, 48))
        self.board = Board(work, seed)
        (work / "robot.toml").write_text(robot_toml(videos, self.board.path))
        self.notify = NotifyListener(str(work / "notify.sock"))
        self.console_master, slave = os.openpty()
        tty.setraw(slave)  # a raw line, like a UART
        self.console_path = os.ttyname(slave)
        self._console_slave = slave
        self.console = ConsoleClient(self.console_master, timeout=15.0)
        self.run_dir = work / "run"
        self.proc: subprocess.Popen | None = None
        self.t0 = time.monotonic()

    def bad(self, what: str):
        self.violations.append(what)
        self.log(f"VIOLATION: {what}")

    # ------------------------------------------------------------------ the runtime process
    def start(self):
        before = verify(self.run_dir) if (self.run_dir / "checkpoints").is_dir() else {"valid": False}
        n = len(self.processes)
        err = open(self.work / f"runtime-{n}.log", "w")
        env = dict(os.environ, NOTIFY_SOCKET=self.notify.path, WATCHDOG_USEC=str(int(WATCHDOG_S * 1e6)),
                   PYTHONUNBUFFERED="1")
        env.pop("WATCHDOG_PID", None)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge_runtime.cli", "run", "--config", str(self.work / "robot.toml"),
             "--run-dir", str(self.run_dir), "--continue", "--no-progress", "--console", self.console_path],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env)
        rec = {"pid": self.proc.pid, "log": err.name, "t_start": time.monotonic(), "expect": before}
        self.processes.append(rec)
        t_ready = self.notify.wait(self.proc.pid, "READY=1", 120)
        if t_ready is None:
            raise RuntimeError(f"runtime {n} not READY in 120 s (see {err.name})")
        rec["t_ready"] = t_ready
        self.console.sync(30)
        rec["counters_at_start"] = start = json.loads(self.console.command("counters"))
        if n > 0:
            prev = self.processes[-2]
            for k in ADDITIVE:
                if prev["how"] == "SIGTERM" and start.get(k, 0) != prev["summary"]["body"].get(k, 0):
                    self.bad(f"process {n} starts with {k} {start.get(k, 0)}, the last one stopped at "
                             f"{prev['summary']['body'].get(k, 0)}")
                if prev["how"] == "SIGKILL":
                    was = prev["counters_before_kill"].get(k, 0)
                    if start.get(k, 0) > was:
                        self.bad(f"process {n} starts with {k} {start.get(k, 0)}, more than the killed one had ({was})")
                    self.lost[k] = self.lost.get(k, 0) + was - start.get(k, 0)
        text = Path(err.name).read_text()
        m = re.search(r"resuming from \S+, sequence (\d+), step (\d+)", text)
        if before.get("valid"):
            got = (int(m.group(1)), int(m.group(2))) if m else None
            ok = got == (before["sequence"], before["step"])
            self.resumes.append({"expected": [before["sequence"], before["step"]], "resumed": list(got) if got else None,
                                 "ok": ok})
            if not ok:
                self.bad(f"process {n} resumed {got}, newest valid checkpoint was "
                         f"{(before['sequence'], before['step'])}")
        elif m:
            self.bad(f"process {n} resumed {m.group(0)} though no valid checkpoint existed")
        self.log(f"[{self.clock()}] runtime {n} (pid {self.proc.pid}) ready"
                 + (f", resumed sequence {before['sequence']} step {before['step']}" if before.get("valid") else ", fresh"))

    def stop(self, how: str) -> dict | None:
        rec = self.processes[-1]
        pid = self.proc.pid
        if how == "SIGKILL":
            rec["counters_before_kill"] = json.loads(self.console.command("counters"))
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)
            summary = None
        else:
            t_sig = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            out, _ = self.proc.communicate(timeout=60)
            t_exit = time.monotonic()
            t_stopping = self.notify.wait(pid, "STOPPING=1", 0.5)
            if self.proc.returncode != 0:
                self.bad(f"process {len(self.processes) - 1} exited {self.proc.returncode} on SIGTERM")
            if t_stopping is None or not t_sig <= t_stopping <= t_exit:
                self.bad(f"process {len(self.processes) - 1}: STOPPING=1 not sent between SIGTERM and exit")
            summary = json.loads(out.strip().splitlines()[-1])
            rec["summary"] = summary
            for k in ADDITIVE:
                want = rec["counters_at_start"].get(k, 0) + summary["body_this_process"].get(k, 0)
                if summary["body"].get(k, 0) != want:
                    self.bad(f"process {len(self.processes) - 1}: run counter {k} {summary['body'].get(k, 0)} != "
                             f"{rec['counters_at_start'].get(k, 0)} at start + {summary['body_this_process'].get(k, 0)} "
                             f"counted")
        rec["t_end"] = time.monotonic()
        rec["how"] = how
        self._check_watchdog(rec)
        self.log(f"[{self.clock()}] runtime {len(self.processes) - 1} stopped by {how}")
        return summary

    def _check_watchdog(self, rec: dict):
        msgs = self.notify.of(rec["pid"])
        end = next((t for t, m in msgs if "STOPPING=1" in m.split("\n")), rec["t_end"])
        ts = [rec["t_ready"]] + [t for t, m in msgs if "WATCHDOG=1" in m.split("\n") and t <= end] + [end]
        gaps = [b - a for a, b in zip(ts, ts[1:])]
        self.gaps += gaps
        rec["pings"] = len(ts) - 2
        if gaps and max(gaps) >= WATCHDOG_S:
            self.bad(f"process pid {rec['pid']}: watchdog gap {max(gaps):.1f} s >= WatchdogSec {WATCHDOG_S:g}")

    # ------------------------------------------------------------------ the schedule
    def clock(self) -> str:
        return f"{time.monotonic() - self.t0:7.1f} s"

    def cycle(self, short: bool = False):
        t_ready = self.processes[-1]["t_ready"]
        for at, who, what in (SHORT_CYCLE if short else CYCLE):
            wait = t_ready + at - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            key = f"{who} {what.split()[0]}" if what else who
            self.faults[key] = self.faults.get(key, 0) + 1
            if who == "board":
                self.board.send(what)
            elif who == "console":
                self.console.command(what)
            elif who == "kill":
                self.kill(what)
            elif who == "motors":
                self.motors()
        wait = t_ready + (SHORT_CYCLE_S if short else CYCLE_S) - time.monotonic()
        if wait > 0:
            time.sleep(wait)

    def _dead(self) -> bool:
        return "dead: waiting for" in self.console.command("status")

    def kill(self, revive_by: str):
        t = time.monotonic()
        for _ in range(BUMPS_TO_KILL):
            self.board.send("bump")
            time.sleep(BUMP_GAP_S)
        end = time.monotonic() + 10
        while not self._dead() and time.monotonic() < end:
            time.sleep(0.2)
        rec = {"t": t, "revive": revive_by, "died": self._dead()}
        self.kills.append(rec)
        if not rec["died"]:
            self.bad(f"kill at {self.clock()}: {BUMPS_TO_KILL} board bumps did not kill the robot")
            return
        time.sleep(DEAD_WAIT_S)  # dead and waiting: the watchdog must stay fed, the console must answer
        if not self._dead():
            self.bad(f"kill at {self.clock()}: the robot came back without a revive")
        if revive_by == "button":
            self.board.send("button")
        else:
            reply = self.console.command("revive")
            if not reply.startswith("revived"):
                self.bad(f"console revive: {reply!r}")
        end = time.monotonic() + 10
        while self._dead() and time.monotonic() < end:
            time.sleep(0.2)
        if self._dead():
            self.bad(f"kill at {self.clock()}: not revived by the {revive_by}")

    def motors(self):
        if not self.console.command("motors stop").startswith("motors stopped"):
            self.bad("console motors stop refused")
        time.sleep(0.5)
        moving = [s["motors"] for s in (self.board.ask_status() for _ in range(5)) if s.get("motors") != [0, 0]]
        if moving:
            self.bad(f"motors held, yet the board drove {moving[0]}")
        self.console.command("motors go")

    # ------------------------------------------------------------------ the verdict
    def verdict(self) -> dict:
        events = self.board.event_log()
        board_bumps = [e for e in events if e["event"] == "bump"]
        boots = sum(1 for e in events if e["event"] == "boot")
        lives = [json.loads(x) for x in (self.run_dir / "lives.jsonl").read_text().splitlines()] \
            if (self.run_dir / "lives.jsonl").exists() else []
        # each process's own counts: its summary, or (SIGKILL) its console counters just before the kill minus its start
        felt = link_bumps = 0
        for p in self.processes:
            end = p["summary"]["body"] if "summary" in p else p.get("counters_before_kill", {})
            felt += end.get("bumps", 0) - p["counters_at_start"].get("bumps", 0)
            link_bumps += end.get("mcu_bumps", 0) - p["counters_at_start"].get("mcu_bumps", 0)
        # with --bump-rate 0 every board bump is a scheduled one, made while a runtime was up: the link must count
        # each exactly once, and the body feel all but the one that lands on a dead body in each kill
        if link_bumps != len(board_bumps):
            self.bad(f"the link counted {link_bumps} bumps, the board made {len(board_bumps)}")
        killed = sum(1 for k in self.kills if k["died"])
        if felt != (BUMPS_TO_KILL - 1) * killed:
            self.bad(f"the body felt {felt} bumps; {killed} kills of {BUMPS_TO_KILL} bumps should give "
                     f"{(BUMPS_TO_KILL - 1) * killed} (the last of each lands on a dead body)")
        scheduled = sum(1 for k in self.kills if k["died"])
        deaths = len(lives)
        if deaths != len(self.kills):
            self.bad(f"host deaths {deaths} != scheduled kills {len(self.kills)}")
        prev_t = 0.0
        for life in lives:
            if life.get("cause") != "injury":
                self.bad(f"death at t={life.get('t')}: cause {life.get('cause')!r}, only bumps were scheduled")
            n = sum(1 for e in board_bumps if prev_t < e["t"] <= (life.get("t") or 0))
            if n < 4:
                self.bad(f"death at t={life.get('t')}: the board made only {n} bumps in that life")
            prev_t = life.get("t") or prev_t
        last = next((p["summary"] for p in reversed(self.processes) if p.get("summary")), {})
        lost_lives = deaths - last.get("lives_completed", deaths)
        host = last.get("body", {})
        return {
            "duration_s": round(time.monotonic() - self.t0, 1),
            "processes": len(self.processes),
            "restarts": {"sigterm": sum(1 for p in self.processes[:-1] if p.get("how") == "SIGTERM"),
                         "sigkill": sum(1 for p in self.processes if p.get("how") == "SIGKILL")},
            "faults_injected": sum(self.faults.values()), "faults": self.faults,
            "board": {"bumps": len(board_bumps), "boots": boots},
            "host": {"bumps_felt": felt, "bumps_counted_by_link": link_bumps, "deaths": deaths,
                     "scheduled_kills": scheduled,
                     **{k: host.get(k) for k in ("mcu_boots", "mcu_reconnects", "mcu_duplicate_reports",
                                                 "mcu_late_reports", "mcu_rx_lost", "mcu_rx_bad_frames",
                                                 "mcu_counter_restarts", "link_down_steps")}},
            "steps": last.get("steps"), "lives_completed": last.get("lives_completed"),
            "watchdog": {"interval_s": WATCHDOG_S, "max_gap_s": round(max(self.gaps), 2) if self.gaps else None,
                         "pings": sum(p.get("pings", 0) for p in self.processes)},
            "resumes": self.resumes,
            "lost": {"lives_not_in_the_final_count": lost_lives, "counts_at_sigkill": self.lost},
            "violations": self.violations,
        }

    def close(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self.board.close()
        self.notify.close()
        for fd in (self.console_master, self._console_slave):
            try:
                os.close(fd)
            except OSError:
                pass


def bench_command(args) -> dict:
    """`edge-runtime bench bad-day` (the CLI finds this through the edge_runtime.commands entry points)."""
    import sys

    return run_day(args.minutes, seed=args.seed, out=args.out, short=args.short,
                   log=lambda m: print(m, file=sys.stderr, flush=True))


def run_day(minutes: float = 0.0, seed: int = 0, out: str | None = None, short: bool = False, log=print) -> dict:
    """Run processes through the fault cycle: the first ends by SIGTERM, then alternately SIGKILL and SIGTERM, until
    `minutes` have passed (at least three processes: SIGTERM, SIGKILL, and a last one that checks the resume and
    stops by SIGTERM). short: processes after the first run SHORT_CYCLE (the CI test)."""
    work = Path(out) if out else Path(tempfile.mkdtemp(prefix="edge-bad-day-"))
    work.mkdir(parents=True, exist_ok=True)
    day = Day(work, seed, log)
    try:
        n = 0
        while True:
            day.start()
            day.cycle(short=short and n > 0)
            done = n >= 2 and time.monotonic() - day.t0 >= minutes * 60
            day.stop("SIGTERM" if done or n % 2 == 0 else "SIGKILL")
            n += 1
            if done:
                break
        res = day.verdict()
    finally:
        day.close()
    res["work_dir"] = str(work)
    (work / "bad-day.json").write_text(dumps(res, indent=1))
    return res
