"""Gradients of pooling: max, average, power-average (Lp), adaptive and global.

Each ``*_backward`` takes ``grad_output`` followed by exactly the forward's
arguments and returns ``PoolGrads(input)``.

* **Max** pooling sends each output's gradient to the input sample its
  window picked (the forward's ``return_indices``), adding where windows
  overlap: one job per channel plane, so no two jobs ever add into one array.
* **Average** and **Lp** pooling are linear maps (Lp after its power), and
  separable: a window's weight is the product of one factor per axis. Their
  adjoint is applied axis by axis, as a small ``(out, in)`` matrix per axis.
"""

from __future__ import annotations

from typing import NamedTuple

import numba
import numpy as np

from . import _grad_kernels
from ._dtypes import as_array, result_dtypes, to_kernel
from ._geometry import IntOrTuple, per_axis
from .convolution import ArrayLike
from .pooling import (
    _counts,
    _rank_and_batch,
    _window,
    adaptive_bounds,
    adaptive_max_pool,
    avg_pool_scale,
    lp_pool,
    max_pool,
    max_unpool,
)

__all__ = [
    "PoolGrads",
    "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
    "adaptive_avg_pool3d_backward", "adaptive_avg_pool_backward",
    "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward",
    "adaptive_max_pool3d_backward", "adaptive_max_pool_backward",
    "avg_pool1d_backward", "avg_pool2d_backward", "avg_pool3d_backward", "avg_pool_backward",
    "global_avg_pool_backward", "global_max_pool_backward",
    "lp_pool1d_backward", "lp_pool2d_backward", "lp_pool3d_backward", "lp_pool_backward",
    "max_pool1d_backward", "max_pool2d_backward", "max_pool3d_backward", "max_pool_backward",
    "max_unpool1d_backward", "max_unpool2d_backward", "max_unpool3d_backward",
    "max_unpool_backward",
]


class PoolGrads(NamedTuple):
    """Gradient of a pooling with respect to its input."""

    input: np.ndarray


def _check_grad(grad_output: ArrayLike, shape: tuple[int, ...]) -> np.ndarray:
    g = as_array("grad_output", grad_output)
    if g.shape != tuple(shape):
        raise ValueError(
            f"grad_output must have the forward output's shape {tuple(shape)}, got {g.shape}"
        )
    return g


def _planes(a: np.ndarray, d: int) -> np.ndarray:
    """``a`` ``(..., *spatial)`` with ``d`` spatial axes as ``(1, planes, L)``."""
    return a.reshape(1, -1, int(np.prod(a.shape[a.ndim - d:], dtype=np.int64)))


def _max_backward(g: np.ndarray, idx: np.ndarray, x: np.ndarray, d: int) -> PoolGrads:
    cdt, rdt = result_dtypes(grad_output=g, x=x)
    gx = np.zeros(x.shape, dtype=cdt)
    if g.size:
        _grad_kernels.scatter_add_planes(_planes(to_kernel(g, cdt), d),
                                         _planes(np.ascontiguousarray(idx), d), _planes(gx, d),
                                         numba.get_num_threads())
    return PoolGrads(gx.astype(rdt, copy=False))


def _axis_matrices(in_shape, k, s, p, dl, out, scale):
    """Per axis ``A[o, i]``: ``scale[o]`` times the number of taps of window ``o`` on ``i``."""
    mats = []
    for n, ka, sa, pa, da, oa, sc in zip(in_shape, k, s, p, dl, out, scale):
        pos = np.arange(oa)[:, None] * sa - pa + np.arange(ka)[None, :] * da
        o = np.broadcast_to(np.arange(oa)[:, None], pos.shape)
        ok = (pos >= 0) & (pos < n)
        a = np.zeros((oa, n))
        np.add.at(a, (o[ok], pos[ok]), 1.0)
        mats.append(a * np.asarray(sc, dtype=np.float64)[:, None])
    return mats


def _adjoint(g: np.ndarray, mats: list[np.ndarray], cdt: np.dtype) -> np.ndarray:
    """Apply the transpose of the separable map ``kron(mats)`` to ``g``'s spatial axes."""
    d = len(mats)
    out = g.astype(cdt, copy=False)
    for a, m in enumerate(mats):
        ax = out.ndim - d + a
        out = np.moveaxis(np.moveaxis(out, ax, -1) @ m.astype(cdt), -1, ax)
    return np.ascontiguousarray(out)


