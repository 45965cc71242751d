"""The checkpoint file: an 84-byte checksummed header and a tensor-only payload (see the package docstring)."""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import logging
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np


log = logging.getLogger("edge_runtime.checkpoint")


MAGIC = b"ERCKPT\r\n"
VERSION = 1
_HEAD = struct.Struct("<8sHHIQQQd32s")  # everything the CRC covers
HEADER = struct.Struct("<8sHHIQQQd32sI")
HEADER_SIZE = HEADER.size  # 84
SLOTS = ("A", "B")


class CheckpointError(Exception):
    """A checkpoint could not be written, found or used."""


class CheckpointWriteError(CheckpointError):
    pass


class NoValidCheckpoint(CheckpointError):
    pass


class CheckpointMismatch(CheckpointError):
    """The checkpoint belongs to another config or body; the message lists what differs."""


# ---------------------------------------------------------------------------- the file format
@dataclass
class SlotInfo:
    slot: str
    path: str
    valid: bool
    error: str | None = None
    sequence: int | None = None
    step: int | None = None
    bytes: int | None = None
    created: float | None = None
    version: int | None = None

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def describe(self) -> str:
        return f"slot {self.slot} (sequence {self.sequence}, step {self.step})"


def header(payload, sequence: int, step: int, created: float | None = None, version: int = VERSION,
           magic: bytes = MAGIC) -> bytes:
    """The header that goes before `payload` (bytes or a memoryview) on flash."""
    created = time.time() if created is None else created
    head = _HEAD.pack(magic, version, HEADER_SIZE, 0, sequence, step, len(payload), created, hashlib.sha256(payload).digest())
    return head + struct.pack("<I", zlib.crc32(head))


def pack(payload, sequence: int, step: int, created: float | None = None, version: int = VERSION,
         magic: bytes = MAGIC) -> bytes:
    """Header + payload, as written to flash (one bytes object: for tools and tests; the store writes the two
    parts one after the other instead, without a third copy of the payload in memory)."""
    return header(payload, sequence, step, created, version, magic) + bytes(payload)


def parse(data: bytes, slot: str = "?", path: str = "") -> tuple[SlotInfo, bytes | None]:
    """Check a whole file's bytes. Returns (info, payload); payload is None when invalid (info.error says why)."""
    bad = lambda why, **kw: (SlotInfo(slot, path, False, why, bytes=len(data), **kw), None)  # noqa: E731
    if len(data) == 0:
        return bad("empty file (zero length)")
    if len(data) < HEADER_SIZE:
        return bad(f"truncated header ({len(data)} of {HEADER_SIZE} bytes)")
    magic, version, hsize, _flags, seq, step, plen, created, digest, crc = HEADER.unpack_from(data)
    if magic != MAGIC:
        return bad(f"wrong magic {magic!r} (expected {MAGIC!r}): not a checkpoint")
    if version != VERSION:
        return bad(f"format version {version} not supported (this build reads version {VERSION})", version=version)
    if zlib.crc32(data[:_HEAD.size]) != crc:
        return bad("header CRC32 mismatch (corrupted header)")
    if hsize != HEADER_SIZE:
        return bad(f"header size {hsize} (expected {HEADER_SIZE})")
    kw = dict(sequence=seq, step=step, created=created, version=version)
    have = len(data) - HEADER_SIZE
    if have != plen:
        return bad(f"payload length {have} bytes, header says {plen} ({'truncated' if have < plen else 'trailing bytes'})", **kw)
    payload = data[HEADER_SIZE:]
    if hashlib.sha256(payload).digest() != digest:
        return bad("payload SHA-256 mismatch (torn or corrupted payload)", **kw)
    return SlotInfo(slot, path, True, None, bytes=len(data), **kw), payload


# a numpy learner's payload (model.backend = numpy): this prefix, then an .npz archive whose `__skeleton__`
# entry is the state as JSON with each array replaced by {"__array__": "a<i>"}, the name of its entry
NUMPY_PAYLOAD = b"ERNPZ\n"


def is_numpy_payload(payload) -> bool:
    """Whether a payload is a numpy learner's (else torch.save's), read from its first bytes alone."""
    return bytes(payload[:len(NUMPY_PAYLOAD)]) == NUMPY_PAYLOAD


def _encode_numpy(state: dict) -> memoryview:
    arrays: dict[str, np.ndarray] = {}

    def skeleton(x):
        if isinstance(x, dict):
            return {k: skeleton(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [skeleton(v) for v in x]
        if isinstance(x, np.ndarray):
            name = f"a{len(arrays)}"
            arrays[name] = x
            return {"__array__": name}
        return x

    sk = json.dumps(skeleton(state))
    buf = io.BytesIO()
    buf.write(NUMPY_PAYLOAD)
    np.savez(buf, __skeleton__=np.frombuffer(sk.encode(), np.uint8), **arrays)
    return buf.getbuffer()


def _decode_numpy(payload) -> dict:
    with np.load(io.BytesIO(bytes(payload[len(NUMPY_PAYLOAD):])), allow_pickle=False) as z:
        arrays = {k: z[k] for k in z.files}

    def build(x):
        if isinstance(x, dict):
            if set(x) == {"__array__"}:
                return arrays[x["__array__"]]
            return {k: build(v) for k, v in x.items()}
        if isinstance(x, list):
            return [build(v) for v in x]
        return x

    return build(json.loads(arrays.pop("__skeleton__").tobytes()))


def encode(state: dict) -> memoryview:
    """The state serialised; a view of the serialiser's own buffer, not a copy of it (the save's peak memory
    is what a small board has to spare). A numpy learner's state (meta.backend = numpy) is written without torch."""
    if isinstance(state.get("meta"), dict) and state["meta"].get("backend") == "numpy":
        return _encode_numpy(state)
    import torch  # (here, not at import: a numpy learner's run imports this package and never loads torch)

    buf = io.BytesIO()
    torch.save(state, buf)
    return buf.getbuffer()


def decode(payload: bytes) -> dict:
    """Plain data only: torch.load(weights_only=True), and np.load(allow_pickle=False) for a numpy learner's
    payload, refuse anything that would run code."""
    if is_numpy_payload(payload):
        try:
            state = _decode_numpy(payload)
        except Exception as e:  # noqa: BLE001 - any failure means: not a usable checkpoint
            raise CheckpointError(f"payload is not plain array data ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
        if not isinstance(state, dict):
            raise CheckpointError(f"payload is a {type(state).__name__}, expected a dict")
        return state
    import torch

    try:
        state = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any failure means: not a usable checkpoint
        raise CheckpointError(f"payload is not plain tensor data ({type(e).__name__}: {str(e).splitlines()[0][:200]})") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"payload is a {type(state).__name__}, expected a dict")
    return state
