"""Gradients of the convolution family: conv, depthwise, pointwise, separable, transposed.

Each ``*_backward`` takes ``grad_output`` -- the gradient of a loss with respect
to the forward's output, before any fused activation -- followed by exactly
the forward's arguments, and returns a named tuple of gradients, ``None``
for an input that was ``None`` or whose gradient was not asked for.

All of it runs on the forward core:

* the **input gradient** of a convolution is the transposed convolution of
  ``grad_output`` (its adjoint), onto the padded input; a padding mode other
  than zeros then folds the gradient of each padding sample back onto the
  input sample it copies (the same per-axis maps that built the padding);
* the **weight gradient** is the correlation of the input with
  ``grad_output``: the core's gather writes the windows of a chunk of output
  positions as the rows of a column matrix, and one BLAS product per chunk
  (``grad_output`` rows times columns, summed over images and positions)
  adds it up. No job ever adds into memory that another job writes. With
  fewer than four output channels per group (depthwise) a direct kernel
  takes dot products of shifted planes instead;
* the **transposed convolution**'s input gradient is a convolution and its
  weight gradient that of the convolution it is the adjoint of.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from . import _grad_kernels, _winograd, _winograd_grad
from ._dtypes import as_array, result_dtypes, to_kernel
from ._geometry import (
    G_VLEN,
    Padding,
    Window,
    axis_map,
    conv_window,
    identity_run,
    kernel_tables,
)
from ._microkernel import lanes
from .convolution import (
    _MIN_GEMM_ROWS,
    _PLANE_BYTES,
    ArrayLike,
    _depthwise_weight,
    check_conv,
    check_separable,
    conv,
    pointwise_as_conv,
)
from .transposed import check_transpose, conv_transpose, transposed_out_shape

__all__ = [
    "ConvGrads",
    "SeparableConvGrads",
    "conv1d_backward",
    "conv2d_backward",
    "conv3d_backward",
    "conv_backward",
    "conv_transpose1d_backward",
    "conv_transpose2d_backward",
    "conv_transpose3d_backward",
    "conv_transpose_backward",
    "depthwise_conv_backward",
    "pointwise_conv_backward",
    "separable_conv_backward",
]

#: output positions per job of the weight gradient (the micro-kernel's reduction length)
_WGRAD_TILE = 512


class ConvGrads(NamedTuple):
    """Gradients of a convolution (or transposed convolution) with respect to its inputs."""

    input: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None


class SeparableConvGrads(NamedTuple):
    """Gradients of :func:`numbaconv.separable_conv` with respect to its inputs."""

    input: np.ndarray | None
    depthwise_weight: np.ndarray | None
    pointwise_weight: np.ndarray | None
    bias: np.ndarray | None


def check_grad_output(grad_output: ArrayLike, nimg: int, cout: int, out_shape: tuple[int, ...],
                      unbatched: bool) -> np.ndarray:
    """``grad_output`` as ``(N, C_out, *out_shape)``, checked against the forward's output."""
    g = as_array("grad_output", grad_output)
    want = ((cout,) if unbatched else (nimg, cout)) + tuple(out_shape)
    if g.shape != want:
        raise ValueError(
            f"grad_output must have the forward output's shape {want}, got {g.shape}"
        )
    return g[None] if unbatched else g


def fold_padding(gv: np.ndarray, win: Window, padding_mode: str) -> np.ndarray:
    """Fold a gradient over the padded input back onto the input, axis by axis.

    ``gv`` is ``(N, C, *padded)``; every padding sample that copies an input
    sample (through ``padding_mode``) adds its gradient to that sample's.
    """
    out = gv
    for a, (n, (b, e)) in enumerate(zip(win.in_shape, win.pad)):
        m = axis_map(n, b, e, padding_mode)
        id0, idn, idsrc = identity_run(m)
        ax = a + 2
        src = np.moveaxis(out, ax, 0)
        folded = np.zeros((n,) + src.shape[1:], dtype=out.dtype)
        folded[idsrc:idsrc + idn] = src[id0:id0 + idn]
        for v in np.flatnonzero(m >= 0):
            if not id0 <= v < id0 + idn:
                folded[m[v]] += src[v]
        out = np.moveaxis(folded, 0, ax)
    return np.ascontiguousarray(out)