def max_pool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> PoolGrads:
    """Gradient of :func:`numbaconv.max_pool` with respect to ``x``.

    Each output's gradient goes to the input sample that its window picked
    (the first maximum, or the first NaN, as PyTorch); overlapping windows
    add up. ``return_indices`` is accepted for symmetry and has no effect.

    Parameters
    ----------
    grad_output : array_like, shape (N, C, *out_spatial) or (C, *out_spatial)
    x, kernel_size, stride, padding, dilation, ceil_mode, return_indices
        The forward's arguments.

    Returns
    -------
    PoolGrads
        ``(input,)`` shaped like ``x``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.array([[[1.0, 3.0, 2.0, 0.0]]])
    >>> numbaconv.max_pool_backward(np.array([[[10.0, 20.0]]]), x, 2).input
    array([[[ 0., 10., 20.,  0.]]])
    """
    y, idx = max_pool(x, kernel_size, stride, padding, dilation, ceil_mode, True)
    g = _check_grad(grad_output, y.shape)
    return _max_backward(g, idx, as_array("x", x), _rank(x, kernel_size))


def _rank(x: ArrayLike, size: IntOrTuple) -> int:
    """Spatial axes of a pooling: the forward's own rule (:func:`pooling._rank_and_batch`)."""
    return _rank_and_batch(as_array("x", x), size if isinstance(size, (tuple, list)) else 0)[0]


def avg_pool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    dilation: IntOrTuple = 1,
) -> PoolGrads:
    """Gradient of :func:`numbaconv.avg_pool` with respect to ``x``.

    Each output's gradient, divided as the forward divided, is spread over its
    window's input samples (padding takes its share and drops it).

    Parameters
    ----------
    grad_output : array_like, shape (N, C, *out_spatial) or (C, *out_spatial)
    x, kernel_size, stride, padding, ceil_mode, count_include_pad, divisor_override, dilation
        The forward's arguments.

    Returns
    -------
    PoolGrads
        ``(input,)`` shaped like ``x``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.avg_pool_backward(np.array([[[2.0, 4.0]]]), np.zeros((1, 1, 4)), 2).input
    array([[[1., 1., 2., 2.]]])
    """
    x = as_array("x", x)
    xb, unbatched, geo = _window(x, kernel_size, stride, padding, dilation, ceil_mode,
                                 "avg_pool")
    scale = avg_pool_scale(geo, count_include_pad, divisor_override)
    return _linear_backward(grad_output, x, geo, scale, unbatched)


def _linear_backward(grad_output, x, geo, scale, unbatched) -> PoolGrads:
    in_shape, k, s, p, dl, out = geo
    lead = x.shape[:1] if unbatched else x.shape[:2]
    g = _check_grad(grad_output, lead + tuple(out))
    cdt, rdt = result_dtypes(grad_output=g, x=x)
    gx = _adjoint(g, _axis_matrices(in_shape, k, s, p, dl, out, scale), cdt)
    return PoolGrads(gx.astype(rdt, copy=False))


def lp_pool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    norm_type: float,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    ceil_mode: bool = False,
) -> PoolGrads:
    """Gradient of :func:`numbaconv.lp_pool` with respect to ``x``.

    ``y = (sum_window x**p)**(1/p)`` gives ``dy/dx = x**(p-1) * y**(1-p)``;
    an output that is exactly zero passes no gradient (PyTorch gives NaN or
    zero there, depending on the path its autograd takes).

    Parameters
    ----------
    grad_output : array_like, shape (N, C, *out_spatial) or (C, *out_spatial)
    x, norm_type, kernel_size, stride, ceil_mode
        The forward's arguments.

    Returns
    -------
    PoolGrads
        ``(input,)`` shaped like ``x``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.array([[[3.0, 4.0]]])
    >>> numbaconv.lp_pool_backward(np.ones((1, 1, 1)), x, 2, 2).input    # x / ||x||
    array([[[0.6, 0.8]]])
    """
    x = as_array("x", x)
    y = lp_pool(x, norm_type, kernel_size, stride, ceil_mode)
    p = float(norm_type)
    xb, unbatched, geo = _window(x, kernel_size, stride, 0, 1, ceil_mode, "lp_pool")
    in_shape, k, s, _, _, out = geo
    g = _check_grad(grad_output, y.shape)
    cdt, rdt = result_dtypes(grad_output=g, x=x)
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        c = np.where(y != 0, g * np.power(y.astype(cdt), 1.0 - p), 0).astype(cdt)
        scale = [ka / _counts(n, ka, sa, 0, 1, oa, True)
                 for n, ka, sa, oa in zip(in_shape, k, s, out)]
        gx = _linear_backward(c, x, geo, scale, unbatched).input.astype(cdt)
        gx *= np.power(x.astype(cdt), p - 1.0)
    return PoolGrads(gx.astype(rdt, copy=False))


