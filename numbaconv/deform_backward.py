"""Gradients of deformable convolution, in any rank.

``deform_conv_backward`` returns the gradients with respect to the input,
the offsets, the weight, the bias and the mask. The kernels are in
:mod:`numbaconv._deform_grad_kernels`: the weight gradient reuses the
forward's interpolating gather and the tile product of the convolution's
weight gradient; the input, offset and mask gradients come from one pass
that scatters the columns' gradient through each sample point's
interpolation stencil.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numba
import numpy as np

from . import _deform_grad_kernels
from ._dtypes import result_dtypes, to_kernel
from ._geometry import Padding
from ._microkernel import MR, lanes
from .convolution import _PLANE_BYTES, ArrayLike
from .convolution_backward import _WGRAD_TILE, bias_gradient, check_grad_output, rank_alias
from .deformable import _NO_MASK, check_deform, deform_geometry

__all__ = ["DeformConvGrads", "deform_conv1d_backward", "deform_conv2d_backward",
           "deform_conv3d_backward", "deform_conv_backward"]


class DeformConvGrads(NamedTuple):
    """Gradients of :func:`numbaconv.deform_conv` with respect to its inputs."""

    input: np.ndarray | None
    offset: np.ndarray | None
    weight: np.ndarray | None
    bias: np.ndarray | None
    mask: np.ndarray | None


def deform_conv_backward(
    grad_output: ArrayLike,
    x: ArrayLike,
    offset: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    mask: ArrayLike | None = None,
    *,
    input_grad: bool = True,
    offset_grad: bool = True,
    weight_grad: bool = True,
    bias_grad: bool = True,
    mask_grad: bool = True,
) -> DeformConvGrads:
    """Gradients of :func:`numbaconv.deform_conv`, in any rank.

    Parameters
    ----------
    grad_output : array_like, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        Gradient of the loss with respect to the output (before any fused
        activation).
    x, offset, weight, bias, stride, padding, dilation, mask
        Exactly the forward's arguments.
    input_grad, offset_grad, weight_grad, bias_grad, mask_grad : bool
        Which gradients to compute (``False`` gives ``None`` and skips the work).

    Returns
    -------
    DeformConvGrads
        ``(input, offset, weight, bias, mask)`` shaped like the arguments
        (``None`` for a ``bias`` or ``mask`` that was ``None``). The offset
        gradient is that of the interpolation: piecewise linear in the
        offsets, so it jumps where a sample point crosses an input sample;
        points outside ``(-1, size)`` get zero gradients.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.arange(5.0)[None]                            # (C=1, W=5), unbatched
    >>> w = np.ones((1, 1, 1))
    >>> off = np.full((1, 5), 0.25)
    >>> g = numbaconv.deform_conv_backward(np.ones((1, 5)), x, off, w)
    >>> g.input                                          # each point splits 3:1
    array([[0.75, 1.  , 1.  , 1.  , 1.  ]])
    >>> g.offset                                         # the slope of x at each point
    array([[ 1.,  1.,  1.,  1., -4.]])
    """
    dc = check_deform(x, offset, weight, bias, stride, padding, dilation, mask)
    xb, ob, w, mb, win, groups = dc.xb, dc.ob, dc.weight, dc.mb, dc.win, dc.groups
    nimg, cin = xb.shape[:2]
    cout, cg = w.shape[:2]
    gb = check_grad_output(grad_output, nimg, cout, win.out_shape, dc.unbatched)
    cdt, rdt = result_dtypes(grad_output=gb, x=xb, offset=ob, weight=w, bias=dc.bias, mask=mb)
    ntap = math.prod(win.kernel)
    m = cout // groups
    x3 = to_kernel(xb, cdt).reshape(nimg, cin, -1)
    o3 = to_kernel(ob, cdt).reshape(nimg, ob.shape[1], -1)
    m3 = _NO_MASK[cdt] if mb is None else to_kernel(mb, cdt).reshape(nimg, mb.shape[1], -1)
    g3 = to_kernel(gb, cdt).reshape(nimg, cout, -1)
    geo = deform_geometry(win, cdt)
    zero, one = cdt.type(0), cdt.type(1)
    workers = numba.get_num_threads()
    vl = lanes(cdt)

    def out(a: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray | None:
        if a is None:
            return None
        a = a.astype(rdt, copy=False).reshape(shape)
        return a[0] if dc.unbatched else a

    gi = goff = gw = gbias = gmask = None
    need_mask = mask_grad and mb is not None
    if (input_grad or offset_grad or need_mask) and nimg:
        kk = ntap * cg
        rows = -(-kk // MR) * MR
        # per group, the tap-major weights transposed: wa[g, t*C_g + c, r] = w[g*m + r, c, t]
        wa = np.zeros((groups, rows, m), cdt)
        wa[:, :kk] = (w.astype(cdt, copy=False).reshape(groups, m, cg, ntap)
                      .transpose(0, 3, 2, 1).reshape(groups, kk, m))
        lin = x3.shape[2]
        xv = np.zeros((nimg, (lin + 1) * cin), cdt)  # channels-last planes, a zero row last
        xv[:, :lin * cin] = x3.transpose(0, 2, 1).reshape(nimg, -1)
        gxv = np.zeros_like(xv)
        go = np.zeros(o3.shape, cdt)
        gm = np.zeros(m3.shape, cdt)
        _deform_grad_kernels.deform_input_grad(
            xv, cin, o3, m3, g3, wa, groups, geo[2], geo[3], geo[4], geo[5], geo[6], 2 * vl, 64,
            gxv, go, gm, zero, one, workers)
        if input_grad:
            gi = out(gxv[:, :lin * cin].reshape(nimg, lin, cin).transpose(0, 2, 1), xb.shape)
        if offset_grad:
            goff = out(go, ob.shape)
        if need_mask:
            gmask = out(gm, mb.shape)
    elif nimg == 0:
        gi = out(np.zeros(xb.shape), xb.shape) if input_grad else None
        goff = out(np.zeros(ob.shape), ob.shape) if offset_grad else None
        gmask = out(np.zeros(mb.shape), mb.shape) if need_mask else None
    if weight_grad:
        kk = ntap * cg
        acc = np.zeros((workers, groups, kk, m), cdt)
        if nimg:
            chunk = max(1, min(nimg, _PLANE_BYTES // (x3.shape[2] * cin * cdt.itemsize)))
            _deform_grad_kernels.deform_weight_grad(
                x3, o3, m3, g3, groups, *geo, vl if kk <= vl else 2 * vl, _WGRAD_TILE, chunk,
                zero, one, acc)
        acc = acc.sum(axis=0).transpose(0, 2, 1).reshape(cout, ntap, cg)  # (C_out, T, C_g)
        gw = np.ascontiguousarray(acc.transpose(0, 2, 1)).astype(rdt).reshape(w.shape)
    if bias_grad and dc.bias is not None:
        gbias = bias_gradient(gb, rdt)
    return DeformConvGrads(gi, goff, gw, gbias, gmask)


deform_conv1d_backward, deform_conv2d_backward, deform_conv3d_backward = (
    rank_alias(deform_conv_backward, d, f"deform_conv{d}d", 3) for d in (1, 2, 3))
