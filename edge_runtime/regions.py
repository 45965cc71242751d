"""Where each named region sits in the brain's one output tensor (torch-free: the numpy learner reads it too)."""
from __future__ import annotations

import functools
from dataclasses import dataclass


@dataclass(frozen=True)
class Regions:
    """Where each named region sits in the output tensor."""

    heads: tuple[tuple[str, int], ...]
    loss: int
    lr: int
    thought: int

    @property
    def actions(self) -> int:
        return sum(n for _, n in self.heads)

    @property
    def total(self) -> int:
        return self.actions + self.loss + self.lr + self.thought

    @functools.cached_property
    def _slices(self) -> dict[str, slice]:
        out, i = {}, 0
        for name, n in (("actions", self.actions), ("loss", self.loss), ("lr", self.lr), ("thought", self.thought)):
            out[name] = slice(i, i + n)
            i += n
        return out

    def slices(self) -> dict[str, slice]:
        return self._slices  # computed once: split() runs on every forward
