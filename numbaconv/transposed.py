"""Transposed convolution: the adjoint of :func:`numbaconv.conv`, on the same core.

A transposed convolution is a stride-1 convolution, with the kernel flipped and
its in/out channels swapped, over the input dilated by the stride (``stride -
1`` zeros between samples) and padded by ``dilation * (kernel - 1) -
padding`` (the gather form of ``lhs_dilation`` in
``jax.lax.conv_general_dilated``).

Most of that dilated input is zeros, so it is computed by *phases*: the outputs
``o = q * stride + r`` of one phase ``r`` (per axis) meet only the taps that
land on real samples, and those form a smaller kernel with its own dilation
over the undilated input. Each phase is one ordinary window on the core (its
virtual axis a lookup table like any padding), written into its strided slice
of the output: ``stride ** d`` phases, together doing no work on zeros.

With a stride above 1 a faster path takes over (:mod:`numbaconv._col2im`: one
matrix product per image and a gather of each output's terms); the phases
serve stride 1, where they are one plain convolution, and the calls whose
intermediate would be too large.
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass
from typing import NamedTuple

import numba
import numpy as np

from . import _col2im
from ._activations import activation_code, finish_activation, kernel_code
from ._core import place_planes
from ._dtypes import as_array, result_dtypes, to_kernel
from ._geometry import (
    IntOrTuple,
    Padding,
    Tables,
    normalise_padding,
    per_axis,
    spatial_sizes,
    tables_from_maps,
)
from .convolution import ArrayLike, _bias, _groups, _operands, run_window

__all__ = ["conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d"]


def _output_padding(
    output_padding: IntOrTuple, output_size: object, in_shape, kernel, stride, dilation, pads
) -> tuple[int, ...]:
    d = len(kernel)
    if output_size is None:
        op = per_axis("output_padding", output_padding, d, 0)
        for a in range(d):
            if op[a] >= max(stride[a], dilation[a]):
                raise ValueError(
                    f"output_padding must be smaller than either stride or dilation along "
                    f"each axis, got output_padding={output_padding}, stride={stride}, "
                    f"dilation={dilation}"
                )
        return op
    size = spatial_sizes("output_size", output_size, d)
    op = []
    for a in range(d):
        lo = (in_shape[a] - 1) * stride[a] - sum(pads[a]) + dilation[a] * (kernel[a] - 1) + 1
        hi = lo + stride[a] - 1
        if not lo <= size[a] <= hi:
            raise ValueError(
                f"output_size {size} cannot be reached: spatial axis {a} can have "
                f"{lo} to {hi} samples with this input, stride, padding and kernel"
            )
        op.append(size[a] - lo)
    return tuple(op)


def _same_transposed(n: int, k: int, s: int, dl: int) -> tuple[tuple[int, int], int]:
    """Padding and output_padding giving ``n * s`` outputs (the adjoint of conv 'same')."""
    total = dl * (k - 1) + 1 - s
    if total >= 0:
        return (total // 2, total - total // 2), 0
    return (0, 0), -total


@dataclass(frozen=True)
class Phase:
    """One output phase: where it writes, which taps it has, and its window's tables."""

    pos: np.ndarray  # flat output index of each of the phase's outputs
    taps: tuple[tuple[int, ...], ...]
    tables: Tables
    out_shape: tuple[int, ...]


def _axis_phases(n, k, s, dl, pb, out):
    """Per phase ``r`` of one axis: (taps, virtual-axis map, sub-dilation, outputs)."""
    lead = dl * (k - 1) - pb  # dilated-input position of input sample 0, in virtual coords
    phases = []
    for r in range(s):
        nq = len(range(r, out, s))
        taps = [t for t in range(k) if (r + t * dl - lead) % s == 0]
        if not taps:  # no tap of this phase meets a real sample: one tap on zeros
            phases.append(((), np.full(nq, -1, np.int64), 1, nq))
            continue
        first = (r + taps[0] * dl - lead) // s  # input index read by the first tap at q = 0
        step = (taps[1] - taps[0]) * dl // s if len(taps) > 1 else 1
        v = np.arange(nq + step * (len(taps) - 1), dtype=np.int64) + first
        phases.append((tuple(taps), np.where((v >= 0) & (v < n), v, -1), step, nq))
    return phases


def transposed_out_shape(in_shape, kernel, stride, dilation, pads, op) -> tuple[int, ...]:
    """Spatial output shape of a transposed convolution (``ValueError`` when empty)."""
    out_shape = []
    for n, k, s, dl, (pb, pa), o in zip(in_shape, kernel, stride, dilation, pads, op):
        out = (n - 1) * s - pb - pa + dl * (k - 1) + o + 1
        if out < 1:
            raise ValueError(
                f"the output would be empty: input size {n}, stride {s}, padding {(pb, pa)}, "
                f"dilation {dl} and kernel size {k} give {out} samples"
            )
        out_shape.append(out)
    return tuple(out_shape)


