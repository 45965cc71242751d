"""N numpy brains as one computation: the numpy learner's layers with a leading agent axis.

A population (edge_runtime/population/) steps N agents at once. At batch 1 the numpy learner's step is
almost all per-call cost (about two thousand small numpy calls; the arithmetic of this compact MobileNetV3 is
a fraction of a millisecond), so N agents computed as one set of calls, each call over N agents' arrays, cost
little more than one agent. Every layer is tower.py's, with the agent as a leading axis on the activations and
on the weights:

    stem (full convolution)   y_n = W_n @ cols(x_n)                 one batched matrix product over agents
    pointwise (1x1) conv      y_n = W_n @ x_n
    depthwise conv            y[p, m] = sum_t win[p, t, m] * w[t, m]   over N x C maps (depthwise_rows.py)
    LayerNorm (GroupNorm(1))  over each agent's (C, H, W) alone
    linear (fc, out)          y_n = W_n @ x_n                       a batched matrix-vector product

The depthwise convolution sums each window in another order than the lone learner's (depthwise_rows.py), so
agent n's numbers equal a lone agent's to float32 rounding, not bit for bit.

Weight gradients land in each agent's own row of a stacked gradient, so agent n's gradient is exactly its own.
Agent n's parameters live in row n of one (N, P) float32 array (`BatchedTower.flat`), in `Tower`'s order: the
rule's trace arithmetic runs row by row on arrays that stay in cache, and one agent's state is one row to copy.

tests/test_numpy_population.py holds agent n of a batch to a lone `Tower` given the same inputs.
"""
from __future__ import annotations

import numpy as np

from .depthwise_rows import depthwise_bwd, depthwise_fwd
from .brain import EyeNorm, NumpyBrain
from .layers import F32, EPS, act_bwd, act_fwd, hsigmoid_bwd, hsigmoid_fwd
from .tower import Tower


def _mean(x):
    """(N,) means over every axis but the first."""
    return np.add.reduce(x.reshape(x.shape[0], -1), axis=1) / F32(x[0].size)


def _bcast(v, like):
    return v.reshape(-1, *([1] * (like.ndim - 1)))


def ln_fwd(x):
    xc = x - _bcast(_mean(x), x)
    inv = F32(1.0) / np.sqrt(_mean(xc * xc) + F32(EPS))
    return xc * _bcast(inv, x), inv


def ln_bwd(dy, y, inv):
    """Per agent: inv * (dy - mean(dy) - y * mean(dy * y)) (layers.ln_bwd)."""
    return _bcast(inv, dy) * (dy - _bcast(_mean(dy), dy) - y * _bcast(_mean(dy * y), dy))


def padded(x, pad):
    if not pad:
        return x
    n, c, h, w = x.shape
    xp = np.zeros((n, c, h + 2 * pad, w + 2 * pad), F32)
    xp[:, :, pad:pad + h, pad:pad + w] = x
    return xp


def windows(xp, k, stride):
    """(N, C, Ho, Wo, k, k): each output position's k x k window of the (padded) input, a strided view."""
    xp = np.ascontiguousarray(xp)
    n, c, h, w = xp.shape
    ho, wo = (h - k) // stride + 1, (w - k) // stride + 1
    sn, sc, sh, sw = xp.strides
    return np.ndarray((n, c, ho, wo, k, k), xp.dtype, xp, 0, (sn, sc, sh * stride, sw * stride, sh, sw)), ho, wo


def matvec(w, x):
    """(N, O, I) @ (N, I) -> (N, O)."""
    return np.matmul(w, x[:, :, None])[:, :, 0]


def outer_into(out, a, b):
    """out[n] = outer(a[n], b[n]), written in place (a weight gradient of a matrix-vector product)."""
    np.multiply(a[:, :, None], b[:, None, :], out=out)


