"""The reference firmware's frame code and failsafe, compiled with g++ and run against the shared vectors."""
import shutil
import subprocess
from pathlib import Path

import pytest

import hardware
from hardware import protocol as P

FW = Path(hardware.__file__).parent / "firmware"


@pytest.mark.skipif(shutil.which("g++") is None, reason="g++ is not installed")
def test_firmware_frame_code_and_failsafe_on_host(tmp_path):
    exe = tmp_path / "host_test"
    src = [FW / "test" / "host_test.cpp", FW / "edge_mcu" / "edge_proto.cpp", FW / "edge_mcu" / "edge_core.cpp"]
    cc = subprocess.run(["g++", "-std=c++11", "-Wall", "-Wextra", "-Werror", "-O1", f"-I{FW / 'edge_mcu'}",
                         *map(str, src), "-o", str(exe)], capture_output=True, text=True, timeout=120)
    assert cc.returncode == 0, cc.stderr
    r = subprocess.run([str(exe), str(P.VECTORS_FILE)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    checks = int(r.stdout.strip().splitlines()[-1].split()[0])
    n_rows = len(P.load_vectors())
    assert checks > n_rows  # every vector row was checked, plus the failsafe checks
    assert "0 failures" in r.stdout