def input_gradient(gb: np.ndarray, weight: np.ndarray, win: Window, groups: int,
                   padding_mode: str) -> np.ndarray:
    """The gradient of ``conv`` with respect to its (batched) input."""
    if padding_mode == "zeros":
        return conv_transpose(gb, weight, None, win.stride, win.pad, groups=groups,
                              dilation=win.dilation, output_size=win.in_shape)
    span = tuple(n + b + e for n, (b, e) in zip(win.in_shape, win.pad))
    gv = conv_transpose(gb, weight, None, win.stride, 0, groups=groups, dilation=win.dilation,
                        output_size=span)
    return fold_padding(gv, win, padding_mode)


def weight_gradient(xb: np.ndarray, gb: np.ndarray, win: Window, groups: int,
                    padding_mode: str, cdt: np.dtype) -> np.ndarray:
    """The gradient of ``conv`` with respect to its weight, ``(C_out, C_in // groups, *kernel)``.

    ``xb`` is ``(N, C_in, *in_shape)`` and ``gb`` ``(N, C_out, *out_shape)``.
    """
    nimg, cin = xb.shape[:2]
    cout = gb.shape[1]
    cg, m = cin // groups, cout // groups
    ntap = math.prod(win.kernel)
    kk = ntap * cg
    wshape = (cout, cg) + tuple(win.kernel)
    if nimg == 0:
        return np.zeros(wshape, cdt)
    tab = kernel_tables(win, padding_mode)
    x3 = to_kernel(xb, cdt).reshape(nimg, cin, -1)
    g3 = to_kernel(gb, cdt).reshape(nimg, cout, -1)
    zero = cdt.type(0)
    workers = numba.get_num_threads()
    if _winograd.usable(tab, groups, cin, cout):
        return _winograd_grad.weight_gradient(x3, g3, tab, workers)
    if m < _MIN_GEMM_ROWS:
        dw = np.empty((cout, cg * ntap), cdt)
        _grad_kernels.weight_grad_direct(x3, g3, groups, tab.geom, tab.maps, tab.voff, dw, zero,
                                         workers)
        return dw.reshape(wshape)
    vl = lanes(cdt)
    nr = vl if kk <= vl else 2 * vl
    acc = np.zeros((workers, groups, kk, m), cdt)
    plane = int(np.prod(tab.geom[G_VLEN])) * cin * cdt.itemsize
    chunk = max(1, min(nimg, _PLANE_BYTES // plane))
    _grad_kernels.weight_grad_gemm(x3, g3, groups, tab.geom, tab.maps, tab.voff, nr,
                                   _WGRAD_TILE, chunk, zero, acc)
    acc = acc.sum(axis=0).transpose(0, 2, 1)  # (groups, m, T * C_g)
    # the columns are tap-major: (C_out, T, C_g) -> (C_out, C_g, *kernel)
    return np.ascontiguousarray(acc.reshape(cout, ntap, cg).transpose(0, 2, 1)).reshape(wshape)


def bias_gradient(gb: np.ndarray, rdt: np.dtype) -> np.ndarray:
    """The bias gradient: ``grad_output`` summed over images and positions (in float64)."""
    axes = (0,) + tuple(range(2, gb.ndim))
    return gb.sum(axis=axes, dtype=np.float64).astype(rdt)


def conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    *,
    input_grad: bool = True,
    weight_grad: bool = True,
    bias_grad: bool = True,
) -> ConvGrads:
    """Gradients of :func:`numbaconv.conv` with respect to ``x``, ``weight`` and ``bias``.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Gradient of the loss with respect to the convolution's output (before
        any fused activation: apply the activation's backward first).
    x, weight, bias, stride, padding, dilation, groups, padding_mode
        Exactly the arguments of the forward :func:`numbaconv.conv`.
    input_grad, weight_grad, bias_grad : bool
        Compute that gradient (``False`` skips the work and gives ``None``,
        e.g. the input gradient of a first layer).

    Returns
    -------
    ConvGrads
        ``(input, weight, bias)``: arrays shaped like ``x``, ``weight`` and
        ``bias`` (``bias`` is ``None`` when the forward had none), in the
        forward's result dtype over ``grad_output``, ``x``, ``weight`` and
        ``bias``. With ``padding_mode`` other than ``'zeros'``, the gradient
        of every padding sample is added to the input sample it copies.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.arange(5.0)[None, None]                    # (N=1, C=1, W=5)
    >>> w = np.array([[[1.0, 2.0]]])
    >>> g = numbaconv.conv_backward(np.ones((1, 1, 4)), x, w)
    >>> g.input
    array([[[1., 3., 3., 3., 2.]]])
    >>> g.weight                                          # sum of x[0:4], x[1:5]
    array([[[ 6., 10.]]])
    >>> g.bias is None
    True
    """
    cv = check_conv(x, weight, bias, stride, padding, dilation, groups, padding_mode)
    xb, w, win = cv.xb, cv.weight, cv.win
    gb = check_grad_output(grad_output, xb.shape[0], w.shape[0], win.out_shape, cv.unbatched)
    cdt, rdt = result_dtypes(grad_output=gb, x=xb, weight=w, bias=cv.bias)
    gi = gw = gbias = None
    if input_grad:
        gi = input_gradient(to_kernel(gb, cdt), to_kernel(w, cdt), win, cv.groups,
                            padding_mode).astype(rdt, copy=False)
        gi = gi[0] if cv.unbatched else gi
    if weight_grad:
        gw = weight_gradient(xb, gb, win, cv.groups, padding_mode, cdt).astype(rdt, copy=False)
    if bias_grad and cv.bias is not None:
        gbias = bias_gradient(gb, rdt)
    return ConvGrads(gi, gw, gbias)


def depthwise_conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    padding_mode: str = "zeros",
    *,
    input_grad: bool = True,
    weight_grad: bool = True,
    bias_grad: bool = True,
) -> ConvGrads:
    """Gradients of :func:`numbaconv.depthwise_conv`; see :func:`conv_backward`.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((1, 2, 4, 4))
    >>> g = numbaconv.depthwise_conv_backward(np.ones((1, 2, 2, 2)), x, np.ones((2, 1, 3, 3)))
    >>> g.weight.shape, float(g.weight[0, 0, 0, 0])
    ((2, 1, 3, 3), 4.0)
    """
    x = as_array("x", x)
    weight, xb, _ = _depthwise_weight(x, weight, "weight")
    return conv_backward(grad_output, x, weight, bias, stride, padding, dilation, xb.shape[1],
                         padding_mode, input_grad=input_grad, weight_grad=weight_grad,
                         bias_grad=bias_grad)