class BatchedTower:
    """`Tower`'s network for N agents: parameters (N, P) in `flat`, a named (N, *shape) view per parameter."""

    def __init__(self, tower: Tower, n: int):
        self.t = tower
        self.n = n
        self.flat = np.zeros((n, tower.flat.size), F32)
        self.p = self.views(self.flat)

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        t = self.t
        return {p.name: flat[:, o:o + s].reshape(flat.shape[0], *p.shape)
                for p, o, s in zip(t.params, t.offsets, t.sizes)}

    # ------------------------------------------------------------------ forward
    def _layer_fwd(self, p, kind, spec, x, cache):
        if kind == "full":
            name, k, s, pad = spec
            win, ho, wo = windows(padded(x, pad), k, s)  # (n, cin, ho, wo, k, k)
            n = x.shape[0]
            cols = np.ascontiguousarray(win.transpose(0, 1, 4, 5, 2, 3)).reshape(n, -1, ho * wo)  # (cin, i, j) rows
            cache.append(cols)
            wgt = p[name]
            return np.matmul(wgt.reshape(n, wgt.shape[1], -1), cols).reshape(n, wgt.shape[1], ho, wo)
        if kind == "pw":
            wgt = p[spec]
            cache.append(x)
            n, c = x.shape[:2]
            return np.matmul(wgt[:, :, :, 0, 0], x.reshape(n, c, -1)).reshape(n, wgt.shape[1], *x.shape[2:])
        if kind == "dw":
            name, k, s, pad = spec
            y, c = depthwise_fwd(x, p[name][:, :, 0], k, s, pad)
            cache.append(c)
            return y
        if kind == "norm":
            if not self.t.norm:
                cache.append(None)
                return x
            y, inv = ln_fwd(x)
            cache.append((y, inv))
            return y
        if kind == "act":
            y = act_fwd(spec, x)
            cache.append((x, y))
            return y
        if kind == "se":
            w1, b1 = p[f"{spec}.fc1.weight"][:, :, :, 0, 0], p[f"{spec}.fc1.bias"]
            w2, b2 = p[f"{spec}.fc2.weight"][:, :, :, 0, 0], p[f"{spec}.fc2.bias"]
            n, c = x.shape[:2]
            s = np.add.reduce(x.reshape(n, c, -1), axis=2) / F32(x.shape[2] * x.shape[3])
            a = np.maximum(matvec(w1, s) + b1, F32(0.0))
            gp = matvec(w2, a) + b2
            g = hsigmoid_fwd(gp)
            cache.append((x, s, a, gp, g))
            return x * g[:, :, None, None]
        if kind == "block":
            body, residual = spec
            sub = []
            y = x
            for kd, sp in body:
                y = self._layer_fwd(p, kd, sp, y, sub)
            cache.append(sub)
            return x + y if residual else y
        raise AssertionError(kind)

    def pooled(self, eyes):
        """(N, 6 * eye_skip): each agent's eyes, average-pooled (Tower.pooled)."""
        t = self.t
        return np.matmul(np.matmul(t.pool_h, eyes), t.pool_w.T).reshape(eyes.shape[0], -1)

    def hidden(self, eyes, body, thought, pooled=None, p=None):
        """(h (N, width), cache). eyes (N, 6, H, W) standardised; body, thought (N, d). `p`: parameter views
        of some rows only (a death's replay runs one agent); default every agent's."""
        p = self.p if p is None else p
        t = self.t
        cache = []
        x = eyes
        for kind, spec in t.layers:
            x = self._layer_fwd(p, kind, spec, x, cache)
        n = eyes.shape[0]
        parts = [x.reshape(n, -1)]
        if t.skip:
            pooled = self.pooled(eyes) if pooled is None else pooled
            parts.append(pooled)
        else:
            pooled = None
        z = np.concatenate(parts + [body, thought], axis=1).astype(F32, copy=False)
        pre = matvec(p["fc.weight"], z) + p["fc.bias"]
        nrm, inv = ln_fwd(pre)
        h0 = np.where(nrm > 0, nrm, nrm * F32(0.01))
        h = np.concatenate([h0, body] + ([pooled] if pooled is not None else []), axis=1) if t.direct else h0
        return h, {"trunk": cache, "z": z, "n": nrm, "inv": inv}

    def out(self, x, p=None):
        p = self.p if p is None else p
        return matvec(p["out.weight"], x) + p["out.bias"]

    # ------------------------------------------------------------------ backward
    def _layer_bwd(self, p, kind, spec, dy, cache, g, need_dx=True):
        n = dy.shape[0]
        if kind == "full":
            name = spec[0]
            cols = cache.pop()
            np.matmul(dy.reshape(n, dy.shape[1], -1), cols.transpose(0, 2, 1), out=g[name].reshape(n, dy.shape[1], -1))
            if need_dx:
                raise AssertionError("the stem's input is the eyes: no gradient is asked of them")
            return None
        if kind == "pw":
            x = cache.pop()
            wgt = p[spec][:, :, :, 0, 0]
            dy2 = dy.reshape(n, dy.shape[1], -1)
            np.matmul(dy2, x.reshape(n, x.shape[1], -1).transpose(0, 2, 1), out=g[spec][:, :, :, 0, 0])
            return np.matmul(wgt.transpose(0, 2, 1), dy2).reshape(x.shape)
        if kind == "dw":
            return depthwise_bwd(dy, cache.pop(), g[spec[0]])
        if kind == "norm":
            c = cache.pop()
            return dy if c is None else ln_bwd(dy, *c)
        if kind == "act":
            x, y = cache.pop()
            return act_bwd(spec, dy, x, y)
        if kind == "se":
            x, s, a, gp, gate = cache.pop()
            w1 = p[f"{spec}.fc1.weight"][:, :, :, 0, 0]
            w2 = p[f"{spec}.fc2.weight"][:, :, :, 0, 0]
            dgp = hsigmoid_bwd((dy * x).sum(axis=(2, 3), dtype=F32), gp)
            outer_into(g[f"{spec}.fc2.weight"][:, :, :, 0, 0], dgp, a)
            g[f"{spec}.fc2.bias"][...] = dgp
            da = np.where(a > 0, matvec(w2.transpose(0, 2, 1), dgp), F32(0.0))
            outer_into(g[f"{spec}.fc1.weight"][:, :, :, 0, 0], da, s)
            g[f"{spec}.fc1.bias"][...] = da
            ds = matvec(w1.transpose(0, 2, 1), da)
            return dy * gate[:, :, None, None] + ds[:, :, None, None] / F32(x.shape[2] * x.shape[3])
        if kind == "block":
            body, residual = spec
            sub = list(cache.pop())
            d = dy
            for kd, sp in reversed(body):
                d = self._layer_bwd(p, kd, sp, d, sub, g)
            return dy + d if residual else d
        raise AssertionError(kind)

    def backward(self, d_out, out_in, hc, g, p=None, rank1: dict | None = None):
        """Tower.backward per agent: gradients of <d_out[n], out_n(out_in[n])> into `g` ((N, *shape) views).

        rank1: if given, the two large weight gradients, which are outer products (out.weight: d_out x out_in;
        fc.weight: d pre-activation x fc's input), are not written into `g` but returned in it as their two
        factors, rank1[name] = (left (N, O), right (N, I)): the rule then forms agent n's while agent n's traces
        are in cache, instead of streaming N of them through memory."""
        p = self.p if p is None else p
        t = self.t
        if rank1 is None:
            outer_into(g["out.weight"], d_out, out_in)
        else:
            rank1["out.weight"] = (d_out, out_in)
        g["out.bias"][...] = d_out
        dh0 = matvec(p["out.weight"][:, :, :t.hidden_n].transpose(0, 2, 1), d_out)
        dn = np.where(hc["n"] > 0, dh0, dh0 * F32(0.01))
        dpre = ln_bwd(dn, hc["n"], hc["inv"])
        if rank1 is None:
            outer_into(g["fc.weight"], dpre, hc["z"])
        else:
            rank1["fc.weight"] = (dpre, hc["z"])
        g["fc.bias"][...] = dpre
        dx = matvec(p["fc.weight"][:, :, :t.trunk_dim].transpose(0, 2, 1), dpre).reshape(-1, *t.trunk_shape)
        cache = list(hc["trunk"])
        for i, (kind, spec) in enumerate(reversed(t.layers)):
            dx = self._layer_bwd(p, kind, spec, dx, cache, g, need_dx=i < len(t.layers) - 1)


