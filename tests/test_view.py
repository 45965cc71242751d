"""The live view: a real headless browser watches a real --sim run; tokens; a stuck client is dropped."""
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from browser import decode_png, headless_chromium
from edge_runtime.config import Config
from edge_runtime.runtime import Runner
from edge_runtime.view import ViewHook, ViewServer, parse_view_address
from edge_runtime.view.server import FRAME_FIELDS, ViewError
from sim_bridge.arena import Arena

DOCS = Path(__file__).resolve().parent.parent / "docs"


def start_sim(tmp_path, *extra, view=("--view", "127.0.0.1:0")):
    """`edge-runtime --sim --view 127.0.0.1:0` in its own process; returns (process, page URL) once it serves."""
    p = subprocess.Popen([sys.executable, "-m", "edge_runtime.cli", "--sim", "--steps", "100000", "--no-progress",
                          "--run-dir", str(tmp_path / "run"), *view, *extra],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    found = threading.Event()
    url = []

    def read():
        for line in p.stderr:
            lines.append(line)
            m = re.search(r"live view: (http://\S+)", line)
            if m and not url:
                url.append(m.group(1))
                found.set()

    threading.Thread(target=read, daemon=True).start()
    if not found.wait(120):
        p.kill()
        raise AssertionError("no live view URL in the log:\n" + "".join(lines))
    return p, url[0], lines


def stop(p):
    p.send_signal(signal.SIGTERM)
    out, _ = p.communicate(timeout=120)
    assert p.returncode == 0
    return json.loads(out)


def test_a_person_watching_in_a_real_browser_sees_the_run(tmp_path):
    b = headless_chromium()  # first: where there is no browser it skips, and a run started before it would be left behind
    p, url, log = start_sim(tmp_path)
    try:
        b.get(url)
        deadline = time.time() + 60
        while time.time() < deadline and not b.find_element("id", "step").text.isdigit():
            time.sleep(0.2)
        assert b.find_element("id", "status").text == "live"
        shot1 = decode_png(b.find_element("id", "eye-left").screenshot_as_png)
        time.sleep(1.5)
        shot2 = decode_png(b.find_element("id", "eye-left").screenshot_as_png)
        assert shot1.shape == shot2.shape and shot1.std() > 3  # an image, not an empty box
        assert np.abs(shot1.astype(int) - shot2.astype(int)).mean() > 1.0, "the eyes did not change"
        # everything shown at one instant (one frame), read in one go
        shown = b.execute_script("""
            const t = (id) => document.getElementById(id).textContent;
            const heads = Array.from(document.querySelectorAll('#heads table')).map(
                tb => Array.from(tb.querySelectorAll('td.num')).map(c => parseFloat(c.textContent)));
            return {step: t('step'), body_step: t('body_step'), life: t('life'), hp: t('body-hp'),
                    energy: t('body-energy'), self_loss: t('metrics-self_loss'), entropy: t('metrics-entropy'),
                    self_lr: t('metrics-self_lr'), td_error: t('metrics-td_error'), heads: heads,
                    rate: t('steps_per_s')};""")
    finally:
        b.quit()
        summary = stop(p)
    assert summary["steps"] > int(shown["step"])
    recs = {r["step"]: r for r in map(json.loads, (tmp_path / "run" / "metrics.jsonl").read_text().splitlines())}
    rec = recs[int(shown["step"])]  # the figures on the page are the figures the run wrote for that step
    assert int(shown["body_step"]) == rec["body_step"] and int(shown["life"]) == rec["life"]
    for k in ("hp", "energy", "self_loss", "entropy", "self_lr", "td_error"):
        assert float(shown[k]) == pytest.approx(rec[k], abs=1e-6), k
    assert len(shown["heads"]) == 2 and all(sum(h) == pytest.approx(1.0, abs=0.01) for h in shown["heads"])
    assert float(shown["rate"]) > 0


def test_frames_carry_the_documented_fields():
    doc = (DOCS / "view.md").read_text()
    doc = doc[doc.index("### A frame"):doc.index("## Recording")]
    documented = set(re.findall(r"^\| `(\w+)` \|", doc, re.M))
    assert documented == set(FRAME_FIELDS)
    server = ViewServer("127.0.0.1", 0)
    hook = ViewHook(server, (24, 32))
    server.clients = 1  # (as if a page were open: the hook snapshots only then)
    cfg = Config()
    with Arena() as arena:
        runner = Runner(cfg, arena, seed=0, progress=False, hooks=[hook])
        runner.run(5)
    frame = json.loads(server.frame_now())
    assert set(frame) == set(FRAME_FIELDS)
    assert frame["left"].startswith("data:image/png;base64,") and frame["hw"] == [24, 32]


def test_off_loopback_needs_a_token_and_pages_need_it(tmp_path):
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "--sim", "--steps", "1", "--view", "0.0.0.0:0",
                        "--run-dir", str(tmp_path / "r")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--view-token" in r.stderr
    assert parse_view_address(None) == ("127.0.0.1", 8765) and parse_view_address("9000") == ("127.0.0.1", 9000)
    assert parse_view_address("0.0.0.0:80") == ("0.0.0.0", 80)
    with pytest.raises(ViewError):
        parse_view_address("host:port")
    server = ViewServer("0.0.0.0", 0, token="s3cret").start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        for path in ("/", "/events", "/frame.json", "/?token=wrong"):
            with pytest.raises(urllib.error.HTTPError) as e:
                urllib.request.urlopen(base + path, timeout=5)
            assert e.value.code == 403
        assert urllib.request.urlopen(base + "/?token=s3cret", timeout=5).status == 200
        assert "s3cret" not in server.url
    finally:
        server.close()


def test_a_stuck_client_is_dropped_and_publishing_never_waits():
    """A client that opens the stream and never reads: its socket fills, its send times out, it is dropped; the
    loop's publish() meanwhile never waits, and another page is served."""
    server = ViewServer("127.0.0.1", 0, send_timeout_s=0.5, sndbuf=4096).start()
    rng = np.random.default_rng(0)
    stuck = socket.socket()
    stuck.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 2048)
    try:
        stuck.connect(("127.0.0.1", server.port))
        stuck.sendall(b"GET /events HTTP/1.1\r\nHost: x\r\n\r\n")  # and never reads a byte
        worst, t0 = 0.0, time.time()
        while not server.dropped and time.time() - t0 < 30:
            snap = {"step": 1, "left": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8),  # noise: PNGs that do
                    "right": rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)}        # not compress
            t = time.perf_counter()
            server.publish(snap)
            worst = max(worst, time.perf_counter() - t)
            time.sleep(0.005)
        assert server.dropped == 1, "the stuck client was not dropped"
        assert worst < 0.05, f"publish() took {worst * 1000:.1f} ms"
        assert server.clients == 0
        assert urllib.request.urlopen(f"http://127.0.0.1:{server.port}/frame.json", timeout=5).status == 200
    finally:
        stuck.close()
        server.close()


