"""Adaptive and global pooling, unpooling and activations (pooling proper: convolution.py)."""

from __future__ import annotations

import numbaconv

from .common import arrays, needs_torch, torch

DTYPES = ["float32", "float64"]


class Adaptive:
    params = (["adaptive_avg (7, 7)", "adaptive_max (7, 7)", "global_avg"], DTYPES)
    param_names = ["case", "dtype"]

    def setup(self, case, dtype):
        (self.x,) = arrays((8, 256, 14, 14), dtype=dtype)
        self.call = {
            "adaptive_avg (7, 7)": lambda x: numbaconv.adaptive_avg_pool(x, (7, 7)),
            "adaptive_max (7, 7)": lambda x: numbaconv.adaptive_max_pool(x, (7, 7)),
            "global_avg": numbaconv.global_avg_pool,
        }[case]
        self.peer = {
            "adaptive_avg (7, 7)": lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 7),
            "adaptive_max (7, 7)": lambda t: torch.nn.functional.adaptive_max_pool2d(t, 7),
            "global_avg": lambda t: torch.nn.functional.adaptive_avg_pool2d(t, 1),
        }[case]
        self.call(self.x)

    def time_numbaconv(self, case, dtype):
        self.call(self.x)

    @needs_torch
    def time_torch(self, case, dtype):
        self.peer(torch.from_numpy(self.x))


class Unpool:
    params = (DTYPES,)
    param_names = ["dtype"]

    def setup(self, dtype):
        (x,) = arrays((8, 64, 112, 112), dtype=dtype)
        self.y, self.i = numbaconv.max_pool(x, 2, return_indices=True)
        numbaconv.max_unpool(self.y, self.i, 2)

    def time_numbaconv(self, dtype):
        numbaconv.max_unpool(self.y, self.i, 2)

    @needs_torch
    def time_torch(self, dtype):
        torch.nn.functional.max_unpool2d(torch.from_numpy(self.y), torch.from_numpy(self.i), 2)


class Activation:
    params = (["relu", "gelu", "silu", "softmax"], DTYPES)
    param_names = ["name", "dtype"]

    def setup(self, name, dtype):
        (self.x,) = arrays((8, 64, 112, 112), dtype=dtype)
        self.f = getattr(numbaconv, name)
        self.t = {"relu": torch.relu, "gelu": torch.nn.functional.gelu,
                  "silu": torch.nn.functional.silu,
                  "softmax": lambda a: torch.softmax(a, -1)}[name] if torch else None
        self.f(self.x)

    def time_numbaconv(self, name, dtype):
        self.f(self.x)

    def time_numbaconv_in_place(self, name, dtype):
        self.f(self.x, out=self.x)

    @needs_torch
    def time_torch(self, name, dtype):
        self.t(torch.from_numpy(self.x))
