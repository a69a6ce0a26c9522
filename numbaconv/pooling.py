"""Pooling in any rank: max, average and power-average (Lp), as ``torch.nn.functional``.

All three run on the sliding-window core (:mod:`numbaconv._pool_kernels`): the
window geometry and virtual planes of convolution, with a max or sum reduce
instead of the weighted sum.

The rank is ``len(kernel_size)`` when it is a tuple; an int ``kernel_size``
means ``x.ndim - 2`` spatial axes, that is a batched ``(N, C, *spatial)``
input. Pass a tuple to pool an unbatched ``(C, *spatial)`` input.
"""

from __future__ import annotations

import functools
import itertools
import math

import numba
import numpy as np

from . import _pool_kernels as pk
from ._dtypes import as_array, result_dtypes, to_kernel
from ._geometry import G_VLEN, IntOrTuple, per_axis, spatial_sizes, tables_from_maps
from .convolution import ArrayLike, _batched

__all__ = [
    "adaptive_avg_pool", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
    "adaptive_max_pool", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
    "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d",
    "global_avg_pool", "global_max_pool",
    "lp_pool", "lp_pool1d", "lp_pool2d", "lp_pool3d",
    "max_pool", "max_pool1d", "max_pool2d", "max_pool3d",
    "max_unpool", "max_unpool1d", "max_unpool2d", "max_unpool3d",
]


def _rank_and_batch(x: np.ndarray, kernel_size: IntOrTuple) -> tuple[int, np.ndarray, bool]:
    if isinstance(kernel_size, (tuple, list)):
        d = len(kernel_size)
        if d == 0:
            raise ValueError("kernel_size must not be empty")
    else:
        d = x.ndim - 2
        if d < 1:
            raise ValueError(
                f"x must have shape (N, C, *spatial) for an int kernel_size, got x.shape={x.shape}"
                " (pass kernel_size as a tuple to pool an unbatched input)"
            )
    xb, unbatched = _batched(x, d, f"kernel_size={kernel_size!r}")
    return d, xb, unbatched


def pool_output_size(n: int, k: int, s: int, p: int, dl: int, ceil_mode: bool) -> int:
    """PyTorch's pooling output size; in ceil mode the last window must start inside
    the input or the left padding."""
    span = n + 2 * p - dl * (k - 1) - 1
    out = (span + (s - 1 if ceil_mode else 0)) // s + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def _window(x, kernel_size, stride, padding, dilation, ceil_mode, name):
    d, xb, unbatched = _rank_and_batch(x, kernel_size)
    k = per_axis("kernel_size", kernel_size, d, 1)
    s = k if stride is None or (isinstance(stride, (tuple, list)) and len(stride) == 0) \
        else per_axis("stride", stride, d, 1)
    p = per_axis("padding", padding, d, 0)
    dl = per_axis("dilation", dilation, d, 1)
    for a in range(d):
        if p[a] > k[a] // 2:
            raise ValueError(
                f"{name}: padding must be at most half the kernel size along each axis, "
                f"got padding={padding!r} for kernel_size={kernel_size!r}"
            )
    out = tuple(pool_output_size(n, k[a], s[a], p[a], dl[a], bool(ceil_mode))
                for a, n in enumerate(xb.shape[2:]))
    if min(out) < 1:
        raise ValueError(
            f"{name}: the output would be empty: input {xb.shape[2:]}, kernel_size {k}, "
            f"stride {s}, padding {p}, dilation {dl}"
        )
    return xb, unbatched, (tuple(xb.shape[2:]), k, s, p, dl, out)


@functools.lru_cache(maxsize=128)
def _pool_tables(in_shape, k, s, p, dl, out):
    """Tables of the pooling window, and the virtual-position -> input-index plane."""
    maps = []
    for n, ka, sa, pa, da, oa in zip(in_shape, k, s, p, dl, out):
        v = np.arange((oa - 1) * sa + da * (ka - 1) + 1, dtype=np.int64) - pa
        maps.append(np.where((v >= 0) & (v < n), v, -1))
    tab = tables_from_maps(in_shape, k, s, dl, out, maps)
    strides = np.cumprod((1,) + in_shape[:0:-1])[::-1]
    vidx = np.zeros([len(m) for m in maps], dtype=np.int64)
    valid = np.ones(vidx.shape, dtype=bool)
    for a, m in enumerate(maps):
        shape = [1] * len(maps)
        shape[a] = len(m)
        vidx = vidx + (m * strides[a]).reshape(shape)
        valid = valid & (m >= 0).reshape(shape)
    vidx = np.where(valid, vidx, -1).ravel()
    vidx.flags.writeable = False
    assert vidx.size == int(tab.geom[G_VLEN].prod())
    return tab, vidx


