"""Deformable convolution in any number of spatial dimensions.

Semantics of ``torchvision.ops.deform_conv2d`` in 2-D (v1 without a mask,
v2 "modulated" with one), extended to every rank: the kernel computes with
:mod:`numbaconv._deform_kernels`, the core's tile GEMM with an interpolating
gather.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numba
import numpy as np

from . import _deform_kernels
from ._activations import activation_code, finish_activation, kernel_code
from ._dtypes import as_array, result_dtypes, to_kernel
from ._geometry import G_INSTR, Padding, Window, conv_window, kernel_tables
from ._microkernel import gemm_weights
from .convolution import _PLANE_BYTES, _bias, _operands, _tile

ArrayLike = object

__all__ = ["deform_conv", "deform_conv1d", "deform_conv2d", "deform_conv3d"]

_NO_MASK = {np.dtype(np.float32): np.empty((0, 0, 0), np.float32),
            np.dtype(np.float64): np.empty((0, 0, 0), np.float64)}


def _per_position(name: str, a: np.ndarray, unbatched: bool, nimg: int, per_group: int,
                  what: str, out_shape: tuple[int, ...]) -> tuple[np.ndarray, int]:
    """Check ``offset``/``mask`` against the output; ``(batched array, groups)``.

    ``a`` must be ``(N, G * per_group, *out_shape)`` (no ``N`` when unbatched).
    """
    form = (f"({'' if unbatched else 'N, '}offset_groups * {what}, "
            f"{', '.join(map(str, out_shape))})")
    ab = a[None] if unbatched and a.ndim == len(out_shape) + 1 else a
    ok = (ab.ndim == len(out_shape) + 2 and ab.shape[0] == nimg
          and tuple(ab.shape[2:]) == tuple(out_shape)
          and ab.shape[1] > 0 and ab.shape[1] % per_group == 0)
    if not ok:
        raise ValueError(f"{name} must have shape {form} to match x and weight, "
                         f"got {name}.shape={a.shape}")
    return ab, ab.shape[1] // per_group


def deform_conv(
    x: ArrayLike,
    offset: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    mask: ArrayLike | None = None,
    activation: str | None = None,
) -> np.ndarray:
    """Deformable convolution, as ``torchvision.ops.deform_conv2d``, in any rank.

    Every tap of every window samples the input at its regular position plus
    a learned offset, by N-linear interpolation (linear in 1-D, bilinear in
    2-D, trilinear in 3-D); with a ``mask`` the sample is also multiplied by
    the mask value (modulated deformable convolution, "v2"). Zero offsets and
    no mask give :func:`numbaconv.conv`.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        Input; an unbatched input gives an unbatched result (and then
        ``offset`` and ``mask`` have no ``N`` axis either).
    offset : array_like, shape (N, d * offset_groups * T, *out_spatial)
        For each offset group, each tap (``T = prod(kernel)`` of them, in
        row-major order) and each output position, the displacement of the
        sample point along each of the ``d`` spatial axes, in axis order
        (``(dy, dx)`` in 2-D, as torchvision). ``offset_groups`` is inferred
        from the shape and must divide ``C_in``: group ``h`` moves the sample
        points of input channels ``[h * C_in/offset_groups, (h+1) * C_in/offset_groups)``.
        Any value is safe: a point that is not finite or lies outside
        ``(-1, size)`` on some axis contributes zero, and corners outside
        the input count as zero.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        Filters; ``groups = C_in // weight.shape[1]`` is inferred, as
        torchvision does, and must divide ``C_out``.
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or tuple of d ints
        As in :func:`numbaconv.conv`.
    padding : int, tuple of d ints, tuple of d (before, after) pairs, 'same' or 'valid'
        As in :func:`numbaconv.conv`; the padding holds zeros.
    mask : array_like, shape (N, offset_groups * T, *out_spatial), optional
        Multiplies each sample (used as given, so a NaN mask value gives NaN).
    activation : {None, 'relu', 'leaky_relu', 'sigmoid', 'tanh', 'gelu', 'silu', 'elu'}
        Applied after the bias, as in :func:`numbaconv.conv`.

    Returns
    -------
    numpy.ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        ``out_spatial`` as for :func:`numbaconv.conv`. The dtype policy of
        :func:`numbaconv.conv`, over ``x``, ``offset``, ``weight``, ``bias``
        and ``mask`` together (float32 with float64 offsets computes in float64).
        Sample coordinates are computed in that dtype too, as torchvision does,
        so in float32 they are exact only up to ``2**24`` along an axis.

    Raises
    ------
    ValueError
        ``offset`` or ``mask`` of the wrong shape, channels not divisible by
        the inferred groups, and everything :func:`numbaconv.conv` rejects.
    TypeError
        Complex or non-numeric arrays, non-integer parameters.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.arange(5, dtype=np.float32)[None]         # (C_in=1, W=5), unbatched
    >>> w = np.ones((1, 1, 1), np.float32)               # one tap: the sample itself
    >>> numbaconv.deform_conv(x, np.full((1, 5), 0.5, np.float32), w)
    array([[0.5, 1.5, 2.5, 3.5, 2. ]], dtype=float32)
    >>> x = np.random.default_rng(0).random((2, 4, 9, 9, 9))   # 3-D volumes
    >>> off = np.random.default_rng(1).normal(size=(2, 3 * 27, 9, 9, 9))
    >>> numbaconv.deform_conv(x, off, np.ones((8, 4, 3, 3, 3)), padding=1).shape
    (2, 8, 9, 9, 9)
    """
    act = activation_code(activation)
    dc = check_deform(x, offset, weight, bias, stride, padding, dilation, mask)
    out = _run(dc.xb, dc.ob, dc.weight, dc.bias, dc.mb, dc.groups, dc.win, act)
    return out[0] if dc.unbatched else out


class DeformCall(NamedTuple):
    """A validated deformable-convolution call (see :func:`check_deform`)."""

    xb: np.ndarray  # x as (N, C_in, *spatial)
    ob: np.ndarray  # offset as (N, d * G_o * T, *out_spatial)
    weight: np.ndarray
    bias: np.ndarray | None
    mb: np.ndarray | None  # mask as (N, G_o * T, *out_spatial)
    groups: int
    win: Window
    unbatched: bool


def check_deform(x: ArrayLike, offset: ArrayLike, weight: ArrayLike, bias: ArrayLike | None,
                 stride: object, padding: Padding, dilation: object,
                 mask: ArrayLike | None) -> DeformCall:
    """Validate the arguments of :func:`deform_conv` (shared with its backward)."""
    x, weight, xb, unbatched = _operands(x, weight, "(C_out, C_in // groups, *kernel)")
    offset = as_array("offset", offset)
    d = weight.ndim - 2
    nimg, cin = xb.shape[:2]
    cout, cw = weight.shape[:2]
    if cout == 0 or cw == 0 or any(k == 0 for k in weight.shape[2:]):
        raise ValueError(f"weight must have non-empty axes, got weight.shape={weight.shape}")
    if cin % cw:
        raise ValueError(
            f"C_in ({cin}) must be divisible by weight.shape[1] ({cw}): the groups are "
            f"inferred as C_in // weight.shape[1]"
        )
    groups = cin // cw
    if cout % groups:
        raise ValueError(
            f"C_out ({cout}) must be divisible by the groups inferred from the weight "
            f"(C_in // weight.shape[1] = {groups})"
        )
    b = _bias(bias, cout)
    win = conv_window(xb.shape[2:], weight.shape[2:], stride, padding, dilation)
    ntap = math.prod(win.kernel)
    ob, og = _per_position("offset", offset, unbatched, nimg, d * ntap, f"{d} * {ntap}",
                           win.out_shape)
    if cin % og:
        raise ValueError(
            f"C_in ({cin}) must be divisible by the offset groups inferred from the offset "
            f"(offset.shape[1] // ({d} * {ntap}) = {og})"
        )
    mb = None
    if mask is not None:
        mask = as_array("mask", mask)
        mb, mg = _per_position("mask", mask, unbatched, nimg, ntap, f"{ntap}", win.out_shape)
        if mg != og:
            raise ValueError(
                f"mask.shape[1] must be offset_groups * {ntap} = {og * ntap} (offset_groups "
                f"= {og} from the offset), got mask.shape={mask.shape}"
            )
    return DeformCall(xb, ob, weight, b, mb, groups, win, unbatched)


def _run(xb: np.ndarray, ob: np.ndarray, weight: np.ndarray, bias: np.ndarray | None,
         mb: np.ndarray | None, groups: int, win: Window, act: int) -> np.ndarray:
    """Convert the validated arrays to the kernel's form and run it."""
    cdt, rdt = result_dtypes(x=xb, offset=ob, weight=weight, bias=bias, mask=mb)
    nimg, cin = xb.shape[:2]
    cout, cw = weight.shape[:2]
    out = np.empty((nimg, cout) + win.out_shape, dtype=cdt)
    if nimg == 0:
        return out.astype(rdt, copy=False)
    x3 = to_kernel(xb, cdt).reshape(nimg, cin, -1)
    o3 = to_kernel(ob, cdt).reshape(nimg, ob.shape[1], -1)
    m3 = _NO_MASK[cdt] if mb is None else to_kernel(mb, cdt).reshape(nimg, mb.shape[1], -1)
    ntap = math.prod(win.kernel)
    b = np.zeros(cout, cdt) if bias is None else to_kernel(bias, cdt)
    wk, wp, bp = gemm_weights(  # tap-major (C_out, T, C_in/groups)
        weight.astype(cdt, copy=False).reshape(cout, cw, ntap).transpose(0, 2, 1), b, groups)
    geo = deform_geometry(win, cdt)
    chunk = max(1, min(nimg, _PLANE_BYTES // (x3.shape[2] * cin * cdt.itemsize)))
    tile = _tile(wk.shape[1], cdt.itemsize)
    _deform_kernels.window_deform(
        x3, o3, m3, wk, wp, bp, b, out.reshape(nimg, cout, -1), groups, *geo,
        kernel_code(act), tile, chunk, cdt.type(0), cdt.type(1), numba.get_num_threads())
    finish_activation(out, act)
    return out.astype(rdt, copy=False)


@functools.lru_cache(maxsize=64)
def deform_geometry(win: Window, cdt: np.dtype) -> tuple[np.ndarray, ...]:
    """The deformable kernels' window arguments ``(geom, maps, outlen, size, instr, ostart,
    tapk)``: the identity window's tables (channels-last planes), the output and input
    sizes, the flat input strides, per axis the window start of each output, and each
    tap's offset in the window.

    Cached, read-only: building them took 26 us of a 1.5 ms deform_conv2d (NOTES 77).
    """
    geo = _geometry_arrays(win, cdt)
    for a in geo:
        a.flags.writeable = False
    return geo


def _geometry_arrays(win: Window, cdt: np.dtype) -> tuple[np.ndarray, ...]:
    d = len(win.kernel)
    tab = kernel_tables(conv_window(win.in_shape, (1,) * d, 1, 0, 1))
    ostart = np.zeros((d, max(win.out_shape)), dtype=cdt)
    for a in range(d):
        ostart[a, :win.out_shape[a]] = (np.arange(win.out_shape[a]) * win.stride[a]
                                        - win.pad[a][0])
    taps = np.indices(win.kernel).reshape(d, -1).T * np.asarray(win.dilation)
    return (tab.geom, tab.maps, np.asarray(win.out_shape, dtype=np.int64),
            np.asarray(win.in_shape, dtype=np.int64), tab.geom[G_INSTR].copy(), ostart,
            np.ascontiguousarray(taps, dtype=cdt))


def _deform_nd(d: int):
    def f(x, offset, weight, bias=None, stride=1, padding=0, dilation=1, mask=None,
          activation=None):
        w = as_array("weight", weight)
        if w.ndim != d + 2:
            raise ValueError(
                f"deform_conv{d}d takes weight of shape (C_out, C_in // groups{', k' * d}) "
                f"({d + 2} axes), got weight.shape={w.shape}"
            )
        return deform_conv(x, offset, w, bias, stride, padding, dilation, mask, activation)

    f.__name__ = f.__qualname__ = f"deform_conv{d}d"
    f.__doc__ = f"""{d}-D deformable convolution: :func:`deform_conv` with {d} spatial axes.

    See :func:`deform_conv` for the parameters{
        '; the same as ``torchvision.ops.deform_conv2d``' if d == 2 else ''}.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((1, 2{', 5' * d}), np.float32)
    >>> off = np.zeros((1, {d} * {3 ** d}{', 3' * d}), np.float32)
    >>> numbaconv.deform_conv{d}d(x, off, np.ones((3, 2{', 3' * d}), np.float32)).shape
    (1, 3{', 3' * d})
    """
    return f


deform_conv1d = _deform_nd(1)
deform_conv2d = _deform_nd(2)
deform_conv3d = _deform_nd(3)
