"""Convolution family: numbaconv beside PyTorch (and SciPy where it has the operation)."""

from __future__ import annotations

import numbaconv

from .common import arrays, needs_torch, torch

DTYPES = ["float32", "float64"]  # of the smaller classes

# name -> (x shape, weight shape, keyword arguments)
CONV_CASES = {
    "conv2d 3x3 (8,64,56,56)->64": ((8, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    "conv2d 3x3 batch 1": ((1, 64, 56, 56), (64, 64, 3, 3), {"padding": 1}),
    "conv2d 3x3 late layer (1,512,7,7)": ((1, 512, 7, 7), (512, 512, 3, 3), {"padding": 1}),
    "conv2d 3x3 late layer (8,256,14,14)": ((8, 256, 14, 14), (256, 256, 3, 3), {"padding": 1}),
    "conv2d 3x3 late layer (8,512,7,7)": ((8, 512, 7, 7), (512, 512, 3, 3), {"padding": 1}),
    "conv2d 7x7 s2 (8,3,224,224)": ((8, 3, 224, 224), (64, 3, 7, 7), {"stride": 2, "padding": 3}),
    "conv2d 3x3 dilation 2": ((4, 64, 64, 64), (64, 64, 3, 3), {"padding": 2, "dilation": 2}),
    "conv1d k3 dilation 4": ((16, 64, 16000), (64, 64, 3), {"dilation": 4}),
    "conv3d 3x3x3": ((2, 16, 32, 32, 32), (32, 16, 3, 3, 3), {"padding": 1}),
    "conv2d reflect same": ((4, 32, 64, 64), (32, 32, 3, 3),
                            {"padding": "same", "padding_mode": "reflect"}),
}


class Conv:
    """float32 over the cases; :class:`ConvFloat64` covers float64."""

    params = (list(CONV_CASES), ["float32"])
    param_names = ["case", "dtype"]
    timeout = 120

    def setup(self, case, dtype):
        xs, ws, self.kw = CONV_CASES[case]
        self.x, self.w = arrays(xs, ws, dtype=dtype)
        numbaconv.conv(self.x, self.w, **self.kw)  # compile outside the timing
        if torch is not None:
            F = torch.nn.functional
            kw = dict(self.kw)
            tx, tw = torch.from_numpy(self.x), torch.from_numpy(self.w)
            mode = kw.pop("padding_mode", "zeros")
            if mode != "zeros":  # torch pads other modes by hand; 'same' 3x3 is 1 per side
                kw.pop("padding")
                tx = F.pad(tx, (1,) * (2 * (self.w.ndim - 2)), mode=mode)
            f = {3: F.conv1d, 4: F.conv2d, 5: F.conv3d}[self.w.ndim]
            self.torch_call = lambda: f(tx, tw, **kw)

    def time_numbaconv(self, case, dtype):
        numbaconv.conv(self.x, self.w, **self.kw)

    @needs_torch
    def time_torch(self, case, dtype):
        self.torch_call()

    def peakmem_numbaconv(self, case, dtype):
        numbaconv.conv(self.x, self.w, **self.kw)


class ConvFloat64(Conv):
    params = (["conv2d 3x3 (8,64,56,56)->64"], ["float64"])


class Depthwise:
    params = ([(8, 256, 28, 28), (8, 64, 112, 112)], DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        self.x, self.w = arrays(shape, (shape[1], 1, 3, 3), dtype=dtype)
        numbaconv.depthwise_conv(self.x, self.w, padding=1)

    def time_numbaconv(self, shape, dtype):
        numbaconv.depthwise_conv(self.x, self.w, padding=1)

    @needs_torch
    def time_torch(self, shape, dtype):
        torch.nn.functional.conv2d(torch.from_numpy(self.x), torch.from_numpy(self.w),
                                   padding=1, groups=self.x.shape[1])

    def peakmem_numbaconv(self, shape, dtype):
        numbaconv.depthwise_conv(self.x, self.w, padding=1)


class Pointwise:
    params = ([(8, 256, 14, 14)], DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        self.x, self.w = arrays(shape, (512, shape[1]), dtype=dtype)
        numbaconv.pointwise_conv(self.x, self.w)

    def time_numbaconv(self, shape, dtype):
        numbaconv.pointwise_conv(self.x, self.w)

    @needs_torch
    def time_torch(self, shape, dtype):
        torch.nn.functional.conv2d(torch.from_numpy(self.x),
                                   torch.from_numpy(self.w[:, :, None, None]))


class Separable:
    params = ([(8, 128, 56, 56)], DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        c = shape[1]
        self.x, self.dw, self.pw = arrays(shape, (c, 1, 3, 3), (c, c), dtype=dtype)
        numbaconv.separable_conv(self.x, self.dw, self.pw, padding=1)

    def time_numbaconv(self, shape, dtype):
        numbaconv.separable_conv(self.x, self.dw, self.pw, padding=1)

    @needs_torch
    def time_torch(self, shape, dtype):
        F = torch.nn.functional
        y = F.conv2d(torch.from_numpy(self.x), torch.from_numpy(self.dw), padding=1,
                     groups=self.x.shape[1])
        F.conv2d(y, torch.from_numpy(self.pw[:, :, None, None]))

    def peakmem_numbaconv(self, shape, dtype):
        numbaconv.separable_conv(self.x, self.dw, self.pw, padding=1)


class ConvTranspose:
    """A DCGAN generator layer: (16, 256, 8, 8) -> 128, kernel 4, stride 2, padding 1."""

    params = (["float32", "float64"],)
    param_names = ["dtype"]

    def setup(self, dtype):
        self.x, self.w = arrays((16, 256, 8, 8), (256, 128, 4, 4), dtype=dtype)
        numbaconv.conv_transpose(self.x, self.w, stride=2, padding=1)

    def time_numbaconv(self, dtype):
        numbaconv.conv_transpose(self.x, self.w, stride=2, padding=1)

    @needs_torch
    def time_torch(self, dtype):
        torch.nn.functional.conv_transpose2d(torch.from_numpy(self.x), torch.from_numpy(self.w),
                                             stride=2, padding=1)

    def peakmem_numbaconv(self, dtype):
        numbaconv.conv_transpose(self.x, self.w, stride=2, padding=1)


class Pool:
    """max_pool2d 3x3 s2 p1 and avg_pool2d 2x2 on (8, 64, 112, 112)."""

    params = (["max 3x3 s2 p1", "avg 2x2"], DTYPES)
    param_names = ["case", "dtype"]

    def setup(self, case, dtype):
        (self.x,) = arrays((8, 64, 112, 112), dtype=dtype)
        self.ours, self.args, self.theirs = {
            "max 3x3 s2 p1": (numbaconv.max_pool2d, (3, 2, 1), "max_pool2d"),
            "avg 2x2": (numbaconv.avg_pool2d, (2,), "avg_pool2d"),
        }[case]
        self.ours(self.x, *self.args)

    def time_numbaconv(self, case, dtype):
        self.ours(self.x, *self.args)

    @needs_torch
    def time_torch(self, case, dtype):
        getattr(torch.nn.functional, self.theirs)(torch.from_numpy(self.x), *self.args)

    def peakmem_numbaconv(self, case, dtype):
        self.ours(self.x, *self.args)


class Correlate:
    """Single-channel filtering, beside scipy.ndimage.correlate."""

    params = ([(1024, 1024), (96, 96, 96)], DTYPES)
    param_names = ["shape", "dtype"]

    def setup(self, shape, dtype):
        k = (5, 5) if len(shape) == 2 else (3, 3, 3)
        self.x, self.k = arrays(shape, k, dtype=dtype)
        self.call()

    def call(self):
        return numbaconv.conv(self.x[None, None], self.k[None, None], padding="same",
                              padding_mode="symmetric")

    def time_numbaconv(self, shape, dtype):
        self.call()

    def time_scipy(self, shape, dtype):
        from scipy import ndimage

        ndimage.correlate(self.x, self.k, mode="reflect")


def timeraw_import_numbaconv():
    """A fresh process importing numbaconv (must compile nothing)."""
    return "import numbaconv"


def timeraw_first_conv2d_warm_cache():
    """A fresh process: import and the first conv2d call, with the on-disk cache warm."""
    return """
import numpy as np, numbaconv
numbaconv.conv(np.ones((1, 8, 16, 16), np.float32), np.ones((8, 8, 3, 3), np.float32))
"""


#: a fresh process's start with an empty Numba cache
_EMPTY_CACHE = """
import os, tempfile
os.environ["NUMBA_CACHE_DIR"] = tempfile.mkdtemp()
import numpy as np, numbaconv
"""
#: then compiling, for both dtypes, ...
_COLD_FAMILY = _EMPTY_CACHE + """\
for dt in (np.float32, np.float64):
    x = np.ones((1, 4, 8, 8), dt)
    numbaconv.conv(x, np.ones((8, 4, 3, 3), dt))
    numbaconv.depthwise_conv(x, np.ones((4, 1, 3, 3), dt))
    numbaconv.conv(np.ones((1, 16, 8, 8), dt), np.ones((16, 16, 3, 3), dt))  # few tiles: implicit
"""
#: ... and, in float32, the paths added since that benchmark was set
_COLD_NEWER_PATHS = _EMPTY_CACHE + """\
dt = np.float32
x = np.ones((1, 4, 8, 8), dt)
numbaconv.conv(x, np.ones((8, 4, 1, 1), dt))  # one tap
numbaconv.conv(np.ones((1, 3, 8, 40), dt), np.ones((16, 3, 3, 7), dt), stride=2)  # implicit
numbaconv.conv_transpose(x, np.ones((4, 8, 4, 4), dt), stride=2)  # col2im
numbaconv.depthwise_conv(x, np.ones((4, 1, 3, 3), dt), padding=1)  # row sweeps
numbaconv.conv(np.ones((1, 64, 40), dt), np.ones((32, 64, 3), dt))  # 1-D Winograd
numbaconv.separable_conv(x, np.ones((4, 1, 3, 3), dt), np.ones((8, 4, 1, 1), dt))  # fused
numbaconv.separable_conv(x, np.ones((4, 1, 3, 3), dt), np.ones((8, 4), dt), padding=1)  # bands
numbaconv.conv(np.ones((1, 16, 40, 40), dt), np.ones((16, 16, 3, 3), dt))  # Winograd
"""


def timeraw_cold_compile_conv_family():
    """A fresh process with an empty Numba cache: compile the whole convolution family."""
    return _COLD_FAMILY


timeraw_cold_compile_conv_family.timeout = 300
timeraw_cold_compile_conv_family.number = 1
timeraw_cold_compile_conv_family.repeat = 1


def timeraw_cold_compile_newer_paths():
    """A fresh process with an empty Numba cache compiling, in float32, the paths added since
    :func:`timeraw_cold_compile_conv_family` was set: one-tap, implicit GEMM, strided
    transposed, row sweeps, 1-D Winograd, the fused separable form and its bands of rows, and
    Winograd, which the family's 3x3 call (16 tiles) no longer reaches. With the family, all
    that ``conv``, ``separable_conv`` and ``conv_transpose`` can compile. (Until NOTES 102 it
    compiled the family again first and both dtypes: four minutes of CI's asv run on Zen 3.)"""
    return _COLD_NEWER_PATHS


timeraw_cold_compile_newer_paths.timeout = 300
timeraw_cold_compile_newer_paths.number = 1
timeraw_cold_compile_newer_paths.repeat = 1