@functools.lru_cache(maxsize=64)
def transposed_phases(in_shape, kernel, stride, dilation, pads, op):
    """The output shape and the non-empty phases of a transposed convolution."""
    out_shape = transposed_out_shape(in_shape, kernel, stride, dilation, pads, op)
    per_axis_phases = [_axis_phases(n, k, s, dl, pb, out) for n, k, s, dl, (pb, _), out in
                       zip(in_shape, kernel, stride, dilation, pads, out_shape)]
    phases = []
    for combo in itertools.product(*(range(s) for s in stride)):
        parts = [per_axis_phases[a][r] for a, r in enumerate(combo)]
        shape = tuple(p[3] for p in parts)
        if 0 in shape:
            continue
        taps = tuple(p[0] for p in parts)
        if all(taps):
            tab = tables_from_maps(in_shape, tuple(len(t) for t in taps), (1,) * len(kernel),
                                   tuple(p[2] for p in parts), shape, [p[1] for p in parts])
        else:  # no tap meets a sample along some axis: one tap over zeros, on every axis
            ones = (1,) * len(kernel)
            tab = tables_from_maps(in_shape, ones, ones, ones, shape,
                                   [np.full(q, -1, np.int64) for q in shape])
        grid = np.zeros(out_shape, dtype=bool)
        grid[tuple(slice(r, None, s) for r, s in zip(combo, stride))] = True
        pos = np.flatnonzero(grid)
        pos.flags.writeable = False
        phases.append(Phase(pos, taps, tab, shape))
    return tuple(out_shape), tuple(phases)


def conv_transpose(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: IntOrTuple = 1,
    padding: Padding = 0,
    output_padding: IntOrTuple = 0,
    groups: int = 1,
    dilation: IntOrTuple = 1,
    activation: str | None = None,
    output_size: tuple[int, ...] | None = None,
) -> np.ndarray:
    """N-D transposed convolution, as ``torch.nn.functional.conv_transpose1d/2d/3d``.

    The exact adjoint of :func:`numbaconv.conv` with the same ``stride``,
    ``padding``, ``dilation`` and ``groups``: ``<conv(x, w), y> == <x,
    conv_transpose(y, w)>``.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
    weight : array_like, shape (C_in, C_out // groups, *kernel)
    bias : array_like, shape (C_out,), optional
    stride, dilation : int or tuple of d ints
    padding : int, tuple of d ints, tuple of d (before, after) pairs, 'valid' or 'same'
        Removed from each side of the full output. ``'same'`` gives
        ``input * stride`` samples per axis (TensorFlow's SAME for transposed
        convolution, the adjoint of ``conv(..., padding='same')``).
    output_padding : int or tuple of d ints
        Extra samples at the end of each axis, each smaller than
        ``max(stride, dilation)``.
    groups : int
    activation : str or None
        As in :func:`numbaconv.conv`.
    output_size : tuple of d ints (or the full ``(N, C, *spatial)``), optional
        Picks ``output_padding``, as ``torch.nn.ConvTranspose*d`` does.

    Returns
    -------
    numpy.ndarray, shape (N, C_out, *out_spatial)
        ``out = (in - 1)*stride - pad_before - pad_after + dilation*(kernel - 1)
        + output_padding + 1`` per axis; dtypes as in :func:`numbaconv.conv`.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.array([[[1.0, 2.0, 3.0]]])                    # (N=1, C_in=1, W=3)
    >>> numbaconv.conv_transpose(x, np.ones((1, 1, 2)), stride=2)
    array([[[1., 1., 2., 2., 3., 3.]]])
    >>> y = np.ones((2, 16, 8, 8), np.float32)
    >>> numbaconv.conv_transpose(y, np.ones((16, 4, 4, 4), np.float32), stride=2,
    ...                          padding=1).shape
    (2, 4, 16, 16)
    """
    tc = check_transpose(x, weight, bias, stride, padding, output_padding, groups, dilation,
                         output_size)
    xb, weight, b, g = tc.xb, tc.weight, tc.bias, tc.groups
    stride_t, dil_t, pads, op = tc.stride, tc.dilation, tc.pads, tc.output_padding
    d = weight.ndim - 2
    cin, mo, kernel, in_shape = xb.shape[1], weight.shape[1], weight.shape[2:], xb.shape[2:]
    cout = mo * g
    act = activation_code(activation)
    out_shape = transposed_out_shape(tuple(in_shape), tuple(kernel), stride_t, dil_t, pads, op)
    cdt, rdt = result_dtypes(x=xb, weight=weight, bias=b)
    if xb.shape[0] and _col2im.usable(stride_t, tuple(kernel), tuple(in_shape), cdt.itemsize):
        out = np.empty((xb.shape[0], cout) + out_shape, dtype=cdt)
        _col2im.conv_transpose_gemm(
            to_kernel(xb, cdt), weight.astype(cdt, copy=False),
            np.zeros(cout, cdt) if b is None else to_kernel(b, cdt), g, stride_t, dil_t, pads,
            out, kernel_code(act), numba.get_num_threads())
        finish_activation(out, act)
        out = out.astype(rdt, copy=False)
        return out[0] if tc.unbatched else out
    _, phases = transposed_phases(tuple(in_shape), tuple(kernel), stride_t, dil_t, pads, op)
    # the phases' parts in the compute dtype (place_planes has no float16), the result
    # rounded once at the end
    xb, weight = xb.astype(cdt, copy=False), weight.astype(cdt, copy=False)
    b = None if b is None else b.astype(cdt, copy=False)
    # the equivalent convolution's weight, spatially flipped and tap-major:
    # (C_out, *kernel, C_in // groups), built once for all phases
    ci = cin // g
    axes = (0, 2) + tuple(range(3, 3 + d)) + (1,)
    w_eq = weight.reshape((g, ci, mo) + kernel).transpose(axes).reshape((cout,) + kernel + (ci,))
    w_eq = w_eq[(slice(None),) + (slice(None, None, -1),) * d]
    out = None
    for ph in phases:
        if all(ph.taps):  # a phase's taps are evenly spaced: a strided view, copied once
            w_sub = w_eq[(slice(None),) + tuple(
                slice(t[0], t[-1] + 1, t[1] - t[0] if len(t) > 1 else 1) for t in ph.taps)]
        else:  # a phase that meets no sample: bias and activation only
            w_sub = np.zeros((cout,) + (1,) * d + (ci,), dtype=w_eq.dtype)
        part = run_window(xb, w_sub, b, g, ph.tables, ph.out_shape, act, tap_major=True)
        if out is None:
            out = np.empty(part.shape[:2] + out_shape, dtype=part.dtype)
        if part.size:
            place_planes(part.reshape(part.shape[0], cout, -1),
                         out.reshape(out.shape[0], cout, -1), ph.pos, numba.get_num_threads())
    out = out.astype(rdt, copy=False)
    return out[0] if tc.unbatched else out


