"""RollbackRing: RAM snapshots of everything a death rollback must restore.

A snapshot holds tensors (parameters, eligibility traces, optimiser state,
the thought) and plain values (step counters, running statistics). Restoring
copies the saved tensors back in place, so a rollback is bit-exact and the
tensors the rest of the code holds stay the same objects. The tensors are torch's
or numpy arrays (the numpy learner's); torch is imported only to restore torch's.
"""
from __future__ import annotations

import copy
from collections import deque
from dataclasses import dataclass, field

import numpy as np


def _copy(t):
    return t.copy() if isinstance(t, np.ndarray) else t.detach().clone()


@dataclass
class Snapshot:
    step: int
    tensors: dict[str, list]  # torch tensors or numpy arrays
    values: dict = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(t.nbytes for ts in self.tensors.values() for t in ts)


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

    def push(self, step: int, tensors: dict[str, list], values: dict | None = None) -> Snapshot:
        snap = Snapshot(
            step=step,
            tensors={k: [_copy(t) for t in ts] for k, ts in tensors.items()},
            values=copy.deepcopy(values or {}),
        )
        self._ring.append(snap)
        self.taken += 1
        return snap

    def latest(self) -> Snapshot | None:
        return self._ring[-1] if self._ring else None

    def oldest(self) -> Snapshot | None:
        return self._ring[0] if self._ring else None

    def restore(self, tensors: dict[str, list], which: str = "latest") -> Snapshot | None:
        """Copy a snapshot back into `tensors` (same names, shapes). Returns it, or None if the ring is empty.
        Groups of the snapshot that `tensors` does not name are left for the caller (snap.tensors)."""
        snap = self.latest() if which == "latest" else self.oldest()
        if snap is None:
            return None
        pairs = []
        for k, ts in tensors.items():
            saved = snap.tensors[k]
            if len(saved) != len(ts):
                raise ValueError(f"RollbackRing: snapshot group {k!r} has {len(saved)} tensors, live has {len(ts)}")
            pairs += zip(ts, saved)
        if pairs and isinstance(pairs[0][0], np.ndarray):
            for dst, src in pairs:
                dst[...] = src
        else:
            import torch

            with torch.no_grad():
                for dst, src in pairs:
                    dst.copy_(src)
        self.restored += 1
        return snap

    def nbytes(self) -> int:
        return sum(s.nbytes for s in self._ring)

    def clear(self):
        self._ring.clear()
