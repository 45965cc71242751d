"""The numpy learner's layers, forward and backward by hand (float32, batch 1, channels first): what each
MobileNetV3 layer computes and the chain rule through it. tests/test_numpy_learner.py holds them to torch."""
from __future__ import annotations

from functools import lru_cache

import numpy as np

F32 = np.float32
EPS = 1e-5  # GroupNorm's and layer_norm's default


def mean(x):
    """The mean of every element, float32 (ndarray.mean's Python wrapper costs more than the sum at these sizes)."""
    return np.add.reduce(x, axis=None) / F32(x.size)


def ln_fwd(x):
    xc = x - mean(x)
    inv = F32(1.0) / np.sqrt(mean(xc * xc) + F32(EPS))
    return xc * inv, inv


def ln_bwd(dy, y, inv):
    """d LayerNorm (no affine) over every element: inv * (dy - mean(dy) - y * mean(dy * y))."""
    return inv * (dy - mean(dy) - y * mean(dy * y))


def hswish_fwd(x):
    return x * np.clip(x + F32(3.0), F32(0.0), F32(6.0)) / F32(6.0)


def hswish_bwd(dy, x):
    return dy * np.where(x < -3.0, F32(0.0), np.where(x <= 3.0, x / F32(3.0) + F32(0.5), F32(1.0)))


def hsigmoid_fwd(x):
    return np.clip(x + F32(3.0), F32(0.0), F32(6.0)) / F32(6.0)


def hsigmoid_bwd(dy, x):
    return np.where((x > -3.0) & (x < 3.0), dy / F32(6.0), F32(0.0))


def act_fwd(kind, x):
    return hswish_fwd(x) if kind == "HS" else np.maximum(x, F32(0.0))


def act_bwd(kind, dy, x, y):
    return hswish_bwd(dy, x) if kind == "HS" else np.where(y > 0, dy, F32(0.0))


def padded(x, pad):
    if not pad:
        return x
    c, h, w = x.shape
    xp = np.zeros((c, h + 2 * pad, w + 2 * pad), F32)
    xp[:, pad:pad + h, pad:pad + w] = x
    return xp


def patches(xp, k, stride):
    """(C, Ho*Wo, k*k): what each output position's k x k kernel covers in the (padded) input, copied."""
    xp = np.ascontiguousarray(xp)  # the view below reads xp's buffer: it must be one block (it is, as called)
    c, h, w = xp.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    sc, sh, sw = xp.strides
    # a strided view made directly (as_strided's wrapper costs more than the view at these sizes)
    win = np.ndarray((c, ho, wo, k, k), xp.dtype, xp, 0, (sc, sh * stride, sw * stride, sh, sw))
    return win.reshape(c, ho * wo, k * k), ho, wo


# Depthwise convolutions hold each map's pixels on rows and the maps along columns: (pixels + 1, maps), the last
# row zero. A map is one channel of the lone learner, or one channel of one agent in a population (maps = agents x
# channels). Gathering every output's k x k window is then a copy of whole rows (numpy.take), and the sum over a
# window's taps runs along rows as long as the maps are many. Gathered from (C, H, W) instead, the windows are
# 3 or 5 numbers wide, and numpy's per-window loops were most of the convolution: of a lone step, and of a
# population's, where they grew with the agents.

@lru_cache(maxsize=None)
def window_rows(h: int, w: int, k: int, stride: int, pad: int) -> tuple[np.ndarray, int, int]:
    """(rows (Ho*Wo*k*k,), Ho, Wo): the pixel (y*w + x) each output position's taps read, in (position, tap)
    order; h*w (the zero row) where a tap falls in the padding."""
    ho, wo = (h + 2 * pad - k) // stride + 1, (w + 2 * pad - k) // stride + 1
    y = (np.arange(ho)[:, None, None, None] * stride + np.arange(k)[None, None, :, None] - pad)
    x = (np.arange(wo)[None, :, None, None] * stride + np.arange(k)[None, None, None, :] - pad)
    y, x = np.broadcast_arrays(y, x)
    rows = np.where((y >= 0) & (y < h) & (x >= 0) & (x < w), y * w + x, h * w)
    return rows.reshape(-1), ho, wo


@lru_cache(maxsize=None)
def input_rows(h: int, w: int, k: int, stride: int, pad: int) -> np.ndarray:
    """(h*w*k*k,): for each input pixel and tap, the output position whose window reads that pixel at that tap,
    in (pixel, tap) order; Ho*Wo (the zero row) where none does (the transposed convolution's gather)."""
    rows, ho, wo = window_rows(h, w, k, stride, pad)
    out = np.full((h * w + 1, k * k), ho * wo)
    pos, tap = np.divmod(np.arange(rows.size), k * k)
    out[rows, tap] = pos  # a pixel is read at most once per tap; padding taps land on the dropped last row
    return out[:-1].reshape(-1)


def as_rows(x: np.ndarray) -> np.ndarray:
    """(..., H, W) -> (H*W + 1, maps): pixels on rows, the leading axes flattened into columns, a zero row last."""
    m = x.size // (x.shape[-1] * x.shape[-2])
    r = np.empty((x.shape[-1] * x.shape[-2] + 1, m), F32)
    r[:-1] = x.reshape(m, -1).T
    r[-1] = 0.0
    return r


def depthwise_fwd(x, w, k: int, stride: int, pad: int):
    """y[m] = sum_ij w[m, i, j] * x_padded[m, stride*oy + i, stride*ox + j] for every map m.
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


def adaptive_pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """adaptive_avg_pool's averaging as a matrix: row i averages inputs floor(i*n/m) .. ceil((i+1)*n/m)."""
    m = np.zeros((n_out, n_in), F32)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m