def adaptive_max_pool_backward(
    grad_output: ArrayLike, x: ArrayLike, output_size: IntOrTuple, return_indices: bool = False
) -> PoolGrads:
    """Gradient of :func:`numbaconv.adaptive_max_pool` with respect to ``x``.

    As :func:`max_pool_backward`; ``return_indices`` has no effect.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.array([[[1.0, 3.0, 2.0, 0.0, 5.0]]])
    >>> numbaconv.adaptive_max_pool_backward(np.ones((1, 1, 2)), x, 2).input
    array([[[0., 1., 0., 0., 1.]]])
    """
    y, idx = adaptive_max_pool(x, output_size, True)
    g = _check_grad(grad_output, y.shape)
    return _max_backward(g, idx, as_array("x", x), _rank(x, output_size))


def adaptive_avg_pool_backward(
    grad_output: ArrayLike, x: ArrayLike, output_size: IntOrTuple
) -> PoolGrads:
    """Gradient of :func:`numbaconv.adaptive_avg_pool` with respect to ``x``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.adaptive_avg_pool_backward(np.ones((1, 1, 2)), np.zeros((1, 1, 5)), 2).input
    array([[[0.33333333, 0.33333333, 0.66666667, 0.33333333, 0.33333333]]])
    """
    x = as_array("x", x)
    d, _, unbatched, in_shape, out, bounds = adaptive_bounds(x, output_size)
    lead = x.shape[:1] if unbatched else x.shape[:2]
    g = _check_grad(grad_output, lead + tuple(out))
    cdt, rdt = result_dtypes(grad_output=g, x=x)
    mats = []
    for a, (n, o) in enumerate(zip(in_shape, out)):
        i = np.arange(n)[None, :]
        inside = (i >= bounds[a, 0, :o, None]) & (i < bounds[a, 1, :o, None])
        mats.append(inside / inside.sum(axis=1, keepdims=True))
    return PoolGrads(_adjoint(g, mats, cdt).astype(rdt, copy=False))


def global_avg_pool_backward(grad_output: ArrayLike, x: ArrayLike,
                             keepdims: bool = False) -> PoolGrads:
    """Gradient of :func:`numbaconv.global_avg_pool`: ``grad_output`` spread evenly.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.global_avg_pool_backward(np.array([[4.0]]), np.zeros((1, 1, 2, 2))).input
    array([[[[1., 1.],
             [1., 1.]]]])
    """
    x = as_array("x", x)
    if x.ndim < 3:
        raise ValueError(f"x must have shape (N, C, *spatial), got x.shape={x.shape}")
    g = _check_grad(grad_output, x.shape[:2] + ((1,) * (x.ndim - 2) if keepdims else ()))
    cdt, rdt = result_dtypes(grad_output=g, x=x)
    size = int(np.prod(x.shape[2:]))
    gx = np.broadcast_to(g.reshape(x.shape[:2] + (1,) * (x.ndim - 2)).astype(cdt) / size,
                         x.shape)
    return PoolGrads(np.ascontiguousarray(gx).astype(rdt, copy=False))


