"""The [godot] config section: which world to launch, how to talk to it."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from .godot_protocol import DEFAULT_PORT

log = logging.getLogger("sim_bridge.godot")

ARENA_PROJECT = Path(__file__).resolve().parent / "godot_arena"
GODOT_BINARIES = ("godot3-runner", "godot3", "godot")


@dataclass
class GodotOptions:
    """The ``[godot]`` config section (also what ``GodotBody.launch(**kw)`` takes)."""

    project: str = ""  # a Godot project directory ("" = the bundled sim_bridge/godot_arena) or an exported game binary
    binary: str = ""  # the Godot executable ("" = first of godot3-runner, godot3, godot on PATH)
    launch: bool = True  # false: do not start Godot, wait for the editor's Play
    port: int = DEFAULT_PORT  # 0 picks a free port (only when launching)
    xvfb: str = "auto"  # auto (xvfb-run when $DISPLAY is unset) | yes | no
    n_agents: int = 1  # robots in the bundled arena (--n_agents)
    agent: int = 0  # the agent `run --body godot` drives
    frames: str = "binary"  # binary (fast path, if the world supports it) | hex (the compatible path)
    eye_w: int = 64  # bundled arena's eye size (--eye_w/--eye_h)
    eye_h: int = 48
    action_repeat: int = 1  # world steps per action, done inside Godot (--action_repeat)
    decision_steps: int = 0  # actions per decision (the body's action_repeat); 0: 4 for a drive/turn robot, else 1
    seed: int = 0  # --env_seed
    connect_timeout: float = 60.0  # seconds for Godot to connect (waiting for the editor: make it long)
    step_timeout: float = 20.0  # seconds for any one reply
    extra_args: str = ""  # more command-line arguments for the game, space-separated

    def __post_init__(self):
        from edge_runtime.config import check

        w = "godot"
        check(0 <= self.port <= 65535, f"{w}.port", f"must be 0..65535, got {self.port}")
        check(self.launch or self.port > 0, f"{w}.port", "0 (a free port) needs launch = true")
        check(self.xvfb in ("auto", "yes", "no"), f"{w}.xvfb", f"must be auto|yes|no, got {self.xvfb!r}")
        check(self.frames in ("binary", "hex"), f"{w}.frames", f"must be binary|hex, got {self.frames!r}")
        check(self.n_agents >= 1, f"{w}.n_agents", "must be >= 1")
        check(0 <= self.agent < self.n_agents, f"{w}.agent", f"must be in 0..{self.n_agents - 1}")
        check(self.eye_w >= 8 and self.eye_h >= 8, f"{w}.eye_w", "eye_w and eye_h must be >= 8")
        check(self.action_repeat >= 1, f"{w}.action_repeat", "must be >= 1")
        check(self.decision_steps >= 0, f"{w}.decision_steps", "must be >= 0 (0: 4 for a drive/turn robot, else 1)")
        check(self.connect_timeout > 0, f"{w}.connect_timeout", "must be > 0")
        check(self.step_timeout > 0, f"{w}.step_timeout", "must be > 0")

    @classmethod
    def from_config(cls, cfg, **overrides) -> "GodotOptions":
        from edge_runtime.config import build_section, section_to_dict

        return build_section(cls, "godot", {**section_to_dict(cfg.section("godot")), **overrides})
