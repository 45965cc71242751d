"""Flash checkpoint store: atomic, checksummed A/B slots with a wear budget, and resume.

A checkpoint file is a fixed 84-byte header followed by the payload:

    offset size  field
    0      8     magic b"ERCKPT\\r\\n"  (the CR LF catches text-mode mangling)
    8      2     format version (uint16, little endian; this build reads 1)
    10     2     header size (84)
    12     4     flags (0)
    16     8     sequence number (uint64; +1 on every save into the store)
    24     8     step (uint64; decisions learned from when it was taken)
    32     8     payload length in bytes (uint64)
    40     8     created (float64 unix seconds)
    48     32    SHA-256 of the payload
    80     4     CRC32 of header bytes 0..79

The payload is `torch.save` of a dict that holds only tensors and plain values
(numbers, strings, lists, dicts; config and BodySpec ride along as JSON text).
It is read back with `torch.load(weights_only=True)`, which refuses to run any
pickled code. A numpy learner's payload (model.backend = numpy) is b"ERNPZ\n" and
an .npz archive instead (fileformat.NUMPY_PAYLOAD; docs/checkpoints.md), read with
np.load(allow_pickle=False) and never touching torch.

Two slots, ckpt-A.bin and ckpt-B.bin, live in one directory. A save writes the
slot that does *not* hold the newest valid checkpoint: into a temporary file in
the same directory, fsync, os.replace onto the slot name, fsync the directory.
A crash at any moment leaves the other slot untouched, so at start the newest
valid slot (highest sequence whose header CRC and payload SHA-256 check out and
whose payload decodes) is loaded, and any invalid slot is named in the log with
the reason.

Modules, one job each: `fileformat` (header, payload, errors), `store` (the
two slots, locking), `state` (what a checkpoint holds: capture, compare,
apply), `hook` (timer/request/stop saves, the writer thread, the wear budget,
`[checkpoint]`), `run` (wiring for the CLI and the service, run directories,
verify).
"""
from .fileformat import (HEADER_SIZE, MAGIC, SLOTS, VERSION, CheckpointError, CheckpointMismatch, CheckpointWriteError,
                         NoValidCheckpoint, SlotInfo, decode, encode, pack, parse)
from .hook import CheckpointConfig, CheckpointHook, budget, ring_cost
from .run import (checkpoint_hooks, format_verify, pin_backend_to_checkpoint, run_dir_holds_a_run, set_run_aside,
                  store_dir, verify)
from .state import apply, capture, check_matches, differences
from .store import CheckpointStore, resolve_dir

__all__ = ["HEADER_SIZE", "MAGIC", "SLOTS", "VERSION", "CheckpointConfig", "CheckpointError", "CheckpointHook",
           "CheckpointMismatch", "CheckpointStore", "CheckpointWriteError", "NoValidCheckpoint", "SlotInfo", "apply",
           "budget", "capture", "check_matches", "checkpoint_hooks", "decode", "differences", "encode", "format_verify",
           "pack", "parse", "pin_backend_to_checkpoint", "resolve_dir", "ring_cost", "run_dir_holds_a_run",
           "set_run_aside", "store_dir", "verify"]
