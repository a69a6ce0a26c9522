"""Backward passes: numbaconv's gradients beside PyTorch's autograd on the same data."""

from __future__ import annotations

import math

import numpy as np

import numbaconv

from .common import arrays, needs_torch, torch
from .deformable import CASES as DEFORM

# name -> (x shape, weight shape, keyword arguments)
CASES = {
    "conv2d 3x3 (8,64,56,56)->64": ((8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    "conv2d 3x3 reflect (4,32,64,64)": ((4, 32, 64, 64), (32, 32, 3, 3),
                                        {"padding": 1, "padding_mode": "reflect"}),
    "depthwise 3x3 (8,256,28,28)": ((8, 256, 28, 28), (256, 1, 3, 3),
                                    {"padding": 1, "groups": 256}),
    "conv1d k3 (16,64,4000)": ((16, 64, 4000), (64, 64, 3), {"padding": 1}),
    "conv3d 3x3x3 (2,16,32,32,32)": ((2, 16, 32, 32, 32), (32, 16, 3, 3, 3), {"padding": 1}),
}


def _torch_backward(x, w, g, kw):
    """A callable running torch's input and weight gradients (None without torch)."""
    if torch is None:
        return None
    kw = dict(kw)
    mode = kw.pop("padding_mode", "zeros")
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    f = getattr(torch.nn.functional, f"conv{w.ndim - 2}d")
    src = tx
    if mode != "zeros":
        src = torch.nn.functional.pad(tx, (kw.pop("padding"),) * (2 * (w.ndim - 2)), mode=mode)
    y = f(src, tw, **kw)
    tg = torch.from_numpy(g)

    def peer():
        return torch.autograd.grad(y, (tx, tw), tg, retain_graph=True)

    peer()  # torch's first backward call sets up its engine: keep it out of the timing
    return peer


class ConvBackward:
    params = (list(CASES), ["float32", "float64"])
    param_names = ["case", "dtype"]
    timeout = 180

    def setup(self, case, dtype):
        xs, ws, self.kw = CASES[case]
        self.x, self.w = arrays(xs, ws, dtype=dtype)
        self.g = numbaconv.conv(self.x, self.w, **self.kw)  # compiles the forward too
        numbaconv.conv_backward(self.g, self.x, self.w, **self.kw)
        self.peer = _torch_backward(self.x, self.w, self.g, self.kw)

    def time_numbaconv(self, case, dtype):
        numbaconv.conv_backward(self.g, self.x, self.w, **self.kw)

    def time_numbaconv_weight_only(self, case, dtype):
        numbaconv.conv_backward(self.g, self.x, self.w, input_grad=False, **self.kw)

    @needs_torch
    def time_torch(self, case, dtype):
        self.peer()

    def peakmem_numbaconv(self, case, dtype):
        numbaconv.conv_backward(self.g, self.x, self.w, **self.kw)


class TransposeBackward:
    params = (["float32", "float64"],)
    param_names = ["dtype"]

    def setup(self, dtype):
        self.x, self.w = arrays((16, 256, 8, 8), (256, 128, 4, 4), dtype=dtype)
        self.g = numbaconv.conv_transpose(self.x, self.w, stride=2, padding=1)
        numbaconv.conv_transpose_backward(self.g, self.x, self.w, stride=2, padding=1)

    def time_numbaconv(self, dtype):
        numbaconv.conv_transpose_backward(self.g, self.x, self.w, stride=2, padding=1)

    @needs_torch
    def time_torch(self, dtype):
        tx = torch.tensor(self.x, requires_grad=True)
        tw = torch.tensor(self.w, requires_grad=True)
        y = torch.nn.functional.conv_transpose2d(tx, tw, stride=2, padding=1)
        torch.autograd.grad(y, (tx, tw), torch.from_numpy(self.g))


class SeparableBackward:
    params = (["float32"],)
    param_names = ["dtype"]

    def setup(self, dtype):
        self.x, self.dw, self.pw = arrays((8, 128, 56, 56), (128, 1, 3, 3), (128, 128),
                                          dtype=dtype)
        self.g = numbaconv.separable_conv(self.x, self.dw, self.pw, padding=1)
        numbaconv.separable_conv_backward(self.g, self.x, self.dw, self.pw, padding=1)

    def time_numbaconv(self, dtype):
        numbaconv.separable_conv_backward(self.g, self.x, self.dw, self.pw, padding=1)


class DeformBackward:
    """Against torch's *plain* conv backward of the same shape (the issue's yardstick)."""

    params = (list(DEFORM), ["float32", "float64"], [False, True])
    param_names = ["case", "dtype", "mask"]
    timeout = 180

    def setup(self, case, dtype, mask):
        xs, ws = DEFORM[case]
        self.x, self.w = arrays(xs, ws, dtype=dtype)
        taps = math.prod(ws[2:])
        rng = np.random.default_rng(1)
        self.off = rng.standard_normal((xs[0], (len(ws) - 2) * taps) + xs[2:]).astype(dtype)
        self.mask = rng.random((xs[0], taps) + xs[2:]).astype(dtype) if mask else None
        self.g = numbaconv.deform_conv(self.x, self.off, self.w, padding=1, mask=self.mask)
        numbaconv.deform_conv_backward(self.g, self.x, self.off, self.w, padding=1,
                                       mask=self.mask)
        self.peer = _torch_backward(self.x, self.w, self.g, {"padding": 1})

    def time_numbaconv(self, case, dtype, mask):
        numbaconv.deform_conv_backward(self.g, self.x, self.off, self.w, padding=1,
                                       mask=self.mask)

    @needs_torch
    def time_torch_conv(self, case, dtype, mask):
        self.peer()

    def peakmem_numbaconv(self, case, dtype, mask):
        numbaconv.deform_conv_backward(self.g, self.x, self.off, self.w, padding=1,
                                       mask=self.mask)


class PoolBackward:
    params = (["max", "avg", "lp", "adaptive_max", "adaptive_avg"], ["float32"])
    param_names = ["pool", "dtype"]

    def setup(self, pool, dtype):
        (self.x,) = arrays((8, 64, 112, 112), dtype=dtype)
        self.x = np.abs(self.x) + 0.1
        self.args = {"max": (3, 2, 1), "avg": (2,), "lp": (2.0, 2), "adaptive_max": (7,),
                     "adaptive_avg": (7,)}[pool]
        self.fwd = getattr(numbaconv, f"{pool}_pool")
        self.bwd = getattr(numbaconv, f"{pool}_pool_backward")
        self.g = self.fwd(self.x, *self.args)
        self.bwd(self.g, self.x, *self.args)

    def time_numbaconv(self, pool, dtype):
        self.bwd(self.g, self.x, *self.args)


class ActivationBackward:
    params = (["relu", "gelu", "silu"],)
    param_names = ["activation"]

    def setup(self, activation):
        self.x, self.g = arrays((8, 64, 56, 56), (8, 64, 56, 56))
        self.f = getattr(numbaconv, f"{activation}_backward")
        self.f(self.g, self.x)

    def time_numbaconv(self, activation):
        self.f(self.g, self.x)
