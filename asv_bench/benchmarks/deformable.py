"""Deformable convolution in 1-D, 2-D and 3-D, beside PyTorch's plain convolution.

torchvision's ``deform_conv2d`` would be the natural peer, but its CPU kernel is about 20x
slower than ``conv2d`` and its wheel does not load against the CPU torch build used here;
the issue's target is stated against ``conv`` of the same shape.
"""

from __future__ import annotations

import math

import numpy as np

import numbaconv

from .common import arrays, needs_torch, torch

# name -> (x shape, weight shape)
CASES = {
    "2-D (4,64,32,32)->64 3x3": ((4, 64, 32, 32), (64, 64, 3, 3)),
    "1-D (8,64,4000)->64 k3": ((8, 64, 4000), (64, 64, 3)),
    "3-D (2,16,16,16,16)->32 3x3x3": ((2, 16, 16, 16, 16), (32, 16, 3, 3, 3)),
}


class DeformConv:
    params = (list(CASES), ["float32", "float64"], [False, True])
    param_names = ["case", "dtype", "mask"]
    timeout = 120

    def setup(self, case, dtype, mask):
        xs, ws = CASES[case]
        self.x, self.w = arrays(xs, ws, dtype=dtype)
        d = len(ws) - 2
        taps = math.prod(ws[2:])
        rng = np.random.default_rng(1)
        self.off = rng.standard_normal((xs[0], d * taps) + xs[2:]).astype(dtype)
        self.mask = rng.random((xs[0], taps) + xs[2:]).astype(dtype) if mask else None
        numbaconv.deform_conv(self.x, self.off, self.w, padding=1, mask=self.mask)

    def time_numbaconv(self, case, dtype, mask):
        numbaconv.deform_conv(self.x, self.off, self.w, padding=1, mask=self.mask)

    @needs_torch
    def time_torch_conv(self, case, dtype, mask):
        f = {3: torch.nn.functional.conv1d, 4: torch.nn.functional.conv2d,
             5: torch.nn.functional.conv3d}[self.w.ndim]
        f(torch.from_numpy(self.x), torch.from_numpy(self.w), padding=1)

    def peakmem_numbaconv(self, case, dtype, mask):
        numbaconv.deform_conv(self.x, self.off, self.w, padding=1, mask=self.mask)