def _counts(n, k, s, p, dl, out, include_pad):
    """Per output position of one axis: how many taps fall inside the (padded) input."""
    o = np.arange(out)[:, None]
    pos = o * s - p + np.arange(k)[None, :] * dl
    lo, hi = (-p, n + p) if include_pad else (0, n)
    return ((pos >= lo) & (pos < hi)).sum(axis=1)


def _run_pool(xb, geo, op, scale_axes, fill, power=1.0):
    in_shape, k, s, p, dl, out = geo
    cdt, rdt = result_dtypes(x=xb)
    nimg, nc = xb.shape[:2]
    y = np.empty((nimg, nc) + out, dtype=cdt)
    idx = np.empty((nimg, nc) + out if op == pk.MAX_INDEX else (1, 1, 1), dtype=np.int64)
    if nimg == 0 or nc == 0:
        return y.astype(rdt, copy=False), idx
    tab, vidx = _pool_tables(in_shape, k, s, p, dl, out)
    scale = np.concatenate(scale_axes).astype(np.float64)
    scale_off = np.array([0, *itertools.accumulate(len(a) for a in scale_axes[:-1])], np.int64)
    pk.window_pool(to_kernel(xb, cdt).reshape(nimg, nc, -1), y.reshape(nimg, nc, -1),
                   idx.reshape(idx.shape[0], idx.shape[1], -1), tab.geom, tab.maps, tab.voff,
                   vidx, op, cdt.type(power), scale, scale_off, cdt.type(fill),
                   numba.get_num_threads())
    return y.astype(rdt, copy=False), idx


