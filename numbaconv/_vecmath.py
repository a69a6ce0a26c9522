"""``exp`` and ``erfc`` written so that LLVM vectorises them, for the float32 activations.

Numba calls the C library's scalar ``exp``, ``tanh`` and ``erf`` (there is no
vector math library here), about 5, 17 and 10 ns an element. The float32
sigmoid, tanh, silu, elu and gelu are computed instead in float64 with
:func:`exp_poly`: range reduction ``x = k ln 2 + r``, a degree-10 polynomial in
``r``, and ``2**k`` built from its bits (gelu's ``erfc`` is ``exp_poly(-z*z)``
times a polynomial). Every step is a plain arithmetic or bit operation, so a
loop of them runs on whole vectors. Their relative error (about 1e-11) is far
below float32's rounding: the float32 results are within one rounding of the
exact values. float64 keeps the C library (asv_bench/NOTES.md, attempt 55).
"""

from __future__ import annotations

import math

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

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

    Below -708 the result is 0 (instead of the subnormals): 0 in float32 anyway,
    and ``inf * e**-inf`` stays NaN.
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
    y = 0.0 if x < -708.0 else y
    return y if x == x else x  # NaN: k was not a number


#: erfcx(z) = erfc(z) e**(z*z) for 0 <= z <= 10.5 as a polynomial of degree 16 (lowest
#: first) in u = (t + 1) * _USCALE - 1, t = (z - 2) / (z + 2), relative error 3e-12: the
#: power form of its Chebyshev interpolant at 17 points, computed with
#: numpy.polynomial.chebyshev (chebinterpolate, cheb2poly) from math.erfc
_ERFCX = (
    0.3302570590188495, -0.4289206636249037, 0.1974611073681103, -0.04713741066132618,
    -0.0010205322312268872, 0.00304722080924293, 8.037974129446369e-05,
    -0.00026422027180210655, -4.0091981723992335e-05, 2.1688368412102115e-05,
    9.264851290608833e-06, -4.015271513258528e-07, -1.3291414184146135e-06,
    -3.1374183517039417e-07, 8.930078652732352e-08, 5.0522757934319144e-08,
    2.947359418958412e-09,
)
_ZMAX = 10.5  # erfc(10.5) ~ 1e-49: 0 in float32 once multiplied by the input
_USCALE = 2.0 / ((_ZMAX - 2.0) / (_ZMAX + 2.0) + 1.0)
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


@njit(**HELPER)
def erfc_poly(z):
    """``erfc(z)`` for a float64 ``z >= 0``, relative error about 1e-11; 0 above 10.5."""
    zc = _ZMAX if z > _ZMAX else z  # NaN passes through
    t = (zc - 2.0) / (zc + 2.0)
    u = (t + 1.0) * _USCALE - 1.0
    g = _ERFCX[16]  # Horner's rule written out: a loop over the tuple's index does not vectorise
    g = g * u + _ERFCX[15]
    g = g * u + _ERFCX[14]
    g = g * u + _ERFCX[13]
    g = g * u + _ERFCX[12]
    g = g * u + _ERFCX[11]
    g = g * u + _ERFCX[10]
    g = g * u + _ERFCX[9]
    g = g * u + _ERFCX[8]
    g = g * u + _ERFCX[7]
    g = g * u + _ERFCX[6]
    g = g * u + _ERFCX[5]
    g = g * u + _ERFCX[4]
    g = g * u + _ERFCX[3]
    g = g * u + _ERFCX[2]
    g = g * u + _ERFCX[1]
    g = g * u + _ERFCX[0]
    e = exp_poly(-zc * zc) * g
    return 0.0 if z > _ZMAX else e


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


@njit(**HELPER)
def gelu32(v):
    """``v Phi(v)`` (the exact gelu) of a float32 ``v``, through :func:`erfc_poly`.

    ``Phi(v) = erfc(-v / sqrt 2) / 2``: the negative tail keeps its relative
    accuracy, where ``1 + erf`` cancels to 0 below about -5.
    """
    x = np.float64(v)
    e = erfc_poly(abs(x) * _INV_SQRT2)
    return np.float32(x * (0.5 * e) if x < 0 else x * (1.0 - 0.5 * e))


# The derivatives, for the activations' gradients: of a float32 input, in float64 (the
# caller multiplies by the incoming gradient and rounds once). Their infinities and NaNs
# are the C-library forms' (and PyTorch's): gelu and silu give NaN at +-inf.

_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(**HELPER)
def sigmoid_grad32(v):
    """``s (1 - s)``, ``s`` the sigmoid of a float32 ``v``, in float64, as ``e / (1 + e)**2``,
    ``e = e**-|v|`` (``1 - s`` would cancel in the tails)."""
    e = exp_poly(-abs(np.float64(v)))
    return e / ((1.0 + e) * (1.0 + e))


@njit(**HELPER)
def tanh_grad32(v):
    """``1 - tanh(v)**2`` of a float32 ``v``, in float64, as ``u (2 - u)``, ``u = 1 - |tanh v|``.

    ``u = 2 / (e**2|v| + 1)`` keeps the tails' relative accuracy.
    """
    u = 2.0 / (exp_poly(2.0 * abs(np.float64(v))) + 1.0)
    return u * (2.0 - u)


@njit(**HELPER)
def silu_grad32(v):
    """``s (1 + v (1 - s))``, ``s`` the sigmoid of a float32 ``v``, in float64 (``s`` and
    ``1 - s`` from ``e = e**-|v|``, so that neither cancels in a tail)."""
    x = np.float64(v)
    e = exp_poly(-abs(x))  # 0 at +-inf: inf * 0 is NaN there, as in torch
    r = 1.0 / (1.0 + e)
    s = r if x >= 0 else e * r
    return s * (1.0 + x * (e * r if x >= 0 else r))


@njit(**HELPER)
def elu_grad32(v, alpha):
    """1 above 0, else ``alpha e**v``, of a float32 ``v``, in float64."""
    x = np.float64(v)
    return 1.0 if x > 0 else alpha * exp_poly(x)


@njit(**HELPER)
def gelu_grad32(v):
    """``Phi(v) + v phi(v)`` (the exact gelu's derivative) of a float32 ``v``, in float64."""
    x = np.float64(v)
    e = erfc_poly(abs(x) * _INV_SQRT2)
    cdf = 0.5 * e if x < 0 else 1.0 - 0.5 * e
    return cdf + x * (_INV_SQRT2PI * exp_poly(-0.5 * x * x))  # at +-inf, inf * 0: NaN (torch)
