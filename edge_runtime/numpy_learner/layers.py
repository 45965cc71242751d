"""The numpy learner's layers, forward and backward by hand (float32, batch 1, channels first): what each
MobileNetV3 layer computes and the chain rule through it. tests/test_numpy_learner.py holds them to torch."""
from __future__ import annotations

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


def depthwise(xp, w, k, stride):
    """y[c] = sum_ij w[c, i, j] * xp[c, i + stride*y, j + stride*x], as one batched matrix product over channels."""
    cols, ho, wo = patches(xp, k, stride)
    return np.matmul(cols, w.reshape(-1, k * k, 1)).reshape(-1, ho, wo), cols


def depthwise_input_grad(dy, w, k, stride, pad, h, wd):
    """d x of a depthwise convolution: dy spread back by stride (zeros between) and convolved with the flipped
    kernel, the transposed convolution, cropped to the unpadded input."""
    c, ho, wo = dy.shape
    fh, fw = (ho - 1) * stride + 1, (wo - 1) * stride + 1
    z = np.zeros((c, fh + 2 * (k - 1), fw + 2 * (k - 1)), F32)
    z[:, k - 1:k - 1 + fh:stride, k - 1:k - 1 + fw:stride] = dy
    full, _ = depthwise(z, np.ascontiguousarray(w[:, ::-1, ::-1]), k, 1)  # (c, fh + k - 1, fw + k - 1)
    dxp = np.zeros((c, h + 2 * pad, wd + 2 * pad), F32)
    dxp[:, :full.shape[1], :full.shape[2]] = full[:, :h + 2 * pad, :wd + 2 * pad]
    return dxp[:, pad:pad + h, pad:pad + wd]


def adaptive_pool_matrix(n_in: int, n_out: int) -> np.ndarray:
    """adaptive_avg_pool's averaging as a matrix: row i averages inputs floor(i*n/m) .. ceil((i+1)*n/m)."""
    m = np.zeros((n_out, n_in), F32)
    for i in range(n_out):
        lo, hi = (i * n_in) // n_out, -((-(i + 1) * n_in) // n_out)
        m[i, lo:hi] = 1.0 / (hi - lo)
    return m
