"""Activation functions fused into the epilogue of every kernel.

The public names map to small integer codes, so that one compiled kernel
serves every activation (a branch per output element costs nothing next to
the window's reduction).
"""

from __future__ import annotations

import math

from numba import njit

from ._config import HELPER

#: name -> code. Fused into convolutions, ``leaky_relu`` uses PyTorch's default
#: slope 0.01 and ``elu`` alpha 1; ``gelu`` is the exact (erf) form, PyTorch's
#: default.
ACTIVATIONS = {
    None: 0,
    "relu": 1,
    "leaky_relu": 2,
    "sigmoid": 3,
    "tanh": 4,
    "gelu": 5,
    "silu": 6,
    "elu": 7,
}
LEAKY_SLOPE = 0.01
_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def activation_code(activation: str | None) -> int:
    """Validate ``activation`` and return its kernel code."""
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"activation must be one of {names}; got {activation!r}") from None


@njit(**HELPER)
def activate(v, code):
    """Apply activation ``code`` to the scalar ``v`` (NaN stays NaN)."""
    return activate_with(v, code, LEAKY_SLOPE if code == 2 else 1.0)


@njit(**HELPER)
def activate_with(v, code, param):
    """Activation ``code`` with its parameter (leaky_relu's slope, elu's alpha)."""
    if code == 0:
        return v
    if code == 1:
        return 0.0 if v < 0 else v
    if code == 2:
        return v * param if v < 0 else v
    if code == 7:
        return param * (math.exp(v) - 1.0) if v < 0 else v
    if code == 3:
        return 1.0 / (1.0 + math.exp(-v))
    if code == 4:
        return math.tanh(v)
    if code == 5:
        return 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))
    return v / (1.0 + math.exp(-v))


_INV_SQRT2PI = 1.0 / math.sqrt(2.0 * math.pi)


@njit(**HELPER)
def derivative_with(v, code, param):
    """The derivative at ``v`` of activation ``code`` with its parameter (0 at relu's kink)."""
    if code == 0:
        return 1.0
    if code == 1:
        return 1.0 if v > 0 else 0.0
    if code == 2:
        return 1.0 if v > 0 else param
    if code == 7:
        return 1.0 if v > 0 else param * math.exp(v)
    if code == 3:
        s = 1.0 / (1.0 + math.exp(-v))
        return s * (1.0 - s)
    if code == 4:
        t = math.tanh(v)
        return 1.0 - t * t
    if code == 5:
        return 0.5 * (1.0 + math.erf(v * _INV_SQRT2)) + v * _INV_SQRT2PI * math.exp(-0.5 * v * v)
    s = 1.0 / (1.0 + math.exp(-v))
    return s * (1.0 + v * (1.0 - s))