def max_pool(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    dilation: IntOrTuple = 1,
    ceil_mode: bool = False,
    return_indices: bool = False,
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """N-D max pooling, as ``torch.nn.functional.max_pool1d/2d/3d``.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
        See the module docstring for how the rank is read.
    kernel_size : int or tuple of d ints
    stride : int or tuple of d ints, optional
        Defaults to ``kernel_size``.
    padding : int or tuple of d ints
        Implicit ``-inf`` padding, at most half the kernel size.
    dilation : int or tuple of d ints
    ceil_mode : bool
        Round the output size up (the last window must still start inside the
        input or the left padding).
    return_indices : bool
        Also return, per output, the flat index of the maximum within its
        channel's input plane (for :func:`torch.nn.functional.max_unpool`).

    Returns
    -------
    numpy.ndarray, shape (N, C, *out_spatial) (and int64 indices of that shape)
        A NaN in a window wins, as in PyTorch. Dtypes as :func:`numbaconv.conv`
        (integer input gives float64).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> y, i = numbaconv.max_pool(x, 2, return_indices=True)
    >>> y[0, 0], i[0, 0]
    (array([[ 5.,  7.],
           [13., 15.]]), array([[ 5,  7],
           [13, 15]]))
    """
    x = as_array("x", x)
    xb, unbatched, geo = _window(x, kernel_size, stride, padding, dilation, ceil_mode,
                                 "max_pool")
    op = pk.MAX_INDEX if return_indices else pk.MAX
    y, idx = _run_pool(xb, geo, op, [np.ones(n) for n in geo[5]], -np.inf)
    if unbatched:
        y, idx = y[0], idx[0] if return_indices else idx
    return (y, idx) if return_indices else y


def avg_pool(
    x: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    ceil_mode: bool = False,
    count_include_pad: bool = True,
    divisor_override: int | None = None,
    dilation: IntOrTuple = 1,
) -> np.ndarray:
    """N-D average pooling, as ``torch.nn.functional.avg_pool1d/2d/3d`` (plus dilation).

    Parameters
    ----------
    x, kernel_size, stride, padding, ceil_mode
        As in :func:`max_pool` (the padding holds zeros).
    count_include_pad : bool
        Divide by the number of taps inside the padded input (True) or inside
        the input itself (False). Windows that ceil mode lets run past the
        padding are clipped either way, as in PyTorch.
    divisor_override : int, optional
        Divide every sum by this instead.
    dilation : int or tuple of d ints
        Spacing of the taps (PyTorch's average pooling has none).

    Returns
    -------
    numpy.ndarray, shape (N, C, *out_spatial)

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.arange(16.0).reshape(1, 1, 4, 4)
    >>> numbaconv.avg_pool(x, 2)[0, 0]
    array([[ 2.5,  4.5],
           [10.5, 12.5]])
    >>> numbaconv.avg_pool(x, 3, stride=2, padding=1, count_include_pad=False)[0, 0]
    array([[ 2.5,  4. ],
           [ 8.5, 10. ]])
    """
    x = as_array("x", x)
    xb, unbatched, geo = _window(x, kernel_size, stride, padding, dilation, ceil_mode,
                                 "avg_pool")
    scale = avg_pool_scale(geo, count_include_pad, divisor_override)
    y, _ = _run_pool(xb, geo, pk.SUM, scale, 0.0)
    return y[0] if unbatched else y


def avg_pool_scale(geo: tuple, count_include_pad: bool,
                   divisor_override: int | None) -> list[np.ndarray]:
    """Per axis, the factor of each output of :func:`avg_pool` (their product divides)."""
    in_shape, k, s, p, dl, out = geo
    if divisor_override is not None:
        if isinstance(divisor_override, bool) or not isinstance(divisor_override,
                                                                (int, np.integer)):
            raise TypeError(f"divisor_override must be an int, got {divisor_override!r}")
        if divisor_override == 0:
            raise ValueError("divisor_override must not be zero")
        scale = [np.full(n, 1.0) for n in out]
        scale[0] = scale[0] / divisor_override
        return scale
    return [1.0 / _counts(n, ka, sa, pa, da, oa, bool(count_include_pad))
            for n, ka, sa, pa, da, oa in zip(in_shape, k, s, p, dl, out)]


def lp_pool(
    x: ArrayLike,
    norm_type: float,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    ceil_mode: bool = False,
) -> np.ndarray:
    """N-D power-average pooling, as ``torch.nn.functional.lp_pool1d/2d/3d``.

    ``(sum over the window of x ** norm_type) ** (1 / norm_type)``; windows that
    ceil mode cuts short are scaled up to the full kernel size, as PyTorch
    does. Negative inputs with a fractional ``norm_type`` give NaN.

    Parameters
    ----------
    x, kernel_size, stride, ceil_mode
        As in :func:`max_pool` (no padding).
    norm_type : float
        The power ``p > 0``.

    Returns
    -------
    numpy.ndarray, shape (N, C, *out_spatial)

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.array([[[3.0, 4.0, 0.0, 5.0]]])
    >>> numbaconv.lp_pool(x, 2, 2)
    array([[[5., 5.]]])
    """
    x = as_array("x", x)
    try:
        p_norm = float(norm_type)
    except (TypeError, ValueError):
        raise TypeError(f"norm_type must be a number, got {norm_type!r}") from None
    if not p_norm > 0 or not math.isfinite(p_norm):
        raise ValueError(f"norm_type must be positive and finite, got {norm_type!r}")
    xb, unbatched, geo = _window(x, kernel_size, stride, 0, 1, ceil_mode, "lp_pool")
    in_shape, k, s, p, dl, out = geo
    scale = [ka / _counts(n, ka, sa, 0, 1, oa, True)
             for n, ka, sa, oa in zip(in_shape, k, s, out)]
    y, _ = _run_pool(xb, geo, pk.POWER_SUM, scale, 0.0, p_norm)
    with np.errstate(invalid="ignore"):  # a negative sum to a fractional power: NaN
        y = np.power(y, 1.0 / p_norm)
    return y[0] if unbatched else y


def _alias(f, d: int):
    def g(x, kernel_size, *args, **kwargs):
        k = per_axis("kernel_size", kernel_size, d, 1)
        return f(x, k, *args, **kwargs)

    name = f"{f.__name__}{d}d"
    g.__name__ = g.__qualname__ = name
    g.__doc__ = (f"{d}-D :func:`{f.__name__}` (``torch.nn.functional.{name}``): an int "
                 f"``kernel_size`` means {d} spatial axes, batched or not.")
    return g


max_pool1d, max_pool2d, max_pool3d = (_alias(max_pool, d) for d in (1, 2, 3))
avg_pool1d, avg_pool2d, avg_pool3d = (_alias(avg_pool, d) for d in (1, 2, 3))


def _lp_alias(d: int):
    def g(x, norm_type, kernel_size, stride=None, ceil_mode=False):
        return lp_pool(x, norm_type, per_axis("kernel_size", kernel_size, d, 1), stride,
                       ceil_mode)

    g.__name__ = g.__qualname__ = f"lp_pool{d}d"
    g.__doc__ = f"{d}-D :func:`lp_pool` (``torch.nn.functional.lp_pool{d}d``)."
    return g


lp_pool1d, lp_pool2d, lp_pool3d = (_lp_alias(d) for d in (1, 2, 3))


# ---------------------------------------------------------------------------
# adaptive and global pooling, unpooling
# ---------------------------------------------------------------------------


def adaptive_bounds(x: np.ndarray, output_size: IntOrTuple):
    """``(d, x batched, unbatched, in_shape, out_shape, bounds)`` of an adaptive pooling;
    ``bounds[a, 0/1, o]``: start and end of window ``o`` along axis ``a``."""
    sizes = output_size if isinstance(output_size, (tuple, list)) else None
    d, xb, unbatched = _rank_and_batch(x, sizes if sizes is not None else 0)
    in_shape = xb.shape[2:]
    if sizes is None:
        sizes = (output_size,) * d
    out = tuple(n if o is None else o for n, o in zip(in_shape, sizes))
    out = per_axis("output_size", out, d, 1)
    bounds = np.zeros((d, 2, max(out)), dtype=np.int64)
    for a, (n, o) in enumerate(zip(in_shape, out)):
        i = np.arange(o)
        bounds[a, 0, :o] = (i * n) // o  # PyTorch: floor(i * n / o), ceil((i + 1) * n / o)
        bounds[a, 1, :o] = -((-(i + 1) * n) // o)
    return d, xb, unbatched, in_shape, out, bounds


def _adaptive(x, output_size, op, name):
    x = as_array("x", x)
    d, xb, unbatched, in_shape, out, bounds = adaptive_bounds(x, output_size)
    cdt, rdt = result_dtypes(x=xb)
    nimg, nc = xb.shape[:2]
    y = np.empty((nimg, nc) + out, dtype=cdt)
    idx = np.empty((nimg, nc) + out if op == pk.MAX_INDEX else (1, 1, 1), dtype=np.int64)
    if y.size:
        pk.adaptive_pool(to_kernel(xb, cdt).reshape(nimg, nc, -1), y.reshape(nimg, nc, -1),
                         idx.reshape(idx.shape[0], idx.shape[1], -1), bounds,
                         np.asarray(in_shape, np.int64), np.asarray(out, np.int64), op,
                         numba.get_num_threads())
    y = y.astype(rdt, copy=False)
    if unbatched:
        y, idx = y[0], idx[0]
    return y, idx


def adaptive_max_pool(
    x: ArrayLike, output_size: IntOrTuple, return_indices: bool = False
) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
    """N-D adaptive max pooling, as ``torch.nn.functional.adaptive_max_pool1d/2d/3d``.

    Output ``i`` of an axis of size ``n`` pools input ``floor(i*n/out)`` to
    ``ceil((i+1)*n/out)``.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
        The rank is ``len(output_size)`` for a tuple, else ``x.ndim - 2``.
    output_size : int or tuple of d ints (None keeps that axis's size)
    return_indices : bool
        Also return the flat index of each maximum in its channel's plane.

    Returns
    -------
    numpy.ndarray, shape (N, C, *output_size) (and int64 indices)

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.adaptive_max_pool(np.arange(5.0).reshape(1, 1, 5), 2)
    array([[[2., 4.]]])
    """
    op = pk.MAX_INDEX if return_indices else pk.MAX
    y, idx = _adaptive(x, output_size, op, "adaptive_max_pool")
    return (y, idx) if return_indices else y


def adaptive_avg_pool(x: ArrayLike, output_size: IntOrTuple) -> np.ndarray:
    """N-D adaptive average pooling, as ``torch.nn.functional.adaptive_avg_pool1d/2d/3d``.

    Windows as in :func:`adaptive_max_pool`.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.adaptive_avg_pool(np.arange(5.0).reshape(1, 1, 5), 2)
    array([[[1., 3.]]])
    """
    return _adaptive(x, output_size, pk.SUM, "adaptive_avg_pool")[0]


def _global(x, op, keepdims):
    x = as_array("x", x)
    if x.ndim < 3:
        raise ValueError(
            f"x must have shape (N, C, *spatial) with at least one spatial axis, "
            f"got x.shape={x.shape}"
        )
    y = _adaptive(x, (1,) * (x.ndim - 2), op, "global pool")[0]
    return y if keepdims else y.reshape(y.shape[:2])


def global_max_pool(x: ArrayLike, keepdims: bool = False) -> np.ndarray:
    """The maximum over all spatial axes of ``(N, C, *spatial)`` (NaN wins).

    Returns ``(N, C)``, or ``(N, C, 1, ..., 1)`` with ``keepdims``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.global_max_pool(np.arange(8.0).reshape(1, 2, 2, 2))
    array([[3., 7.]])
    """
    return _global(x, pk.MAX, keepdims)


def global_avg_pool(x: ArrayLike, keepdims: bool = False) -> np.ndarray:
    """The mean over all spatial axes of ``(N, C, *spatial)``: ``(N, C)`` (see above).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> numbaconv.global_avg_pool(np.arange(8.0).reshape(1, 2, 2, 2), keepdims=True).shape
    (1, 2, 1, 1)
    """
    return _global(x, pk.SUM, keepdims)


def max_unpool(
    x: ArrayLike,
    indices: ArrayLike,
    kernel_size: IntOrTuple,
    stride: IntOrTuple | None = None,
    padding: IntOrTuple = 0,
    output_size: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Partial inverse of :func:`max_pool`, as ``torch.nn.functional.max_unpool1d/2d/3d``.

    Puts each value of ``x`` at its index (from ``max_pool(...,
    return_indices=True)``) in a zero output plane.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
    indices : array_like of ints, the shape of ``x``
        Flat indices into each channel's output plane.
    kernel_size, stride, padding
        Those of the max pooling (rank rule as :func:`max_pool`).
    output_size : tuple of d ints (or the full shape), optional
        Default ``(in - 1) * stride + kernel_size - 2 * padding``; a given size
        must lie strictly within ``stride`` of it, as in PyTorch.

    Returns
    -------
    numpy.ndarray, shape (N, C, *output_size)

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.array([[[1.0, 5.0, 2.0, 3.0]]])
    >>> y, i = numbaconv.max_pool(x, 2, return_indices=True)
    >>> numbaconv.max_unpool(y, i, 2)
    array([[[0., 5., 0., 3.]]])
    """
    x = as_array("x", x)
    ind = np.asarray(indices)
    if ind.dtype.kind not in "iu":
        raise TypeError(f"indices must be an integer array, got dtype {ind.dtype}")
    if ind.shape != x.shape:
        raise ValueError(f"indices must have the shape of x {x.shape}, got {ind.shape}")
    d, xb, unbatched = _rank_and_batch(x, kernel_size)
    k = per_axis("kernel_size", kernel_size, d, 1)
    s = k if stride is None else per_axis("stride", stride, d, 1)
    p = per_axis("padding", padding, d, 0)
    default = tuple((n - 1) * sa + ka - 2 * pa for n, sa, ka, pa in zip(xb.shape[2:], s, k, p))
    if output_size is None:
        out = default
    else:
        out = spatial_sizes("output_size", output_size, d)
        if any(not (dv - sa < o < dv + sa) for o, dv, sa in zip(out, default, s)):
            raise ValueError(f"output_size must be {d} sizes each within the stride of "
                             f"{default}, got {output_size!r}")
    if min(out) < 1:
        raise ValueError(f"the output would be empty: {out}")
    plane = math.prod(out)
    if ind.size and (ind.min() < 0 or ind.max() >= plane):
        raise ValueError(f"indices must lie in [0, {plane}) for an output plane of {out}, "
                         f"got values from {ind.min()} to {ind.max()}")
    cdt, rdt = result_dtypes(x=xb)
    nimg, nc = xb.shape[:2]
    y = np.empty((nimg, nc) + out, dtype=cdt)
    if y.size and xb.size:
        ib = ind[None] if unbatched else ind
        pk.unpool(to_kernel(xb, cdt).reshape(nimg, nc, -1),
                  np.ascontiguousarray(ib, dtype=np.int64).reshape(nimg, nc, -1),
                  y.reshape(nimg, nc, -1), numba.get_num_threads())
    elif y.size:
        y[...] = 0
    y = y.astype(rdt, copy=False)
    return y[0] if unbatched else y


def _adaptive_alias(f, d: int):
    def g(x, output_size, *args, **kwargs):
        return f(x, per_axis("output_size", output_size, d, 1) if not isinstance(
            output_size, (tuple, list)) else output_size, *args, **kwargs)

    name = f"{f.__name__}{d}d"
    g.__name__ = g.__qualname__ = name
    g.__doc__ = f"{d}-D :func:`{f.__name__}` (``torch.nn.functional.{name}``)."
    return g


adaptive_max_pool1d, adaptive_max_pool2d, adaptive_max_pool3d = (
    _adaptive_alias(adaptive_max_pool, d) for d in (1, 2, 3))
adaptive_avg_pool1d, adaptive_avg_pool2d, adaptive_avg_pool3d = (
    _adaptive_alias(adaptive_avg_pool, d) for d in (1, 2, 3))
max_unpool1d, max_unpool2d, max_unpool3d = (_alias(max_unpool, d) for d in (1, 2, 3))
