"""The population's depthwise convolutions (batched.py), over N x C maps at once: N agents, C channels each.

Each layer's input is held with the pixels on rows and the maps along columns, (pixels + 1, maps), the last
row zero (where a tap falls in the padding). Gathering every output's k x k window is then a copy of whole rows
(numpy.take), and the sum over a window's taps runs along rows of N x C numbers. Gathered map by map, as
layers.depthwise does (and the population's earlier kernel did), the windows are 3 or 5 numbers wide and
numpy loops once per window: that was half of a 16-agent population's passes.

The lone learner keeps layers.depthwise. This kernel would run its loop 1.05x faster, but it sums in another
order, and with it the 25k bench's greedy policy fell short in one seed of five (README, Populations).
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

from .layers import F32


@lru_cache(maxsize=None)
def window_rows(h: int, w: int, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """(rows (Ho*Wo*k*k,), Ho, Wo): the pixel (y*w + x) each output position's taps read, in (position, tap)
    order; h*w (the zero row) where a tap falls in the padding."""
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    y = (np.arange(ho)[:, None, None, None] * stride + np.arange(k)[None, None, :, None] - pad)
    x = (np.arange(wo)[None, :, None, None] * stride + np.arange(k)[None, None, None, :] - pad)
    y, x = np.broadcast_arrays(y, x)
    rows = np.where((y >= 0) & (y < h) & (x >= 0) & (x < w), y * w + x, h * w).reshape(-1)
    rows.flags.writeable = False  # cached: shared by every call with this shape
    return rows, ho, wo


@lru_cache(maxsize=None)
def input_rows(h: int, w: int, k: int, stride: int, pad: int) -> np.ndarray:
    """(h*w*k*k,): for each input pixel and tap, the output position whose window reads that pixel at that tap,
    in (pixel, tap) order; Ho*Wo (the zero row) where none does (the transposed convolution's gather)."""
    rows, ho, wo = window_rows(h, w, k, stride, pad)
    out = np.full((h * w + 1, k * k), ho * wo)
    pos, tap = np.divmod(np.arange(rows.size), k * k)
    out[rows, tap] = pos  # a pixel is read at most once per tap; padding taps land on the dropped last row
    out = out[:-1].reshape(-1)
    out.flags.writeable = False
    return out


def as_rows(x: np.ndarray) -> np.ndarray:
    """(..., H, W) -> (H*W + 1, maps): pixels on rows, the leading axes flattened into columns, a zero row last."""
    m = x.size // (x.shape[-1] * x.shape[-2])
    r = np.empty((x.shape[-1] * x.shape[-2] + 1, m), F32)
    r[:-1] = x.reshape(m, -1).T
    r[-1] = 0.0
    return r


def depthwise_fwd(x, w, k: int, stride: int, pad: int):
    """y[m] = sum_ij w[m, i, j] * x_padded[m, stride*oy + i, stride*ox + j] for every map m (depthwise's sum).
    x (..., H, W), w (..., k, k) with the same leading axes -> (y (..., Ho, Wo), what depthwise_bwd reads)."""
    h, wd = x.shape[-2:]
    rows, ho, wo = window_rows(h, wd, k, stride, pad)
    m = w.size // (k * k)
    win = as_rows(x).take(rows, axis=0).reshape(ho * wo, k * k, m)
    taps = np.ascontiguousarray(w.reshape(m, k * k).T)
    y = np.einsum("ptm,tm->pm", win, taps)
    return y.T.reshape(*x.shape[:-2], ho, wo), (win, taps, x.shape, k, stride, pad)


def depthwise_bwd(dy, cache, g_w) -> np.ndarray:
    """The weights' gradient written into g_w (w's shape); returns d x: the transposed convolution, each input
    pixel summing the taps of the output positions whose windows read it."""
    win, taps, x_shape, k, stride, pad = cache
    d = as_rows(dy)
    np.copyto(g_w, np.einsum("pm,ptm->tm", d[:-1], win).T.reshape(g_w.shape))
    h, wd = x_shape[-2:]
    back = d.take(input_rows(h, wd, k, stride, pad), axis=0).reshape(h * wd, k * k, -1)
    return np.einsum("qtm,tm->qm", back, taps).T.reshape(x_shape)