def pointwise_conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    groups: int = 1,
    *,
    input_grad: bool = True,
    weight_grad: bool = True,
    bias_grad: bool = True,
) -> ConvGrads:
    """Gradients of :func:`numbaconv.pointwise_conv`; see :func:`conv_backward`.

    The weight gradient has the shape of the ``weight`` given.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((2, 3, 4, 5), np.float32)
    >>> g = numbaconv.pointwise_conv_backward(np.ones((2, 6, 4, 5), np.float32), x,
    ...                                       np.ones((6, 3), np.float32))
    >>> g.input.shape, g.weight.shape, float(g.weight[0, 0])
    ((2, 3, 4, 5), (6, 3), 40.0)
    """
    x, w = pointwise_as_conv(x, weight)
    r = conv_backward(grad_output, x, w, bias, groups=groups, input_grad=input_grad,
                      weight_grad=weight_grad, bias_grad=bias_grad)
    shape = np.shape(weight)
    return r._replace(weight=None if r.weight is None else r.weight.reshape(shape))


def separable_conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    depthwise_weight: ArrayLike,
    pointwise_weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    padding_mode: str = "zeros",
    *,
    input_grad: bool = True,
    depthwise_weight_grad: bool = True,
    pointwise_weight_grad: bool = True,
    bias_grad: bool = True,
) -> SeparableConvGrads:
    """Gradients of :func:`numbaconv.separable_conv`.

    The depthwise result is recomputed (the forward never stores it), then
    the pointwise and depthwise backward passes run in turn.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
    x, depthwise_weight, pointwise_weight, bias, stride, padding, dilation, padding_mode
        The forward's arguments.
    input_grad, depthwise_weight_grad, pointwise_weight_grad, bias_grad : bool
        Which gradients to compute.

    Returns
    -------
    SeparableConvGrads
        ``(input, depthwise_weight, pointwise_weight, bias)``, each shaped like
        the argument (``pointwise_weight`` as given, 2-D or with trailing ones).

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((1, 2, 5, 5))
    >>> g = numbaconv.separable_conv_backward(np.ones((1, 4, 5, 5)), x, np.ones((2, 1, 3, 3)),
    ...                                       np.ones((4, 2)), padding="same")
    >>> g.input.shape, g.depthwise_weight.shape, g.pointwise_weight.shape, g.bias
    ((1, 2, 5, 5), (2, 1, 3, 3), (4, 2), None)
    """
    sc = check_separable(x, depthwise_weight, pointwise_weight, bias, stride, padding, dilation,
                         padding_mode)
    xb, dw, pw, win = sc.xb, sc.depthwise_weight, sc.pointwise_weight, sc.win
    nimg, c = xb.shape[:2]
    cout, cdw = pw.shape
    gb = check_grad_output(grad_output, nimg, cout, win.out_shape, sc.unbatched)
    cdt, rdt = result_dtypes(grad_output=gb, x=xb, depthwise_weight=dw, pointwise_weight=pw,
                             bias=sc.bias)
    g3 = to_kernel(gb, cdt).reshape(nimg, cout, -1)
    pw_c = pw.astype(cdt, copy=False)
    gpw = None
    if pointwise_weight_grad:
        h = conv(xb, dw.astype(cdt, copy=False), None, win.stride, win.pad, win.dilation, c,
                 padding_mode)
        gpw = np.tensordot(g3, h.reshape(nimg, cdw, -1), axes=([0, 2], [0, 2]))
        gpw = gpw.astype(rdt, copy=False).reshape(np.shape(pointwise_weight))
    gi = gdw = None
    if input_grad or depthwise_weight_grad:
        gh = np.matmul(pw_c.T, g3).reshape((nimg, cdw) + win.out_shape)
        r = conv_backward(gh, xb, dw.astype(cdt, copy=False), None, win.stride, win.pad,
                          win.dilation, c, padding_mode, input_grad=input_grad,
                          weight_grad=depthwise_weight_grad, bias_grad=False)
        gi = None if r.input is None else r.input.astype(rdt, copy=False)
        gi = gi[0] if gi is not None and sc.unbatched else gi
        gdw = None if r.weight is None else r.weight.astype(rdt, copy=False)
    gbias = bias_gradient(gb, rdt) if bias_grad and sc.bias is not None else None
    return SeparableConvGrads(gi, gdw, gpw, gbias)


