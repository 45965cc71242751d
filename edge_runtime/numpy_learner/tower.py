"""One tower of the numpy brain: model.Tower's MobileNetV3 trunk and head, its parameters in one flat vector."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..config import ModelConfig
from ..mobilenet_tables import BLOCKS, LAST_CONV, make_divisible
from .layers import (F32, act_bwd, act_fwd, adaptive_pool_matrix, depthwise, depthwise_input_grad, hsigmoid_bwd,
                     hsigmoid_fwd, ln_bwd, ln_fwd, padded, patches)


@dataclass
class Param:
    name: str  # torch's name within the tower (trunk.features.0.weight, fc.bias, ...)
    shape: tuple
    fan_in: int  # for the initialisation
    kind: str  # weight | bias


class Tower:
    """A MobileNetV3 trunk on the eyes and a head that also reads body and thought (model.Tower's layout)."""

    def __init__(self, cfg: ModelConfig, body_dim: int, thought_dim: int, out_dim: int, extra_in: int = 0):
        self.cfg = cfg
        self.params: list[Param] = []
        self.layers = []  # the trunk, as (kind, spec) tuples; names index self.params
        self.norm = cfg.norm == "layer"
        h, w = cfg.input_hw
        c0 = make_divisible(16 * cfg.width)
        feats = 0  # index in torch's features Sequential
        self._conv("stem", f"trunk.features.{feats}", 6, c0, 3, 2)
        self.layers.append(("full", (f"trunk.features.{feats}.weight", 3, 2, 1)))
        h, w = (h + 2 - 3) // 2 + 1, (w + 2 - 3) // 2 + 1
        self.layers.append(("norm", None))
        self.layers.append(("act", "HS"))
        feats = 3
        cin = c0
        for k, exp, cout, se, nl, s in BLOCKS[cfg.preset]:
            e, o = make_divisible(exp * cfg.width), make_divisible(cout * cfg.width)
            pre = f"trunk.features.{feats}.body"
            j, body = 0, []
            if e != cin:
                self._conv("pw", f"{pre}.{j}", cin, e, 1, 1)
                body += [("pw", f"{pre}.{j}.weight"), ("norm", None), ("act", nl)]
                j += 3
            self._conv("dw", f"{pre}.{j}", e, e, k, s)
            body += [("dw", (f"{pre}.{j}.weight", k, s, k // 2)), ("norm", None), ("act", nl)]
            j += 3
            h, w = (h + 2 * (k // 2) - k) // s + 1, (w + 2 * (k // 2) - k) // s + 1
            if se:
                mid = make_divisible(e // 4)
                self._conv("se1", f"{pre}.{j}.fc1", e, mid, 1, 1, bias=True)
                self._conv("se2", f"{pre}.{j}.fc2", mid, e, 1, 1, bias=True)
                body.append(("se", f"{pre}.{j}"))
                j += 1
            self._conv("pw", f"{pre}.{j}", e, o, 1, 1)
            body += [("pw", f"{pre}.{j}.weight"), ("norm", None)]
            self.layers.append(("block", (body, s == 1 and cin == o)))
            cin = o
            feats += 1
        clast = make_divisible(LAST_CONV[cfg.preset] * cfg.width)
        self._conv("pw", f"trunk.features.{feats}", cin, clast, 1, 1)
        self.layers += [("pw", f"trunk.features.{feats}.weight"), ("norm", None), ("act", "HS")]
        self.trunk_shape = (clast, h, w)
        trunk_dim = clast * h * w
        self.skip = tuple(cfg.eye_skip) if cfg.eye_skip[0] > 0 else None
        skip_dim = 6 * self.skip[0] * self.skip[1] if self.skip else 0
        if self.skip:
            self.pool_h = adaptive_pool_matrix(cfg.input_hw[0], self.skip[0])
            self.pool_w = adaptive_pool_matrix(cfg.input_hw[1], self.skip[1])
        self.trunk_dim, self.skip_dim, self.body_dim, self.thought_dim = trunk_dim, skip_dim, body_dim, thought_dim
        fc_in = trunk_dim + skip_dim + body_dim + thought_dim
        self.hidden_n = cfg.hidden
        self.params += [Param("fc.weight", (cfg.hidden, fc_in), fc_in, "weight"), Param("fc.bias", (cfg.hidden,), fc_in, "bias")]
        self.direct = body_dim + skip_dim if cfg.head_reads_senses else 0
        self.width = cfg.hidden + self.direct
        o_in = self.width + extra_in
        self.params += [Param("out.weight", (out_dim, o_in), o_in, "weight"), Param("out.bias", (out_dim,), o_in, "bias")]
        # one flat vector, a view per parameter: traces and steps are one operation per block
        self.sizes = [int(np.prod(p.shape)) for p in self.params]
        self.offsets = np.concatenate([[0], np.cumsum(self.sizes)]).astype(int)
        self.flat = np.zeros(int(self.offsets[-1]), F32)
        self.p = self.views(self.flat)
        # the blocks of the overshoot bound (rules/survival.py's bound_scope = block): trunk, fc, out
        first = {"trunk": None, "fc": None, "out": None}
        for i, prm in enumerate(self.params):
            b = prm.name.split(".")[0]
            if first[b] is None:
                first[b] = i
        self.block_ranges = [(int(self.offsets[first[b]]), int(self.offsets[nxt]))
                             for b, nxt in (("trunk", first["fc"]), ("fc", first["out"]), ("out", len(self.params)))]

    def _conv(self, kind, name, cin, cout, k, stride, bias=False):
        groups = cin if kind == "dw" else 1
        fan_in = (cin // groups) * k * k
        self.params.append(Param(f"{name}.weight", (cout, cin // groups, k, k), fan_in, "weight"))
        if bias:
            self.params.append(Param(f"{name}.bias", (cout,), fan_in, "bias"))

    def views(self, flat: np.ndarray) -> dict[str, np.ndarray]:
        return {p.name: flat[o:o + n].reshape(p.shape) for p, o, n in zip(self.params, self.offsets, self.sizes)}

    def init(self, rng: np.random.Generator, sparsity: float, thought_zero: bool):
        """model.sparse_init_: LeCun-uniform, a fraction of each Linear unit's inputs zeroed; biases zero."""
        for prm in self.params:
            v = self.p[prm.name]
            if prm.kind == "bias":
                v[...] = 0.0
                continue
            bound = math.sqrt(1.0 / prm.fan_in)
            v[...] = rng.uniform(-bound, bound, v.shape)
            s = sparsity if prm.name in ("fc.weight", "out.weight") else 0.0
            n_zero = min(int(s * prm.fan_in), prm.fan_in - 1)
            if n_zero:
                flat = v.reshape(v.shape[0], -1)
                for i in range(flat.shape[0]):
                    flat[i, rng.permutation(prm.fan_in)[:n_zero]] = 0.0
        if thought_zero and self.thought_dim:
            self.p["fc.weight"][:, -self.thought_dim:] = 0.0

    # ------------------------------------------------------------------ forward
    def _layer_fwd(self, kind, spec, x, cache):
        p = self.p
        if kind == "full":
            name, k, s, pad = spec
            cols, ho, wo = patches(padded(x, pad), k, s)  # (cin, ho*wo, k*k)
            cols = np.ascontiguousarray(cols.transpose(0, 2, 1)).reshape(-1, ho * wo)  # rows in (cin, i, j) order
            cache.append(cols)
            wgt = p[name]
            return (wgt.reshape(wgt.shape[0], -1) @ cols).reshape(wgt.shape[0], ho, wo)
        if kind == "pw":
            wgt = p[spec]
            cache.append(x)
            return (wgt[:, :, 0, 0] @ x.reshape(x.shape[0], -1)).reshape(wgt.shape[0], *x.shape[1:])
        if kind == "dw":
            name, k, s, pad = spec
            y, cols = depthwise(padded(x, pad), p[name], k, s)
            cache.append((x.shape, cols))
            return y
        if kind == "norm":
            if not self.norm:
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
            w1, b1 = p[f"{spec}.fc1.weight"][:, :, 0, 0], p[f"{spec}.fc1.bias"]
            w2, b2 = p[f"{spec}.fc2.weight"][:, :, 0, 0], p[f"{spec}.fc2.bias"]
            s = np.add.reduce(x.reshape(x.shape[0], -1), axis=1) / F32(x.shape[1] * x.shape[2])
            a = np.maximum(w1 @ s + b1, F32(0.0))
            gp = w2 @ a + b2
            g = hsigmoid_fwd(gp)
            cache.append((x, s, a, gp, g))
            return x * g[:, None, None]
        if kind == "block":
            body, residual = spec
            sub = []
            y = x
            for kd, sp in body:
                y = self._layer_fwd(kd, sp, y, sub)
            cache.append(sub)
            return x + y if residual else y
        raise AssertionError(kind)

    def pooled(self, eyes):
        """adaptive_avg_pool2d(eyes, eye_skip), flattened: rows then columns averaged, as two matrix products."""
        return np.matmul(np.matmul(self.pool_h, eyes), self.pool_w.T).reshape(-1)

    def hidden(self, eyes, body, thought, pooled=None):
        """h and what backward needs. eyes (6, H, W) already standardised; body, thought 1-D; pooled: the eyes'
        pooled view if the caller has it (both towers read the same one)."""
        cache = []
        x = eyes
        for kind, spec in self.layers:
            x = self._layer_fwd(kind, spec, x, cache)
        parts = [x.reshape(-1)]
        if self.skip:
            pooled = self.pooled(eyes) if pooled is None else pooled
            parts.append(pooled)
        else:
            pooled = None
        z = np.concatenate(parts + [body, thought]).astype(F32, copy=False)
        pre = self.p["fc.weight"] @ z + self.p["fc.bias"]
        n, inv = ln_fwd(pre)
        h0 = np.where(n > 0, n, n * F32(0.01))
        h = np.concatenate([h0, body] + ([pooled] if pooled is not None else [])) if self.direct else h0
        return h, {"trunk": cache, "z": z, "n": n, "inv": inv}

    def out(self, x):
        return self.p["out.weight"] @ x + self.p["out.bias"]

    # ------------------------------------------------------------------ backward
    def _layer_bwd(self, kind, spec, dy, cache, g, need_dx=True):
        p = self.p
        if kind == "full":
            name = spec[0]
            cols = cache.pop()
            np.matmul(dy.reshape(dy.shape[0], -1), cols.T, out=g[name].reshape(dy.shape[0], -1))
            if need_dx:
                raise AssertionError("the stem's input is the eyes: no gradient is asked of them")
            return None
        if kind == "pw":
            x = cache.pop()
            wgt = p[spec][:, :, 0, 0]
            dy2 = dy.reshape(dy.shape[0], -1)
            np.matmul(dy2, x.reshape(x.shape[0], -1).T, out=g[spec][:, :, 0, 0])
            return (wgt.T @ dy2).reshape(x.shape)
        if kind == "dw":
            name, k, s, pad = spec
            x_shape, cols = cache.pop()
            c = dy.shape[0]
            np.matmul(dy.reshape(c, 1, -1), cols, out=g[name].reshape(c, 1, -1))
            return depthwise_input_grad(dy, p[name][:, 0], k, s, pad, x_shape[1], x_shape[2])
        if kind == "norm":
            c = cache.pop()
            return dy if c is None else ln_bwd(dy, *c)
        if kind == "act":
            x, y = cache.pop()
            return act_bwd(spec, dy, x, y)
        if kind == "se":
            x, s, a, gp, gate = cache.pop()
            w1 = p[f"{spec}.fc1.weight"][:, :, 0, 0]
            w2 = p[f"{spec}.fc2.weight"][:, :, 0, 0]
            dgp = hsigmoid_bwd((dy * x).sum(axis=(1, 2), dtype=F32), gp)
            np.multiply(dgp[:, None], a, out=g[f"{spec}.fc2.weight"][:, :, 0, 0])  # the outer product, in place
            g[f"{spec}.fc2.bias"][...] = dgp
            da = np.where(a > 0, w2.T @ dgp, F32(0.0))
            np.multiply(da[:, None], s, out=g[f"{spec}.fc1.weight"][:, :, 0, 0])
            g[f"{spec}.fc1.bias"][...] = da
            ds = w1.T @ da
            return dy * gate[:, None, None] + ds[:, None, None] / F32(x.shape[1] * x.shape[2])
        if kind == "block":
            body, residual = spec
            sub = list(cache.pop())  # a copy: the same forward may be differentiated again (D, then forecasts)
            d = dy
            for kd, sp in reversed(body):
                d = self._layer_bwd(kd, sp, d, sub, g)
            return dy + d if residual else d
        raise AssertionError(kind)

    def backward(self, d_out, out_in, hc, g: dict[str, np.ndarray]):
        """Gradients of <d_out, out(out_in)> into `g` (views of a flat vector), through h into the trunk;
        out_in is what the output layer read, whose first `width` entries are this tower's h."""
        np.multiply(d_out[:, None], out_in, out=g["out.weight"])  # outer products written in place: no temporary
        g["out.bias"][...] = d_out
        dh0 = self.p["out.weight"][:, :self.hidden_n].T @ d_out  # body and pooled eyes past h0 are inputs
        dn = np.where(hc["n"] > 0, dh0, dh0 * F32(0.01))
        dpre = ln_bwd(dn, hc["n"], hc["inv"])
        np.multiply(dpre[:, None], hc["z"], out=g["fc.weight"])
        g["fc.bias"][...] = dpre
        dx = (self.p["fc.weight"][:, :self.trunk_dim].T @ dpre).reshape(self.trunk_shape)
        cache = list(hc["trunk"])  # popped from the end: layer by layer, last first
        for i, (kind, spec) in enumerate(reversed(self.layers)):
            dx = self._layer_bwd(kind, spec, dx, cache, g, need_dx=i < len(self.layers) - 1)
