"""The Godot bridge against a fake Godot client (no Godot needed): framing, spaces, actions by name,
the score field dropped, per-agent respawn, lockstep, and failures that raise instead of hanging."""
import json
import socket
import struct
import threading
import time

import numpy as np
import pytest

from sim_bridge.godot_body import AgentLayout, GodotBody, GodotOptions, GodotWorld
from sim_bridge.godot_protocol import Channel, GodotError, Listener, decode_image, encode, encode_blob

H, W = 12, 16


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def img(agent, step, eye):
    a = np.zeros((H, W, 3), np.uint8)
    a[..., 0] = agent * 50 + eye
    a[..., 1] = step % 256
    a[0, 0] = (1, 2, 3)
    return a


class FakeGodot(threading.Thread):
    """A scripted Godot: two agents, action keys declared turn-then-drive, a score field full of numbers."""

    def __init__(self, port, n_agents=2, die_at=None, hang_at=None, quit_at=None):
        super().__init__(daemon=True)
        self.port, self.n, self.die_at, self.hang_at, self.quit_at = port, n_agents, die_at or {}, hang_at, quit_at
        self.received = []
        self.step = 0
        self.binary = False
        self.error = None

    def recv(self, s):
        n = struct.unpack("<I", self._exact(s, 4))[0]
        return json.loads(self._exact(s, n))

    @staticmethod
    def _exact(s, n):
        b = b""
        while len(b) < n:
            c = s.recv(n - len(b))
            if not c:
                raise EOFError
            b += c
        return b

    def obs(self, i, blob):
        o = {"touch": [0.1 * i] * 3, "hp": [0.9], "energy": [0.5]}
        for e, key in enumerate(("camera_2d_left", "camera_2d_right")):
            a = img(i, self.step, e)
            if self.binary:
                o[key] = {"blob": [len(blob), a.size]}
                blob += a.tobytes()
            else:
                o[key] = a.tobytes().hex()
        return o, blob

    def send(self, s, msg, blob=b""):
        if blob:
            msg["blob"] = len(blob)
        s.sendall(encode(msg) + (encode_blob(blob) if blob else b""))

    def run(self):
        try:
            for _ in range(100):
                try:
                    s = socket.create_connection(("127.0.0.1", self.port))
                    break
                except ConnectionRefusedError:
                    time.sleep(0.02)
            while True:
                m = self.recv(s)
                self.received.append(m)
                t = m["type"]
                if t == "handshake":
                    self.binary = m.get("edge_frames") == "binary"
                elif t == "env_info":
                    space = {"camera_2d_left": {"size": [H, W, 3], "space": "box"},
                             "camera_2d_right": {"size": [3, H, W], "space": "box"},  # Godot 4 sensor style
                             "touch": {"size": [3], "space": "box"}, "hp": {"size": [1], "space": "box"},
                             "energy": {"size": [1], "space": "box"}}
                    acts = {"turn": {"size": 3, "action_type": "discrete"}, "drive": {"size": 3, "action_type": "discrete"}}
                    self.send(s, {"type": "env_info", "observation_space": [space] * self.n, "action_space": [acts] * self.n,
                                  "n_agents": self.n, "edge": {"frames": "binary" if self.binary else "hex", "respawn": True}})
                elif t in ("reset", "action"):
                    if t == "action":
                        self.step += 1
                    if self.step == self.hang_at:
                        time.sleep(5)
                        return
                    if self.step == self.quit_at:
                        s.close()
                        return
                    blob = b""
                    obs = []
                    for i in range(self.n):
                        o, blob = self.obs(i, blob)
                        obs.append(o)
                    info = [{"action": (m.get("action") or [{}] * self.n)[i], "reward": 9.0, "step": self.step}
                            for i in range(self.n)]
                    done = [self.die_at.get(i) == self.step for i in range(self.n)]
                    self.send(s, {"type": "reset" if t == "reset" else "step", "obs": obs, "info": info, "done": done,
                                  "reward": [123.0] * self.n}, blob)
                elif t == "call":
                    o, blob = self.obs(m["agent"], b"")
                    self.send(s, {"type": "call", "returns": [o], "info": [{"respawned": True}]}, blob)
                elif t == "close":
                    s.close()
                    return
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.error = e


