"""RollbackRing: RAM snapshots of everything a death rollback must restore.

A snapshot holds tensors (parameters, eligibility traces, optimiser state,
the thought) and plain values (step counters, running statistics). Restoring
copies the saved tensors back in place, so a rollback is bit-exact and the
tensors the rest of the code holds stay the same objects.
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field

import torch


@dataclass
class Snapshot:
    step: int
    tensors: dict[str, list[torch.Tensor]]
    values: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for ts in self.tensors.values() for t in ts)


class RollbackRing:
    def __init__(self, depth: int):
        if depth < 1:
            raise ValueError("RollbackRing: depth must be >= 1")
        self.depth = depth
        self._ring: deque[Snapshot] = deque(maxlen=depth)
        self.taken = 0
        self.restored = 0

    def __len__(self):
        return len(self._ring)

    def push(self, step: int, tensors: dict[str, list[torch.Tensor]], values: dict | None = None) -> Snapshot:
        snap = Snapshot(
            step=step,
            tensors={k: [t.detach().clone() for t in ts] for k, ts in tensors.items()},
            values=copy.deepcopy(values or {}),
        )
        self._ring.append(snap)
        self.taken += 1
        return snap

    def latest(self) -> Snapshot | None:
        return self._ring[-1] if self._ring else None

    def oldest(self) -> Snapshot | None:
        return self._ring[0] if self._ring else None

    def restore(self, tensors: dict[str, list[torch.Tensor]], which: str = "latest") -> Snapshot | None:
        """Copy a snapshot back into `tensors` (same names, shapes). Returns it, or None if the ring is empty."""
        snap = self.latest() if which == "latest" else self.oldest()
        if snap is None:
            return None
        with torch.no_grad():
            for k, ts in tensors.items():
                saved = snap.tensors[k]
                if len(saved) != len(ts):
                    raise ValueError(f"RollbackRing: snapshot group {k!r} has {len(saved)} tensors, live has {len(ts)}")
                for dst, src in zip(ts, saved):
                    dst.copy_(src)
        self.restored += 1
        return snap

    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._ring)

    def clear(self):
        self._ring.clear()