def test_pages_over_the_limit_are_refused():
    server = ViewServer("127.0.0.1", 0, max_clients=1).start()
    try:
        first = urllib.request.urlopen(f"http://127.0.0.1:{server.port}/events", timeout=5)
        first.readline()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{server.port}/events", timeout=5)
        assert e.value.code == 503 and server.refused == 1
        first.close()
    finally:
        server.close()


def test_bench_view_prints_its_figures():
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "bench", "view", "--steps", "40", "--repeats", "1",
                        "--chunk", "10", "--chunk-pairs", "2", "--json"], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout)
    assert res["modes"] == ["off", "watched", "record"]
    for m in ("watched", "record"):
        assert res[f"median_rate_{m}"] > 0 and f"cost_pct_{m}" in res and res[f"hook_ms_per_step_{m}"] > 0
    assert res["frames_per_s_per_client"] > 0  # the reader really received frames
    for m in ("watched", "record"):  # ABBA: on-off, off-on: two pairs, each a ratio of neighbouring chunks
        assert res[f"interleaved_{m}"]["pairs"] == 2 and res[f"interleaved_{m}"]["median_ratio"] > 0


def test_the_config_turns_the_view_on_with_a_token_file(tmp_path):
    """What a robot's service does: [view] listen off loopback, the token from a file; the page needs it."""
    (tmp_path / "token").write_text("t0ken\n")
    p, url, log = start_sim(tmp_path, "--set", 'view.listen="0.0.0.0:0"', "--set",
                          f'view.token_file="{tmp_path / "token"}"', view=())
    try:
        assert "?token=..." in "".join(log) and "t0ken" not in "".join(log)  # the secret stays out of the log
        port = int(re.search(r":(\d+)/", url).group(1))
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5)
        assert e.value.code == 403
        assert urllib.request.urlopen(f"http://127.0.0.1:{port}/?token=t0ken", timeout=5).status == 200
    finally:
        stop(p)
    r = subprocess.run([sys.executable, "-m", "edge_runtime.cli", "--sim", "--steps", "1", "--run-dir", str(tmp_path / "r2"),
                        "--set", 'view.listen="0.0.0.0:0"', "--set", f'view.token_file="{tmp_path / "missing"}"'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "view.token_file" in r.stderr, r.stderr


def test_a_view_never_started_closes_at_once():
    server = ViewServer("127.0.0.1", 0)
    t = time.perf_counter()
    server.close()
    server.close()  # idempotent
    assert time.perf_counter() - t < 1.0
