"""Standalone activations: parallel, and in place when asked (``out=x``).

The same functions that every convolution applies with ``activation=``,
elementwise on arrays of any shape, plus ``softmax`` over an axis.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from ._activations import ACTIVATIONS, elementwise
from ._config import PARALLEL
from ._dtypes import as_array, result_dtypes, to_kernel

__all__ = ["elu", "gelu", "leaky_relu", "relu", "sigmoid", "silu", "softmax", "tanh"]

@njit(**PARALLEL)
def _softmax_rows(src, dst):
    for r in prange(src.shape[0]):
        row = src[r]
        out = dst[r]
        m = row[0]
        for j in range(row.shape[0]):
            v = row[j]
            if v > m or v != v:
                m = v
        total = 0.0
        for j in range(row.shape[0]):
            e = math.exp(row[j] - m)
            out[j] = e
            total += e
        inv = 1.0 / total
        for j in range(row.shape[0]):
            out[j] = out[j] * inv


def _out_array(out: np.ndarray | None, shape: tuple, dtype: np.dtype) -> np.ndarray:
    if out is None:
        return np.empty(shape, dtype=dtype)
    if not isinstance(out, np.ndarray):
        raise TypeError(f"out must be a numpy array, got {type(out).__name__}")
    if out.shape != shape or out.dtype != dtype:
        raise ValueError(f"out must have shape {shape} and dtype {dtype}, "
                         f"got {out.shape} and {out.dtype}")
    if not out.flags.writeable:
        raise ValueError("out must be writeable")
    return out


def _apply(x, out, name: str, param: float) -> np.ndarray:
    x = as_array("x", x)
    cdt, rdt = result_dtypes(x=x)
    res = _out_array(out, x.shape, rdt)
    if x.size == 0:
        return res
    src = to_kernel(x, cdt).reshape(-1)
    direct = res.dtype == cdt and res.flags.c_contiguous
    dst = res.reshape(-1) if direct else np.empty(x.size, dtype=cdt)
    elementwise(src, dst, ACTIVATIONS[name], float(param))
    if not direct:
        res[...] = dst.reshape(x.shape)
    return res


def relu(x, out=None):
    """``max(x, 0)``, elementwise (NaN stays NaN).

    Parameters
    ----------
    x : array_like, any shape
    out : numpy.ndarray, optional
        Where to write (``x`` itself for in place): same shape, and the result
        dtype (that of ``x`` for floats, float64 for integers).

    Returns
    -------
    numpy.ndarray, the shape of ``x``

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.relu(np.array([-1.0, 0.5]))
    array([0. , 0.5])
    >>> a = np.array([-2.0, 3.0])
    >>> numbaconv.relu(a, out=a) is a
    True
    >>> a
    array([0., 3.])
    """
    return _apply(x, out, "relu", 0.0)


def leaky_relu(x, negative_slope: float = 0.01, out=None):
    """``x`` where positive, ``negative_slope * x`` elsewhere (see :func:`relu` for ``out``).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.leaky_relu(np.array([-1.0, 2.0]), 0.1)
    array([-0.1,  2. ])
    """
    return _apply(x, out, "leaky_relu", negative_slope)


def elu(x, alpha: float = 1.0, out=None):
    """``x`` where positive, ``alpha * (exp(x) - 1)`` elsewhere (see :func:`relu` for ``out``).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.elu(np.array([0.0, 1.0]))
    array([0., 1.])
    """
    return _apply(x, out, "elu", alpha)


def gelu(x, out=None):
    """``x * Phi(x)``, the exact (erf) GELU, PyTorch's default (see :func:`relu`).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.gelu(np.array([0.0]))
    array([0.])
    """
    return _apply(x, out, "gelu", 0.0)


def sigmoid(x, out=None):
    """``1 / (1 + exp(-x))`` (see :func:`relu` for ``out``).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.sigmoid(np.array([0.0]))
    array([0.5])
    """
    return _apply(x, out, "sigmoid", 0.0)


def tanh(x, out=None):
    """Hyperbolic tangent (see :func:`relu` for ``out``).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.tanh(np.array([0.0]))
    array([0.])
    """
    return _apply(x, out, "tanh", 0.0)


def silu(x, out=None):
    """``x * sigmoid(x)`` (swish) (see :func:`relu` for ``out``).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.silu(np.array([0.0]))
    array([0.])
    """
    return _apply(x, out, "silu", 0.0)


def softmax(x, axis: int = -1, out=None):
    """``exp(x) / sum(exp(x))`` along ``axis`` (stable: the maximum is subtracted first).

    Parameters
    ----------
    x : array_like, any shape with at least one axis
    axis : int
    out : numpy.ndarray, optional
        As in :func:`relu`.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.softmax(np.log(np.array([[1.0, 3.0]])), axis=1)
    array([[0.25, 0.75]])
    """
    x = as_array("x", x)
    if x.ndim == 0:
        raise ValueError("softmax needs an array with at least one axis, got a scalar")
    if isinstance(axis, bool) or not isinstance(axis, (int, np.integer)):
        raise TypeError(f"axis must be an int, got {axis!r}")
    if not -x.ndim <= axis < x.ndim:
        raise ValueError(f"axis must be in [-{x.ndim}, {x.ndim}) for x.ndim={x.ndim}, "
                         f"got {axis}")
    ax = int(axis) % x.ndim
    cdt, rdt = result_dtypes(x=x)
    res = _out_array(out, x.shape, rdt)
    if x.size == 0:
        return res
    moved = np.moveaxis(x, ax, -1)
    src = to_kernel(moved, cdt).reshape(-1, x.shape[ax])
    dst = np.empty(src.shape, dtype=cdt)
    _softmax_rows(src, dst)
    np.moveaxis(res, ax, -1)[...] = dst.reshape(moved.shape)
    return res
