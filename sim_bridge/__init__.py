"""Simulated bodies: the built-in arena (default), and the gymnasium registration `EdgeArena-v0`."""
from .arena import Arena, ArenaConfig

__all__ = ["Arena", "ArenaConfig"]

try:  # registering needs gymnasium, a core dependency
    from gymnasium.envs.registration import register, registry

    if "EdgeArena-v0" not in registry:
        register(id="EdgeArena-v0", entry_point="sim_bridge.gym_env:EdgeArenaEnv")
except ImportError:  # pragma: no cover
    pass