def conv_transpose_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    output_padding: int | tuple[int, ...] = 0,
    groups: int = 1,
    dilation: int | tuple[int, ...] = 1,
    output_size: tuple[int, ...] | None = None,
    *,
    input_grad: bool = True,
    weight_grad: bool = True,
    bias_grad: bool = True,
) -> ConvGrads:
    """Gradients of :func:`numbaconv.conv_transpose`.

    The input gradient is the convolution of ``grad_output`` with the same
    weight, stride, padding, dilation and groups (a transposed convolution's
    adjoint), and the weight gradient that of the convolution of
    ``grad_output`` against ``x``.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
    x, weight, bias, stride, padding, output_padding, groups, dilation, output_size
        The forward's arguments.
    input_grad, weight_grad, bias_grad : bool
        Which gradients to compute.

    Returns
    -------
    ConvGrads
        ``(input, weight, bias)`` shaped like ``x``, ``weight`` (``(C_in,
        C_out // groups, *kernel)``) and ``bias``.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.array([[[1.0, 2.0, 3.0]]])
    >>> g = numbaconv.conv_transpose_backward(np.ones((1, 1, 6)), x, np.ones((1, 1, 2)),
    ...                                       stride=2)
    >>> g.input, g.weight
    (array([[[2., 2., 2.]]]), array([[[6., 6.]]]))
    """
    tc = check_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                         output_size)
    xb, w = tc.xb, tc.weight
    kernel = w.shape[2:]
    out_shape = transposed_out_shape(xb.shape[2:], kernel, tc.stride, tc.dilation, tc.pads,
                                     tc.output_padding)
    gb = check_grad_output(grad_output, xb.shape[0], w.shape[1] * tc.groups, out_shape,
                           tc.unbatched)
    cdt, rdt = result_dtypes(grad_output=gb, x=xb, weight=w, bias=tc.bias)
    # the convolution that this transposed convolution is the adjoint of: grad_output -> x
    win = conv_window(out_shape, kernel, tc.stride, tc.pads, tc.dilation)
    crop = (slice(None), slice(None)) + tuple(slice(0, n) for n in xb.shape[2:])
    gi = gw = gbias = None
    if input_grad:
        gi = conv(to_kernel(gb, cdt), to_kernel(w, cdt), None, tc.stride, tc.pads, tc.dilation,
                  tc.groups)[crop].astype(rdt)
        gi = gi[0] if tc.unbatched else gi
    if weight_grad:
        xg = xb
        if win.out_shape != xb.shape[2:]:  # output_padding >= stride: x is the top-left part
            xg = np.zeros(xb.shape[:2] + win.out_shape, dtype=cdt)
            xg[crop] = xb
        gw = weight_gradient(gb, xg, win, tc.groups, "zeros", cdt).astype(rdt, copy=False)
    if bias_grad and tc.bias is not None:
        gbias = bias_gradient(gb, rdt)
    return ConvGrads(gi, gw, gbias)


def rank_alias(f, d: int, name: str, wpos: int = 2):
    """``f`` checking that its weight (positional ``wpos`` or ``weight=``) has ``d`` spatial
    axes: the backward of the rank-specific forward ``name``."""
    def g(*args, **kwargs):
        w = args[wpos] if len(args) > wpos else kwargs.get("weight")
        if np.ndim(w) != d + 2:
            raise ValueError(f"{name}_backward takes a weight with {d + 2} axes "
                             f"({d} spatial), got weight.shape={np.shape(w)}")
        return f(*args, **kwargs)

    g.__name__ = g.__qualname__ = f"{name}_backward"
    g.__doc__ = (f"Gradients of :func:`numbaconv.{name}`: :func:`{f.__name__}` with {d} "
                 "spatial axes.")
    return g


conv1d_backward, conv2d_backward, conv3d_backward = (
    rank_alias(conv_backward, d, f"conv{d}d") for d in (1, 2, 3))
conv_transpose1d_backward, conv_transpose2d_backward, conv_transpose3d_backward = (
    rank_alias(conv_transpose_backward, d, f"conv_transpose{d}d") for d in (1, 2, 3))