def world(fake_kw=None, **kw):
    port = free_port()
    fake = FakeGodot(port, **(fake_kw or {}))
    fake.start()
    w = GodotWorld(GodotOptions(launch=False, port=port, connect_timeout=5, step_timeout=kw.pop("step_timeout", 5), **kw),
                   name="FakeBody")
    return w, fake


# ------------------------------------------------------------------ framing
def test_framing_round_trip_json_and_blob():
    a, b = socket.socketpair()
    ch = Channel(b, who="X", timeout=2)
    payload = {"type": "step", "obs": [{"touch": [1.5, -2]}], "name": "caf\u00e9"}
    a.sendall(encode(payload))
    assert ch.recv() == payload
    raw = bytes(range(256)) * 3
    a.sendall(encode({"type": "step", "blob": len(raw)}) + encode_blob(raw))
    m = ch.recv()
    assert m["_blob"] == raw and ch.bytes_in == len(encode(payload)) + len(encode({"type": "step", "blob": len(raw)})) + 4 + len(raw)
    ch.send({"type": "action", "action": [{"drive": 2}]})
    n = struct.unpack("<I", a.recv(4))[0]
    assert json.loads(a.recv(n)) == {"type": "action", "action": [{"drive": 2}]}
    a.close()
    with pytest.raises(GodotError, match="X: Godot closed the connection"):
        ch.recv("'step'")


def test_framing_timeout_and_garbage_raise():
    a, b = socket.socketpair()
    ch = Channel(b, who="Y", timeout=0.2)
    with pytest.raises(GodotError, match=r"Y: no reply from Godot within 0.2s"):
        ch.recv("'step'")
    a.sendall(struct.pack("<I", 5) + b"{nope")
    with pytest.raises(GodotError, match="malformed JSON"):
        ch.recv()
    a.sendall(struct.pack("<I", 0xFFFFFFF0))
    with pytest.raises(GodotError, match="bad frame length"):
        ch.recv()


def test_decode_image_hex_blob_and_chw_shape():
    a = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)
    assert np.array_equal(decode_image(a.tobytes().hex(), [H, W, 3], None), a)
    blob = b"xx" + a.tobytes()
    assert np.array_equal(decode_image({"blob": [2, a.size]}, [3, H, W], blob), a)  # CHW size, HWC bytes
    with pytest.raises(GodotError, match="bytes"):
        decode_image(a.tobytes()[:-3].hex(), [H, W, 3], None, key="camera_2d")


def test_listener_fails_fast_when_godot_dies():
    lst = Listener(0, who="Z")
    t0 = time.monotonic()
    with pytest.raises(GodotError, match="Z: Godot never connected.*exited with code 3"):
        lst.accept(10, alive=lambda: "Godot exited with code 3")
    assert time.monotonic() - t0 < 5
    lst.close()


