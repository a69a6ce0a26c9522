"""``exp`` written so that LLVM vectorises it, for the float32 activations.

Numba calls the C library's scalar ``exp`` and ``tanh`` (there is no vector
math library here), about 5 and 17 ns an element. The float32 sigmoid, tanh,
silu and elu are computed instead in float64 with :func:`exp_poly`: range
reduction ``x = k ln 2 + r``, a degree-10 polynomial in ``r`` and ``2**k``
built from its bits. Every step is a plain arithmetic or bit operation, so a
loop of them runs on whole vectors. Its relative error (about 1e-11) is far
below float32's rounding, so the float32 results are as accurate as the scalar
formulas; float64 keeps the C library (asv_bench/NOTES.md, attempt 55).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

from ._config import HELPER

_LOG2E = 1.0 / math.log(2.0)
_LN2 = math.log(2.0)
#: the polynomial's coefficients, 1/i! (Horner's rule from the highest)
_C = tuple(1.0 / math.factorial(i) for i in range(11))


@intrinsic
def _f64_from_bits(typingctx, bits):
    """The float64 whose IEEE bits are the int64 ``bits``."""
    if not isinstance(bits, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        value = context.cast(builder, args[0], signature.args[0], types.int64)
        return builder.bitcast(value, ir.DoubleType())

    return types.float64(bits), codegen


@njit(**HELPER)
def exp_poly(x):
    """``e**x`` for a float64 ``x``, relative error about 1e-11 (inf above 709.8, NaN stays).

    Below -708 the result is about 1e-308 instead of smaller: every caller
    rounds to float32, where both are 0.
    """
    xc = 710.0 if x > 710.0 else x  # k = 1024 there: the bits of inf
    xc = -708.0 if xc < -708.0 else xc
    k = math.floor(xc * _LOG2E + 0.5)
    r = xc - k * _LN2  # |r| <= ln(2) / 2
    p = _C[10]
    p = p * r + _C[9]
    p = p * r + _C[8]
    p = p * r + _C[7]
    p = p * r + _C[6]
    p = p * r + _C[5]
    p = p * r + _C[4]
    p = p * r + _C[3]
    p = p * r + _C[2]
    p = p * r + _C[1]
    p = p * r + _C[0]
    y = p * _f64_from_bits((np.int64(k) + 1023) << 52)
    return y if x == x else x  # NaN: k was not a number


def is_single(v):
    """Whether ``v`` is a float32 scalar (decided when Numba compiles the caller)."""
    return isinstance(v, np.float32)


@overload(is_single, jit_options={"cache": True})
def _is_single(v):
    single = v == types.float32
    return lambda v: single


@njit(**HELPER)
def sigmoid32(v):
    """``1 / (1 + e**-v)`` of a float32 ``v``, through :func:`exp_poly`."""
    return np.float32(1.0 / (1.0 + exp_poly(-np.float64(v))))


@njit(**HELPER)
def silu32(v):
    """``v / (1 + e**-v)`` of a float32 ``v``, through :func:`exp_poly`."""
    x = np.float64(v)
    return np.float32(x / (1.0 + exp_poly(-x)))


@njit(**HELPER)
def tanh32(v):
    """``tanh(v)`` of a float32 ``v``: ``1 - 2 / (e**2|v| + 1)``, its series below 1e-3."""
    x = np.float64(v)
    a = abs(x)
    t = 1.0 - 2.0 / (exp_poly(2.0 * a) + 1.0)
    t = -t if x < 0 else t
    x2 = x * x
    series = x * (1.0 - x2 * (1.0 / 3.0 - x2 * (2.0 / 15.0)))  # next term 17/315 x^7
    return np.float32(series if a < 1e-3 else t)


@njit(**HELPER)
def elu32(v, alpha):
    """``alpha (e**v - 1)`` for ``v < 0``, else ``v``, of a float32 ``v`` (series above -1e-3)."""
    x = np.float64(v)
    series = x * (1.0 + x * (0.5 + x * (1.0 / 6.0 + x * (1.0 / 24.0))))  # next term x^5/120
    em1 = series if x > -1e-3 else exp_poly(x) - 1.0
    return np.float32(alpha * em1) if v < 0 else v