class TransposeCall(NamedTuple):
    """A validated transposed-convolution call (see :func:`check_transpose`)."""

    xb: np.ndarray  # x as (N, C_in, *spatial)
    weight: np.ndarray
    bias: np.ndarray | None
    groups: int
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pads: tuple[tuple[int, int], ...]
    output_padding: tuple[int, ...]
    unbatched: bool


def check_transpose(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None, stride: IntOrTuple,
                    padding: Padding, output_padding: IntOrTuple, groups: int,
                    dilation: IntOrTuple, output_size: object) -> TransposeCall:
    """Validate the arguments of :func:`conv_transpose` (shared with its backward)."""
    x, weight, xb, unbatched = _operands(x, weight, "(C_in, C_out // groups, *kernel)")
    d = weight.ndim - 2
    g = _groups(groups)
    cin = xb.shape[1]
    if weight.shape[0] != cin:
        raise ValueError(
            f"weight.shape[0] must be C_in = {cin}, got weight.shape={weight.shape}"
        )
    if cin % g:
        raise ValueError(f"C_in ({cin}) must be divisible by groups ({g})")
    if weight.shape[1] == 0 or any(k == 0 for k in weight.shape[2:]):
        raise ValueError(f"weight must have non-empty axes, got weight.shape={weight.shape}")
    mo = weight.shape[1]
    cout = mo * g
    kernel = weight.shape[2:]
    stride_t = per_axis("stride", stride, d, 1)
    dil_t = per_axis("dilation", dilation, d, 1)
    pad = normalise_padding(padding, d)
    in_shape = xb.shape[2:]
    if pad == "same":
        same = [_same_transposed(n, k, s, dl) for n, k, s, dl in
                zip(in_shape, kernel, stride_t, dil_t)]
        pads = tuple(p for p, _ in same)
        op = tuple(o for _, o in same)
        if output_size is not None or output_padding != 0:
            raise ValueError("padding='same' fixes the output size: give neither "
                             "output_padding nor output_size")
    else:
        pads = ((0, 0),) * d if pad == "valid" else pad
        op = _output_padding(output_padding, output_size, in_shape, kernel, stride_t, dil_t,
                             pads)
    b = _bias(bias, cout)
    return TransposeCall(xb, weight, b, g, stride_t, dil_t, pads, op, unbatched)


def _transpose_nd(d: int):
    def f(x, weight, bias=None, stride=1, padding=0, output_padding=0, groups=1, dilation=1,
          activation=None, output_size=None):
        w = as_array("weight", weight)
        if w.ndim != d + 2:
            raise ValueError(
                f"conv_transpose{d}d takes weight of shape (C_in, C_out // groups"
                f"{', k' * d}) ({d + 2} axes), got weight.shape={w.shape}"
            )
        return conv_transpose(x, w, bias, stride, padding, output_padding, groups, dilation,
                              activation, output_size)

    f.__name__ = f.__qualname__ = f"conv_transpose{d}d"
    f.__doc__ = f"""{d}-D transposed convolution: :func:`conv_transpose`, checking the rank.

    Same as ``torch.nn.functional.conv_transpose{d}d``; see :func:`conv_transpose`.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((1, 2{', 4' * d}), np.float32)
    >>> numbaconv.conv_transpose{d}d(x, np.ones((2, 3{', 3' * d}), np.float32), stride=2).shape
    (1, 3{', 9' * d})
    """
    return f


conv_transpose1d = _transpose_nd(1)
conv_transpose2d = _transpose_nd(2)
conv_transpose3d = _transpose_nd(3)
