"""Gradients of the activations: ``grad_output`` times the derivative at ``x``.

Each ``*_backward(grad_output, x, ...)`` takes the forward's arguments (but
``out``) and returns ``ActivationGrads(input)``, an array shaped like ``x``.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit, prange

from ._activations import ACTIVATIONS, chain_run
from ._config import PARALLEL
from ._dtypes import as_array, result_dtypes, to_kernel
from .activations import softmax

__all__ = [
    "ActivationGrads",
    "elu_backward",
    "gelu_backward",
    "leaky_relu_backward",
    "relu_backward",
    "sigmoid_backward",
    "silu_backward",
    "softmax_backward",
    "tanh_backward",
]

_CHUNK = 1 << 14


class ActivationGrads(NamedTuple):
    """Gradient of an activation with respect to its input."""

    input: np.ndarray


@njit(**PARALLEL)
def _chain(g, x, dst, code, param):
    n = x.shape[0]
    nchunk = (n + _CHUNK - 1) // _CHUNK
    for ch in prange(nchunk):
        lo = ch * _CHUNK
        hi = min(n, lo + _CHUNK)
        chain_run(g[lo:hi], x[lo:hi], dst[lo:hi], code, param)


def _backward(grad_output, x, name: str, param: float) -> ActivationGrads:
    x = as_array("x", x)
    g = as_array("grad_output", grad_output)
    if g.shape != x.shape:
        raise ValueError(f"grad_output must have the shape of x {x.shape}, got {g.shape}")
    cdt, rdt = result_dtypes(grad_output=g, x=x)
    dst = np.empty(x.shape, dtype=cdt)
    if x.size:
        _chain(to_kernel(g, cdt).reshape(-1), to_kernel(x, cdt).reshape(-1), dst.reshape(-1),
               ACTIVATIONS[name], float(param))
    return ActivationGrads(dst.astype(rdt, copy=False))


def relu_backward(grad_output, x) -> ActivationGrads:
    """Gradient of :func:`numbaconv.relu`: ``grad_output`` where ``x > 0``, else 0.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.relu_backward(np.array([5.0, 5.0]), np.array([-1.0, 2.0])).input
    array([0., 5.])
    """
    return _backward(grad_output, x, "relu", 0.0)


def leaky_relu_backward(grad_output, x, negative_slope: float = 0.01) -> ActivationGrads:
    """Gradient of :func:`numbaconv.leaky_relu`.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.leaky_relu_backward(np.ones(2), np.array([-1.0, 2.0]), 0.1).input
    array([0.1, 1. ])
    """
    return _backward(grad_output, x, "leaky_relu", negative_slope)


def elu_backward(grad_output, x, alpha: float = 1.0) -> ActivationGrads:
    """Gradient of :func:`numbaconv.elu`: ``alpha * exp(x)`` below zero, 1 above.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.elu_backward(np.ones(2), np.array([0.0, 2.0])).input
    array([1., 1.])
    """
    return _backward(grad_output, x, "elu", alpha)


def gelu_backward(grad_output, x) -> ActivationGrads:
    """Gradient of :func:`numbaconv.gelu` (exact form): ``Phi(x) + x * phi(x)``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.gelu_backward(np.ones(1), np.zeros(1)).input
    array([0.5])
    """
    return _backward(grad_output, x, "gelu", 0.0)


def sigmoid_backward(grad_output, x) -> ActivationGrads:
    """Gradient of :func:`numbaconv.sigmoid`: ``s * (1 - s)``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.sigmoid_backward(np.ones(1), np.zeros(1)).input
    array([0.25])
    """
    return _backward(grad_output, x, "sigmoid", 0.0)


def tanh_backward(grad_output, x) -> ActivationGrads:
    """Gradient of :func:`numbaconv.tanh`: ``1 - tanh(x)**2``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.tanh_backward(np.ones(1), np.zeros(1)).input
    array([1.])
    """
    return _backward(grad_output, x, "tanh", 0.0)


def silu_backward(grad_output, x) -> ActivationGrads:
    """Gradient of :func:`numbaconv.silu`: ``s * (1 + x * (1 - s))``, ``s = sigmoid(x)``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.silu_backward(np.ones(1), np.zeros(1)).input
    array([0.5])
    """
    return _backward(grad_output, x, "silu", 0.0)


def softmax_backward(grad_output, x, axis: int = -1) -> ActivationGrads:
    """Gradient of :func:`numbaconv.softmax`: ``s * (g - sum(g * s, axis))``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.softmax_backward(np.array([1.0, 0.0]), np.zeros(2)).input
    array([ 0.25, -0.25])
    """
    s = softmax(x, axis)
    g = as_array("grad_output", grad_output)
    if g.shape != s.shape:
        raise ValueError(f"grad_output must have the shape of x {s.shape}, got {g.shape}")
    cdt, rdt = result_dtypes(grad_output=g, x=s)
    s = s.astype(cdt, copy=False)
    gs = g.astype(cdt, copy=False) * s
    return ActivationGrads((gs - s * gs.sum(axis=axis, keepdims=True)).astype(rdt, copy=False))
