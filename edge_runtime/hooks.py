"""What rides along the control loop: the Hook base class (no torch here, so the service and console stay light)."""
from __future__ import annotations

import typing

if typing.TYPE_CHECKING:
    from .body import Sense
    from .runtime import Runner


class Hook:
    """Something that rides along the loop (checkpoint timer, console, service notifier).

    Hooks run in the control loop's thread and must return quickly; anything
    slow (I/O on a serial port, disk writes) belongs in the hook's own thread.
    """

    def on_start(self, runner: "Runner") -> None:
        pass

    def on_step(self, runner: "Runner", sense: "Sense", metrics: dict) -> None:
        pass

    def on_death(self, runner: "Runner", lifespan: int) -> None:
        pass

    def on_stop(self, runner: "Runner", summary: dict) -> None:
        pass

    def on_wait(self, runner: "Runner", waiting_for: str) -> None:
        """Between polls while a dead `Revivable` body waits to be revived (no steps run meanwhile)."""

    def on_stop_requested(self, runner: "Runner") -> None:
        """A stop was asked for (SIGTERM, SIGINT, console), or the run reached its step count; may run in a
        signal handler: no blocking, no locks."""
