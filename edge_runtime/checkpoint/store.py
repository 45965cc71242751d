"""Two slots in one directory: durable atomic saves, the newest valid slot on load, one writer at a time."""
from __future__ import annotations

import errno
import fcntl
import logging
import os
import threading
from pathlib import Path

from .fileformat import SLOTS, VERSION, CheckpointError, CheckpointWriteError, NoValidCheckpoint, SlotInfo, decode, header, parse

log = logging.getLogger("edge_runtime.checkpoint")


def _fsync_dir(path: Path):
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def resolve_dir(path: str | Path) -> Path:
    """A run directory (holding checkpoints/) or the checkpoint directory itself."""
    p = Path(path)
    if not any((p / f"ckpt-{s}.bin").exists() for s in SLOTS) and (p / "checkpoints").is_dir():
        return p / "checkpoints"
    return p


# ---------------------------------------------------------------------------- the store
class CheckpointStore:
    """Two slots in one directory; save() is durable and atomic, load() takes the newest valid slot."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        self.saves = 0
        self.bytes_written = 0
        self._lock_fd = None
        self._write_lock = threading.Lock()

    def slot_path(self, slot: str) -> Path:
        return self.dir / f"ckpt-{slot}.bin"

    # -------------------------------------------------------- reading
    def scan(self, decode_payload: bool = False) -> list[tuple[SlotInfo, bytes | None]]:
        out = []
        for s in SLOTS:
            p = self.slot_path(s)
            try:
                data = p.read_bytes()
            except FileNotFoundError:
                out.append((SlotInfo(s, str(p), False, "missing"), None))
                continue
            except OSError as e:
                out.append((SlotInfo(s, str(p), False, f"unreadable ({e.strerror})"), None))
                continue
            info, payload = parse(data, s, str(p))
            if info.valid and decode_payload:
                try:
                    decode(payload)
                except CheckpointError as e:
                    info.valid, info.error, payload = False, str(e), None
            out.append((info, payload))
        return out

    def newest(self, scanned=None) -> tuple[SlotInfo, bytes] | None:
        scanned = self.scan() if scanned is None else scanned
        valid = [(i, p) for i, p in scanned if i.valid]
        return max(valid, key=lambda ip: ip[0].sequence) if valid else None

    def load(self) -> tuple[SlotInfo, dict]:
        """The newest valid checkpoint, decoded. Invalid slots are logged with the reason; raises NoValidCheckpoint."""
        scanned = self.scan()
        cands = sorted([ip for ip in scanned if ip[0].valid], key=lambda ip: -ip[0].sequence)
        rejected = [i for i, _ in scanned if not i.valid]
        for info, payload in cands:
            try:
                state = decode(payload)
            except CheckpointError as e:
                info.valid, info.error = False, str(e)
                rejected.append(info)
                continue
            for r in rejected:
                if r.error == "missing":
                    log.info("checkpoint slot %s (%s) is missing; using %s", r.slot, r.path, info.describe())
                else:
                    log.warning("checkpoint slot %s (%s) is invalid: %s; using %s", r.slot, r.path, r.error, info.describe())
            return info, state
        why = "; ".join(f"slot {r.slot}: {r.error}" for r in rejected)
        raise NoValidCheckpoint(f"no valid checkpoint in {self.dir} ({why})")

    # -------------------------------------------------------- writing
    def lock(self):
        """Only one process may write a store: an exclusive flock on <dir>/.lock (released by the kernel on exit)."""
        self.dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.dir / ".lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            raise CheckpointError(f"checkpoint directory {self.dir} is in use by another process") from None
        self._lock_fd = fd

    def unlock(self):
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def clean_temp(self):
        for s in SLOTS:
            t = self.dir / f"ckpt-{s}.bin.tmp"
            if t.exists():
                log.info("removing %s left by an interrupted save", t)
                t.unlink(missing_ok=True)

    def save(self, payload, step: int) -> SlotInfo:
        """Write payload durably into the slot not holding the newest valid checkpoint. Raises CheckpointWriteError."""
        with self._write_lock:
            self.dir.mkdir(parents=True, exist_ok=True)
            newest = self.newest()
            seq = newest[0].sequence + 1 if newest else 1
            slot = "A" if newest is None or newest[0].slot == "B" else "B"
            final = self.slot_path(slot)
            tmp = self.dir / f"ckpt-{slot}.bin.tmp"
            head = header(payload, seq, step)
            try:
                fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
                try:
                    for part in (head, payload):  # header then payload, with no joined copy of the two
                        view = memoryview(part)
                        while view:
                            n = os.write(fd, view)
                            view = view[n:]
                    os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, final)
                _fsync_dir(self.dir)
            except OSError as e:
                try:
                    tmp.unlink(missing_ok=True)
                except OSError:
                    pass
                kept = f"the previous checkpoint ({newest[0].describe()}) is intact" if newest else "there is no previous checkpoint"
                raise CheckpointWriteError(f"checkpoint save into {final} failed: {e.strerror or e} (errno {e.errno}"
                                           f"{', ' + errno.errorcode.get(e.errno, '') if e.errno else ''}); {kept}") from None
            self.saves += 1
            self.bytes_written += len(head) + len(payload)
            return SlotInfo(slot, str(final), True, None, seq, step, len(head) + len(payload), None, VERSION)
