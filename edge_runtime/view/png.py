"""A PNG encoder for small RGB images, stdlib only (zlib): the eyes are 32x24 to 64x48 pixels."""
from __future__ import annotations

import struct
import zlib

import numpy as np


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def png_rgb(img: np.ndarray) -> bytes:
    """(h, w, 3) uint8 -> PNG bytes (8-bit RGB, filter 0 on every row)."""
    if img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
        raise ValueError(f"png_rgb: expected (h, w, 3) uint8, got {img.shape} {img.dtype}")
    h, w, _ = img.shape
    rows = np.zeros((h, 1 + 3 * w), np.uint8)  # each scanline starts with its filter byte (0: none)
    rows[:, 1:] = img.reshape(h, 3 * w)
    head = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", head) + _chunk(b"IDAT", zlib.compress(rows.tobytes(), 6)) + _chunk(b"IEND", b"")
