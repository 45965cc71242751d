"""The simulated bodies this package offers the runtime (entry points `edge_runtime.bodies` in pyproject.toml)."""
from __future__ import annotations

from edge_runtime.bodies import BodyError, BodyKind

from .arena import Arena, ArenaConfig


def _oracle():
    from .oracle import OracleBaseline

    return OracleBaseline()


def _make_godot(cfg, arg):
    from .godot_body import GodotBody, GodotError, GodotOptions

    try:
        return GodotBody.launch(GodotOptions.from_config(cfg))
    except GodotError as e:
        raise BodyError(str(e)) from None


def _make_gym(cfg, env_id):
    from .gym_body import GymBody, GymBodyError

    g = cfg.section("gym")
    try:
        return GymBody.make(env_id, eye_shape=g.eye_shape, decision_steps=g.decision_steps, **g.kwargs)
    except (GymBodyError, TypeError, ValueError) as e:
        raise BodyError(f"--body gym:{env_id}: {e}") from None


ARENA = BodyKind("arena", lambda cfg, arg: Arena(cfg.arena), "the built-in arena (the default of --sim)",
                 section="arena", section_type=ArenaConfig, default=True, policies={"oracle": _oracle})
GODOT = BodyKind("godot", _make_godot, "a Godot world over the Godot RL Agents protocol ([godot])",
                 config_sections={"godot": "sim_bridge.godot_options:GodotOptions"})
GYM = BodyKind("gym", _make_gym, "any gymnasium env: --body gym:ENV_ID ([gym])", takes_arg=True,
               config_sections={"gym": "sim_bridge.gym_body:GymConfig"})
