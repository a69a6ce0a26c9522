"""Activation functions fused into the epilogue of every kernel.

The public names map to small integer codes, so that one compiled kernel
serves every activation. Kernels apply :func:`activate_run` to each run of
outputs they have just written (still in cache); the branch on the code is
taken once per run, so that relu and leaky relu vectorise.
"""

from __future__ import annotations

import math

from numba import njit, types
from numba.extending import overload

from ._config import CALLED, HELPER
from ._vecmath import _INV_SQRT2, elu32, gelu32, sigmoid32, silu32, tanh32

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


def activation_code(activation: str | None) -> int:
    """Validate ``activation`` and return its kernel code."""
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"activation must be one of {names}; got {activation!r}") from None


@njit(**CALLED)
def activate(v, code):
    """Apply activation ``code`` to the scalar ``v`` (NaN stays NaN).

    For scattered outputs only; runs of outputs go through :func:`activate_run`.
    """
    return activate_with(v, code, LEAKY_SLOPE if code == 2 else 1.0)


@njit(**CALLED)
def activate_run(v, code):
    """``v[j] = activate(v[j], code)`` for every element of the 1-D view ``v``, in place."""
    activate_run_with(v, code, LEAKY_SLOPE if code == 2 else 1.0)


@njit(**CALLED)
def activate_run_with(v, code, param):
    """:func:`activate_with` on every element of the 1-D view ``v``, in place.

    One loop per branch, so that relu and leaky relu vectorise (the branch per
    element inlined into every kernel's loops did not, and cost compile time:
    asv_bench/NOTES.md, attempt 54).
    """
    n = v.shape[0]
    if code == 1:
        for j in range(n):
            if v[j] < 0:
                v[j] = 0
    elif code == 2:
        for j in range(n):
            if v[j] < 0:
                v[j] = v[j] * param
    elif code == 3:  # a loop per code: each inlines just its own function
        for j in range(n):
            v[j] = _sigmoid(v[j])
    elif code == 4:
        for j in range(n):
            v[j] = _tanh(v[j])
    elif code == 5:
        for j in range(n):
            v[j] = _gelu(v[j])
    elif code == 6:
        for j in range(n):
            v[j] = _silu(v[j])
    elif code == 7:
        for j in range(n):
            v[j] = _elu(v[j], param)


@njit(**HELPER)
def activate_with(v, code, param):
    """Activation ``code`` with its parameter (leaky_relu's slope, elu's alpha)."""
    if code == 0:
        return v
    if code == 1:
        return 0.0 if v < 0 else v
    if code == 2:
        return v * param if v < 0 else v
    if code == 3:
        return _sigmoid(v)
    if code == 4:
        return _tanh(v)
    if code == 5:
        return _gelu(v)
    if code == 7:
        return _elu(v, param)
    return _silu(v)


# The per-code functions pick their form when Numba types the caller: float32 through the
# forms that vectorise (_vecmath), float64 through the C library. Only the chosen form is
# compiled, on its own (LLVM inlines it into the loops above), which keeps each caller small;
# gelu's float32 form is inlined by Numba, being too large for LLVM's inliner (NOTES 55).


def _sigmoid(v):
    """Sigmoid of a scalar (Numba only: implemented by the overload below)."""


def _tanh(v):
    """tanh of a scalar (Numba only)."""


def _silu(v):
    """silu of a scalar (Numba only)."""


def _elu(v, alpha):
    """elu of a scalar (Numba only)."""


def _gelu(v):
    """gelu of a scalar (Numba only)."""


@overload(_sigmoid, jit_options=CALLED)
def _sigmoid_form(v):
    if v == types.float32:
        return lambda v: sigmoid32(v)
    return lambda v: 1.0 / (1.0 + math.exp(-v))


@overload(_tanh, jit_options=CALLED)
def _tanh_form(v):
    if v == types.float32:
        return lambda v: tanh32(v)
    return lambda v: math.tanh(v)


@overload(_silu, jit_options=CALLED)
def _silu_form(v):
    if v == types.float32:
        return lambda v: silu32(v)
    return lambda v: v / (1.0 + math.exp(-v))


@overload(_elu, jit_options=CALLED)
def _elu_form(v, alpha):
    if v == types.float32:
        return lambda v, alpha: elu32(v, alpha)
    return lambda v, alpha: alpha * (math.exp(v) - 1.0) if v < 0 else v


@overload(_gelu, jit_options=CALLED, inline="always")
def _gelu_form(v):
    if v == types.float32:
        return lambda v: gelu32(v)
    return lambda v: 0.5 * v * (1.0 + math.erf(v * _INV_SQRT2))


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