# ------------------------------------------------------------------ the world
@pytest.mark.parametrize("frames", ["hex", "binary"])
def test_world_maps_actions_by_name_and_drops_the_score(frames):
    w, fake = world(frames=frames)
    with w:
        assert w.binary == (frames == "binary")
        b0, b1 = w.bodies()
        assert list(b0.spec.action_heads) == ["drive", "turn"]  # the arena's order, though declared turn-first
        assert b0.spec.eye_shape == (H, W) and b0.spec.touch_channels == 3
        s = b0.reset(seed=3)
        assert np.array_equal(s.left, img(0, 0, 0)) and np.array_equal(s.right, img(0, 0, 1))
        assert (s.hp, s.energy) == (pytest.approx(0.9), pytest.approx(0.5))
        s1 = b1.reset()  # a sibling's reset right after the world's reset does not reset it again
        out = {}
        t = threading.Thread(target=lambda: out.setdefault(1, b1.act({"turn": 0, "drive": 1})))
        t.start()
        s = b0.act((2, 0))  # positional = head order: drive=2, turn=0
        t.join(5)
        sent = fake.received[-1]["action"]
        assert sent == [{"drive": 2, "turn": 0}, {"drive": 1, "turn": 0}]
        assert s.extra["action"] == {"drive": 2, "turn": 0} and out[1].extra["action"] == {"drive": 1, "turn": 0}
        assert np.array_equal(s.left, img(0, 1, 0)) and np.array_equal(out[1].right, img(1, 1, 1))
        for sense in (s, s1, out[1]):
            assert not hasattr(sense, "reward")
            assert all("reward" not in k for k in sense.extra) and 123.0 not in sense.extra.values()
        assert [m["type"] for m in fake.received].count("reset") == 1
    fake.join(5)
    assert fake.error is None and fake.received[-1]["type"] == "close"


def test_one_agents_death_respawns_only_that_agent():
    w, fake = world(fake_kw={"die_at": {1: 2}})
    with w:
        w.reset()
        w.step({0: {"drive": 2, "turn": 1}})
        senses = w.step({0: {"drive": 2, "turn": 1}})
        assert senses[1].dead and not senses[0].dead
        s = w.respawn(1)
        assert not s.dead and s.extra.get("respawned")
        assert fake.received[-1] == {"type": "call", "method": "respawn", "agent": 1}
        senses = w.step({})  # missing agents take the idle action (middle choices)
        assert fake.received[-1]["action"] == [{"drive": 1, "turn": 1}] * 2
        assert [m["type"] for m in fake.received].count("reset") == 1
        assert not senses[0].dead and senses[0].frame_id == 4


def test_disconnect_and_timeout_raise_errors_naming_the_body():
    w, fake = world(fake_kw={"n_agents": 1, "quit_at": 2})
    with GodotBody(w, 0, owns_world=True) as b:
        b.reset()
        b.act({"drive": 0, "turn": 2})
        with pytest.raises(GodotError, match=r"FakeBody: Godot closed the connection while we waited for 'step'"):
            b.act({"drive": 0, "turn": 2})
        with pytest.raises(GodotError, match="failed earlier"):
            b.act({"drive": 0, "turn": 2})
    w, fake = world(fake_kw={"n_agents": 1, "hang_at": 1}, step_timeout=0.3)
    with GodotBody(w, 0, owns_world=True) as b:
        b.reset()
        t0 = time.monotonic()
        with pytest.raises(GodotError, match=r"FakeBody: no reply from Godot within 0.3s"):
            b.act({"drive": 0, "turn": 2})
        assert time.monotonic() - t0 < 3


def test_waiting_for_the_editor_times_out():
    with pytest.raises(GodotError, match="did not connect to 127.0.0.1:.* within 0.3s"):
        GodotWorld(GodotOptions(launch=False, port=free_port(), connect_timeout=0.3))


def test_layout_of_a_plugin_world():
    """A Godot 4 plugin-style agent: one vector `obs`, a continuous and a discrete action, no hp/energy."""
    lay = AgentLayout.from_spaces({"obs": {"size": [5], "space": "box"}, "camera_2d": {"size": [3, 24, 32], "space": "box"}},
                                  {"move": {"size": 2, "action_type": "continuous"}, "jump": {"size": 2, "action_type": "discrete"}},
                                  "P")
    assert lay.spec.eye_shape == (24, 32) and lay.left == lay.right == "camera_2d" and lay.spec.touch_channels == 5
    assert dict(lay.spec.action_heads) == {"move.0": 3, "move.1": 3, "jump": 2}
    assert lay.wire_action({"move.0": 0, "move.1": 2, "jump": 1}) == {"move": [-1.0, 1.0], "jump": 1}
    assert lay.idle_action() == {"move": [0.0, 0.0], "jump": 1}