def global_max_pool_backward(grad_output: ArrayLike, x: ArrayLike,
                             keepdims: bool = False) -> PoolGrads:
    """Gradient of :func:`numbaconv.global_max_pool`: to each plane's (first) maximum.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.global_max_pool_backward(np.array([[4.0]]), np.array([[[1.0, 7.0, 7.0]]])).input
    array([[[0., 4., 0.]]])
    """
    x = as_array("x", x)
    if x.ndim < 3:
        raise ValueError(f"x must have shape (N, C, *spatial), got x.shape={x.shape}")
    g = _check_grad(grad_output, x.shape[:2] + ((1,) * (x.ndim - 2) if keepdims else ()))
    return adaptive_max_pool_backward(g.reshape(x.shape[:2] + (1,) * (x.ndim - 2)), x,
                                      (1,) * (x.ndim - 2))


def max_unpool_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    indices: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    output_size: tuple[int, ...] | None = None,
) -> PoolGrads:
    """Gradient of :func:`numbaconv.max_unpool` with respect to ``x``: ``grad_output`` read
    at ``indices``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> g = np.array([[[1.0, 2.0, 3.0, 4.0]]])
    >>> numbaconv.max_unpool_backward(g, np.ones((1, 1, 2)), np.array([[[1, 2]]]), 2).input
    array([[[2., 3.]]])
    """
    y = max_unpool(x, indices, kernel_size, stride, padding, output_size)
    g = _check_grad(grad_output, y.shape)
    x = as_array("x", x)
    cdt, rdt = result_dtypes(grad_output=g, x=x)
    d = _rank(x, kernel_size)
    ind = np.asarray(indices, dtype=np.int64)
    g2 = g.reshape(-1, int(np.prod(g.shape[g.ndim - d:], dtype=np.int64)))
    gx = np.take_along_axis(g2, ind.reshape(g2.shape[0], -1), axis=1)
    return PoolGrads(gx.reshape(x.shape).astype(rdt, copy=False))


def _kernel_alias(f, d: int, kpos: int = 0):
    """``f`` reading an int ``kernel_size`` (after ``kpos`` other leading arguments) as
    ``d`` spatial axes, batched or not, as the forward's ``*{d}d`` forms do."""
    def g(grad_output, x, *args, **kwargs):
        args = list(args)
        args[kpos] = per_axis("kernel_size", args[kpos], d, 1)
        return f(grad_output, x, *args, **kwargs)

    name = f.__name__.replace("_backward", f"{d}d_backward")
    g.__name__ = g.__qualname__ = name
    g.__doc__ = f"Gradient of :func:`numbaconv.{name[:-9]}`: :func:`{f.__name__}` in {d}-D."
    return g


def _size_alias(f, d: int):
    def g(grad_output, x, output_size, *args, **kwargs):
        if not isinstance(output_size, (tuple, list)):
            output_size = per_axis("output_size", output_size, d, 1)
        return f(grad_output, x, output_size, *args, **kwargs)

    name = f.__name__.replace("_backward", f"{d}d_backward")
    g.__name__ = g.__qualname__ = name
    g.__doc__ = f"Gradient of :func:`numbaconv.{name[:-9]}`: :func:`{f.__name__}` in {d}-D."
    return g


max_pool1d_backward, max_pool2d_backward, max_pool3d_backward = (
    _kernel_alias(max_pool_backward, d) for d in (1, 2, 3))
avg_pool1d_backward, avg_pool2d_backward, avg_pool3d_backward = (
    _kernel_alias(avg_pool_backward, d) for d in (1, 2, 3))
lp_pool1d_backward, lp_pool2d_backward, lp_pool3d_backward = (
    _kernel_alias(lp_pool_backward, d, 1) for d in (1, 2, 3))
max_unpool1d_backward, max_unpool2d_backward, max_unpool3d_backward = (
    _kernel_alias(max_unpool_backward, d, 1) for d in (1, 2, 3))
adaptive_max_pool1d_backward, adaptive_max_pool2d_backward, adaptive_max_pool3d_backward = (
    _size_alias(adaptive_max_pool_backward, d) for d in (1, 2, 3))
adaptive_avg_pool1d_backward, adaptive_avg_pool2d_backward, adaptive_avg_pool3d_backward = (
    _size_alias(adaptive_avg_pool_backward, d) for d in (1, 2, 3))