class BatchedEyeNorm:
    """brain.EyeNorm for N agents: each agent's running mean and spread of its own eyes."""

    def __init__(self, n, shape):
        self.count = np.zeros(n, F32)
        self.mean = np.zeros((n, *shape), F32)
        self.m2 = np.zeros((n, *shape), F32)

    def rows(self, sl):
        """The agents in slice `sl`, sharing this one's arrays."""
        v = BatchedEyeNorm.__new__(BatchedEyeNorm)
        v.count, v.mean, v.m2 = self.count[sl], self.mean[sl], self.m2[sl]
        return v

    def update(self, x):
        self.count += F32(1.0)
        d = x - self.mean
        self.mean += d / self.count[:, None, None, None]
        self.m2 += d * (x - self.mean)

    def __call__(self, x):
        c = self.count[:, None, None, None]
        var = self.m2 / np.maximum(c - F32(1.0), F32(1.0))
        std = np.maximum(np.sqrt(var), F32(EyeNorm.MIN_STD))
        normed = np.clip((x - self.mean) / std, -EyeNorm.CLIP, EyeNorm.CLIP)
        if (self.count < 2).any():  # EyeNorm's first two decisions: centred only
            normed = np.where(c < 2, x - self.mean, normed)
        return normed


class BatchedBrain:
    """brain.NumpyBrain for N agents (split towers): forward and the three gradients the survival rule asks for,
    each one computation over every agent. Built from N lone brains (agent n starts as brains[n])."""

    def __init__(self, brains, _rows=None):
        b0: NumpyBrain = brains[0]
        self.template = b0
        self.cfg, self.regions, self.slices = b0.cfg, b0.regions, b0.slices
        self._a = b0.regions.actions
        n = len(brains)
        self.n = n
        self.discomfort = BatchedTower(b0.discomfort, n)
        self.policy = BatchedTower(b0.policy, n)
        self.lr_flat = np.zeros((n, b0.lr_flat.size), F32)
        self.eye_norm = BatchedEyeNorm(n, (6, *b0.cfg.input_hw)) if b0.eye_norm is not None else None
        for i, b in enumerate(brains):
            self.discomfort.flat[i] = b.discomfort.flat
            self.policy.flat[i] = b.policy.flat
            self.lr_flat[i] = b.lr_flat
            if self.eye_norm is not None:
                self.eye_norm.count[i] = b.eye_norm.count
                self.eye_norm.mean[i] = b.eye_norm.mean
                self.eye_norm.m2[i] = b.eye_norm.m2
        self._views()

    def _views(self):
        n_w = self.template.lr_w.size
        self.lr_w = self.lr_flat[:, :n_w].reshape(self.lr_flat.shape[0], *self.template.lr_w.shape)
        self.lr_b = self.lr_flat[:, n_w:]

    def rows(self, sl: slice) -> "BatchedBrain":
        """The agents in `sl` as a brain of their own, sharing this one's arrays (a death's replay runs one)."""
        v = BatchedBrain.__new__(BatchedBrain)
        v.template, v.cfg, v.regions, v.slices, v._a = self.template, self.cfg, self.regions, self.slices, self._a
        v.discomfort = BatchedTower.__new__(BatchedTower)
        v.policy = BatchedTower.__new__(BatchedTower)
        for dst, src in ((v.discomfort, self.discomfort), (v.policy, self.policy)):
            dst.t = src.t
            dst.flat = src.flat[sl]
            dst.n = dst.flat.shape[0]
            dst.p = dst.views(dst.flat)
        v.lr_flat = self.lr_flat[sl]
        v.n = v.lr_flat.shape[0]
        v.eye_norm = self.eye_norm.rows(sl) if self.eye_norm is not None else None
        v._views()
        return v

    def flats(self) -> list[np.ndarray]:
        return [self.discomfort.flat, self.policy.flat, self.lr_flat]

    def agent_state_dict(self, i: int) -> dict[str, np.ndarray]:
        """Agent i as torch Brain's state dict (NumpyBrain.state_dict's keys: weights.npz, evaluation)."""
        d = {}
        if self.eye_norm is not None:
            d["eye_norm.count"] = np.array(self.eye_norm.count[i], F32)
            d["eye_norm.mean"] = self.eye_norm.mean[i][None].copy()
            d["eye_norm.m2"] = self.eye_norm.m2[i][None].copy()
        for prefix, tower in (("discomfort", self.discomfort), ("policy", self.policy)):
            for name, v in tower.p.items():
                d[f"{prefix}.{name}"] = v[i].copy()
        d["lr_head.weight"] = self.lr_w[i].copy()
        d["lr_head.bias"] = self.lr_b[i].copy()
        return d

    def load_agent_state_dict(self, i: int, d: dict[str, np.ndarray]):
        for prefix, tower in (("discomfort", self.discomfort), ("policy", self.policy)):
            for name, v in tower.p.items():
                v[i] = d[f"{prefix}.{name}"]
        self.lr_w[i] = d["lr_head.weight"]
        self.lr_b[i] = d["lr_head.bias"]
        if self.eye_norm is not None:
            self.eye_norm.count[i] = d["eye_norm.count"]
            self.eye_norm.mean[i] = d["eye_norm.mean"][0]
            self.eye_norm.m2[i] = d["eye_norm.m2"][0]

    # ------------------------------------------------------------------ passes
    # the lone brain's, unchanged: its eye_norm here is the batched one, and zeros_like keeps the agent axis
    observe = NumpyBrain.observe
    prepare = NumpyBrain.prepare

    def forward(self, eyes, body, thought):
        """(output (N, regions.total), cache for the backward passes): NumpyBrain.forward per agent."""
        eyes, thought = self.prepare(eyes, thought)
        pooled = self.policy.pooled(eyes) if self.policy.t.skip else None
        h, hc = self.policy.hidden(eyes, body, thought, pooled)
        hd, hdc = self.discomfort.hidden(eyes, body, thought, pooled)
        p_in = np.concatenate([h, hd], axis=1) if self.cfg.actor_reads_critic else h
        p = self.policy.out(p_in)
        loss = self.discomfort.out(hd)
        lr = matvec(self.lr_w, h) + self.lr_b
        a = self._a
        out = np.concatenate([p[:, :a], loss, lr, p[:, a:]], axis=1)
        return out, {"h": h, "hc": hc, "hd": hd, "hdc": hdc, "p_in": p_in}

    def discomfort_estimate(self, eyes, body, thought):
        eyes, thought = self.prepare(eyes, thought)
        hd, _ = self.discomfort.hidden(eyes, body, thought)
        return self.discomfort.out(hd)

    def grad_discomfort(self, cache, d_loss, out: np.ndarray, rank1: dict | None = None) -> np.ndarray:
        """Per agent, d <d_loss[n], loss region> / d theta_D into `out` (N, P_D): every entry written, or with
        `rank1` every entry but the two outer products' (BatchedTower.backward)."""
        self.discomfort.backward(d_loss, cache["hd"], cache["hdc"], self.discomfort.views(out), rank1=rank1)
        return out

    def grad_policy(self, cache, d_actions, out: np.ndarray, rank1: dict | None = None) -> np.ndarray:
        d_out = np.zeros((d_actions.shape[0], self.policy.t.p["out.bias"].shape[0]), F32)
        d_out[:, :self._a] = d_actions
        self.policy.backward(d_out, cache["p_in"], cache["hc"], self.policy.views(out), rank1=rank1)
        return out
