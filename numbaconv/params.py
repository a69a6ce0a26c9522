"""Parameter counts of convolution layers."""

from __future__ import annotations

import math

__all__ = ["param_count"]

_LAYERS = ("conv", "depthwise", "pointwise", "separable")


def param_count(
    layer: str,
    in_channels: int,
    out_channels: int,
    kernel_size: int | tuple[int, ...],
    *,
    groups: int = 1,
    bias: bool = False,
) -> int:
    """Number of learned parameters of a convolution layer.

    Parameters
    ----------
    layer : {'conv', 'depthwise', 'pointwise', 'separable'}
        ``'conv'``: weight ``(out, in // groups, *kernel)``. ``'depthwise'``:
        weight ``(out, 1, *kernel)`` with ``out`` a multiple of ``in``.
        ``'pointwise'``: weight ``(out, in // groups)``. ``'separable'``: a
        depthwise ``(in, 1, *kernel)`` then a pointwise ``(out, in)``.
    in_channels, out_channels : int
    kernel_size : int or tuple of ints
        An int means a 1-D kernel; give a tuple for more dimensions.
    groups : int
        For ``'conv'`` and ``'pointwise'``.
    bias : bool
        Count one bias per output channel as well (weights only by default).

    Returns
    -------
    int

    Examples
    --------
    The classic comparison: a 3x3 convolution from 32 to 64 channels, and its
    depthwise-separable counterpart.

    >>> from numbaconv import param_count
    >>> param_count("conv", 32, 64, (3, 3))
    18432
    >>> param_count("separable", 32, 64, (3, 3))
    2336
    >>> param_count("conv", 32, 64, (3, 3), bias=True)
    18496
    """
    if layer not in _LAYERS:
        raise ValueError(f"layer must be one of {_LAYERS}, got {layer!r}")
    k = kernel_size if isinstance(kernel_size, tuple) else (kernel_size,)
    taps = math.prod(k)
    if min(in_channels, out_channels, groups, taps) < 1:
        raise ValueError("channels, groups and kernel sizes must be positive")
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"channels ({in_channels}, {out_channels}) not divisible by groups")
    if layer == "conv":
        n = out_channels * (in_channels // groups) * taps
    elif layer == "depthwise":
        if out_channels % in_channels:
            raise ValueError("depthwise out_channels must be a multiple of in_channels")
        n = out_channels * taps
    elif layer == "pointwise":
        n = out_channels * (in_channels // groups)
    else:
        n = in_channels * taps + out_channels * in_channels
    return n + (out_channels if bias else 0)
