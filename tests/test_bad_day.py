"""A day in the life, shortened: the service path (notify socket with the sender's pid, watchdog, console on a pty)
on the virtual MCU process through the whole fault schedule, SIGTERM and SIGKILL with restarts through --continue.
`edge-runtime bench bad-day --minutes M` runs the same thing long."""
import json
import subprocess
import sys


def test_a_day_in_the_life_is_clean(tmp_path):
    p = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "bench", "bad-day", "--short", "--seed", "1",
                        "--out", str(tmp_path / "day"), "--json"], capture_output=True, text=True, timeout=600)
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["violations"] == [] and p.returncode == 0, p.stderr[-3000:]
    assert res["processes"] == 3 and res["restarts"] == {"sigterm": 1, "sigkill": 1}
    assert all(r["ok"] for r in res["resumes"]) and len(res["resumes"]) == 2
    h, b = res["host"], res["board"]
    assert 0 < h["bumps_felt"] <= b["bumps"] and h["deaths"] == h["scheduled_kills"] >= 3
    assert h["mcu_boots"] >= 5 and h["mcu_duplicate_reports"] >= 3 and h["mcu_late_reports"] >= 1
    assert res["watchdog"]["max_gap_s"] < res["watchdog"]["interval_s"]
    events = [json.loads(x) for x in (tmp_path / "day" / "board.jsonl").read_text().splitlines()]
    assert {"boot", "brownout", "stall", "unplug", "garbage", "dup", "reorder", "drop"} <= {e["event"] for e in events}
