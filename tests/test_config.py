"""The config: every section typed by the dataclass its owner declares, checked in one place, field-named errors."""
import re
from pathlib import Path

import pytest
import tomli_w

from edge_runtime.config import CheckpointConfig, Config, ConfigError, ConsoleConfig, ServiceConfig, section_types

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

EVERY_SECTION = {
    "model": {"width": 0.5},
    "rule": {"name": "survival"},
    "runtime": {"action_repeat": 2},
    "service": {"status_every_s": 2},
    "console": {"writable": True},
    "checkpoint": {"every_s": 120},
    "arena": {},
    "robot": {"eye_w": 32, "eye_h": 24},
    "camera": {"backend": "replay", "left": "l.mp4", "right": "r.mp4"},
    "mcu": {"port": "virtual", "virtual": {"n_touch": 4, "seed": 3}},
    "godot": {"port": 0, "n_agents": 2},
    "gym": {"eye_shape": [32, 32], "kwargs": {"max_episode_steps": 50}},
}


def test_every_section_is_typed_by_its_owner():
    cfg = Config.from_dict(EVERY_SECTION)
    owners = {name: st.owner for name, st in section_types().items()}
    assert owners["service"] == owners["console"] == owners["checkpoint"] == "runtime"
    assert owners["robot"] == owners["camera"] == owners["mcu"] == "robot"
    assert owners["godot"] == "godot" and owners["gym"] == "gym" and owners["arena"] == "arena"
    assert isinstance(cfg.service, ServiceConfig) and cfg.service.status_every_s == 2.0
    assert isinstance(cfg.console, ConsoleConfig) and cfg.console.writable
    assert isinstance(cfg.checkpoint, CheckpointConfig) and cfg.checkpoint.every_s == 120.0
    # the body sections come back as their packages' dataclasses, values coerced (int -> float, list -> tuple)
    assert type(cfg.robot).__module__ == "hardware.robot" and cfg.robot.eye_w == 32
    assert type(cfg.camera).__name__ == "CameraConfig" and cfg.camera.left == "l.mp4"
    assert type(cfg.mcu.virtual).__name__ == "VirtualMcuConfig" and cfg.mcu.virtual.n_touch == 4
    assert type(cfg.godot).__name__ == "GodotOptions" and cfg.godot.n_agents == 2
    assert cfg.gym.eye_shape == (32, 32) and cfg.gym.kwargs == {"max_episode_steps": 50}


def test_round_trip_through_toml():
    cfg = Config.from_dict(EVERY_SECTION)
    again = Config.from_dict(__import__("tomllib").loads(tomli_w.dumps(cfg.to_dict())))
    assert again.to_dict() == cfg.to_dict()
    assert again.sections == cfg.sections and again.model == cfg.model and again.rule == cfg.rule
    # an unset optional (gym.eye_shape = None) is left out, not written as something TOML cannot hold
    plain = Config.from_dict({"gym": {}})
    assert "eye_shape" not in plain.to_dict()["gym"]
    tomli_w.dumps(plain.to_dict())


@pytest.mark.parametrize("data, field", [
    ({"mcu": {"port": "virtual", "virtual": {"n_tuch": 3}}}, "mcu.virtual.n_tuch: unknown key"),
    ({"mcu": {"port": "virtual", "virtual": {"report_hz": 0}}}, "mcu.virtual.report_hz"),
    ({"mcu": {"port": "virtual", "virtual": 3}}, "mcu.virtual: must be a table"),
    ({"godot": {"port": "9000"}}, "godot.port: must be an integer"),
    ({"godot": {"xvfb": "maybe"}}, "godot.xvfb"),
    ({"gym": {"kwargs": 1}}, "gym.kwargs: must be a table"),
    ({"gym": {"eye_shape": [4, 4]}}, "gym.eye_shape"),
    ({"camera": {"backend": "replay"}}, "camera.left"),
    ({"robot": {"critcal_mv": 1}}, "robot.critcal_mv: unknown key"),
    ({"service": {"status_every_s": 0}}, "service.status_every_s"),
    ({"console": {"writable": "yes"}}, "console.writable: must be true/false"),
    ({"rule": {"gamma": 1.0}}, "rule.gamma"),
    ({"robto": {}}, "robto: unknown section"),
    ({"model": []}, "model: must be a table"),
])
def test_bad_values_name_the_field(data, field):
    with pytest.raises(ConfigError, match=field.replace(".", r"\.").replace("[", r"\[")):
        Config.from_dict(data)


def test_absent_sections_read_as_defaults_or_say_what_is_needed():
    cfg = Config.from_dict({})
    assert not cfg.has("godot") and cfg.godot.n_agents == 1  # defaults, not stored
    assert not cfg.has("mcu") and "mcu" not in cfg.to_dict()
    assert cfg.has("arena") and "arena" in cfg.to_dict()  # a body kind's own section is always there
    with pytest.raises(ConfigError, match=r"mcu: section needed for the robot body \(mcu\.port: required"):
        cfg.section("mcu", needed_by="the robot body")
    with pytest.raises(AttributeError, match="mcu: section needed"):
        cfg.mcu  # noqa: B018
    with pytest.raises(ConfigError, match="nope: unknown section"):
        cfg.section("nope")
    assert cfg.replace("godot", n_agents=3).godot.n_agents == 3 and not cfg.has("godot")


@pytest.mark.parametrize("name", ["virtual-robot.toml", "pi5-csi.toml", "jetson-csi.toml"])
def test_the_examples_load(name):
    cfg = Config.load(EXAMPLES / name)
    assert cfg.has("mcu") and cfg.has("camera") and cfg.mcu.port


DOCS = Path(__file__).resolve().parent.parent / "docs"
SECTION_DOCS = {"model": "config.md", "rule": "config.md", "runtime": "config.md", "arena": "config.md",
                "checkpoint": "checkpoints.md", "service": "service.md", "console": "console.md", "view": "view.md",
                "robot": "hardware.md", "camera": "hardware.md", "mcu": "hardware.md", "godot": "godot.md",
                "gym": "godot.md"}


def documented(text: str, section: str, name: str) -> bool:
    """In a table row, as a TOML line `name = ...`, or in backquotes."""
    return re.search(rf"(^\|[^\n]*\b{name}\b)|(^\s*{name}\s*=)|(`{name}`)|(`{section}\.{name}`)", text, re.M) is not None


def test_every_config_key_is_documented():
    """Docs are contracts: a user writing a config from the docs alone finds every key of every section."""
    import dataclasses

    from edge_runtime.config import CORE_SECTIONS
    from hardware.virtual_mcu import VirtualMcuConfig

    types = {**CORE_SECTIONS, **{n: st.load() for n, st in section_types().items()}}
    assert set(types) == set(SECTION_DOCS)
    missing = []
    for name, typ in types.items():
        text = (DOCS / SECTION_DOCS[name]).read_text()
        missing += [f"{name}.{f.name} (docs/{SECTION_DOCS[name]})" for f in dataclasses.fields(typ)
                    if not documented(text, name, f.name)]
    text = (DOCS / "hardware.md").read_text()
    missing += [f"mcu.virtual.{f.name}" for f in dataclasses.fields(VirtualMcuConfig) if not documented(text, "mcu.virtual", f.name)]
    assert missing == []
