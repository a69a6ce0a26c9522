"""Window geometry: the plain-Python half of the sliding-window core.

Every operation slides a window over the spatial axes of an ``(N, C, *spatial)``
array. This module normalises the window parameters to per-axis tuples,
validates them, works out the output shape, and packs everything the compiled
kernels need into a few ``int64`` tables, so that one compiled kernel serves
every rank:

* ``geom`` -- an ``(NROWS, d)`` table with one row per per-axis quantity (the
  ``G_*`` row numbers below);
* ``maps`` -- for each axis, the *virtual axis* the window slides over (the
  padded input) mapped back to input indices, ``-1`` where the virtual sample is
  a zero (zero padding). Every padding mode is one such lookup table, made by
  :func:`numpy.pad` itself. Rows ``G_ID0``/``G_IDN`` of ``geom`` name the run
  of the virtual axis that maps to the input one to one, which kernels copy
  as a block;
* ``taps`` -- the ``(T, d)`` kernel-tap coordinates in row-major order;
  ``toff`` their flat offsets in the input (valid in the interior region,
  where no padding is involved) and ``voff`` in the virtual (padded) plane,
  where every window is the same pattern of flat offsets.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass

import numpy as np

IntOrTuple = int | tuple[int, ...]
Padding = int | str | tuple

# rows of the ``geom`` table
(G_IN, G_OUT, G_STRIDE, G_DIL, G_PAD, G_K, G_LO, G_HI, G_INSTR, G_OUTSTR, G_MAPOFF, G_VLEN,
 G_VSTR, G_ID0, G_IDN) = range(15)
NROWS = 15

#: padding_mode -> numpy.pad mode
PADDING_MODES = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}


def _as_int(name: str, v: object) -> int:
    if isinstance(v, (bool, np.bool_)):
        raise TypeError(f"{name} must be an int or a tuple of ints, got {v!r}")
    try:
        return operator.index(v)
    except TypeError:
        raise TypeError(f"{name} must be an int or a tuple of ints, got {v!r}") from None


def per_axis(name: str, value: IntOrTuple, d: int, minimum: int) -> tuple[int, ...]:
    """Normalise an int or a length-``d`` tuple of ints, each at least ``minimum``."""
    if isinstance(value, (tuple, list, np.ndarray)):
        vals = tuple(_as_int(name, v) for v in value)
        if len(vals) != d:
            raise ValueError(
                f"{name} must be an int or a tuple of {d} ints (one per spatial axis), "
                f"got {tuple(value)!r}"
            )
    else:
        vals = (_as_int(name, value),) * d
    if any(v < minimum for v in vals):
        kind = "positive" if minimum == 1 else "non-negative"
        raise ValueError(f"{name} must be {kind}, got {value!r}")
    return vals


def normalise_padding(
    padding: Padding, d: int
) -> str | tuple[tuple[int, int], ...]:
    """``'same'``, ``'valid'``, or per-axis ``(before, after)`` pairs."""
    if isinstance(padding, str):
        if padding not in ("same", "valid"):
            raise ValueError(
                f"padding must be an int, a tuple, 'same' or 'valid', got {padding!r}"
            )
        return padding
    form = (
        f"padding must be an int, a tuple of {d} ints, a tuple of {d} (before, after) "
        "pairs, 'same' or 'valid'"
    )
    if isinstance(padding, (tuple, list)):
        if len(padding) != d:
            raise ValueError(f"{form}; got {padding!r}")
        pairs = []
        for p in padding:
            if isinstance(p, (tuple, list)):
                if len(p) != 2:
                    raise ValueError(f"{form}; got {padding!r}")
                pairs.append((_as_int("padding", p[0]), _as_int("padding", p[1])))
            else:
                q = _as_int("padding", p)
                pairs.append((q, q))
    else:
        q = _as_int("padding", padding)
        pairs = [(q, q)] * d
    if any(b < 0 or a < 0 for b, a in pairs):
        raise ValueError(f"padding must be non-negative, got {padding!r}")
    return tuple(pairs)


def same_padding(size: int, k: int, stride: int, dilation: int) -> tuple[int, int]:
    """``'same'`` padding of one axis: PyTorch's at stride 1, TensorFlow's SAME beyond.

    The output has ``ceil(size / stride)`` samples; an odd total puts the extra
    element after.
    """
    eff = dilation * (k - 1) + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + eff - size, 0)
    return total // 2, total - total // 2


@dataclass(frozen=True)
class Window:
    """Per-axis window geometry of one sliding-window operation."""

    in_shape: tuple[int, ...]
    kernel: tuple[int, ...]
    stride: tuple[int, ...]
    dilation: tuple[int, ...]
    pad: tuple[tuple[int, int], ...]
    out_shape: tuple[int, ...]

    @property
    def ndim(self) -> int:
        return len(self.kernel)

    @property
    def taps(self) -> int:
        return int(np.prod(self.kernel))


def conv_window(
    in_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: IntOrTuple,
    padding: Padding,
    dilation: IntOrTuple,
) -> Window:
    """Validate a convolution's window parameters and work out its output shape."""
    d = len(kernel)
    stride_t = per_axis("stride", stride, d, 1)
    dil_t = per_axis("dilation", dilation, d, 1)
    pad = normalise_padding(padding, d)
    if pad == "valid":
        pad = ((0, 0),) * d
    elif pad == "same":
        pad = tuple(
            same_padding(n, k, s, dl) for n, k, s, dl in zip(in_shape, kernel, stride_t, dil_t)
        )
    out = []
    for a in range(d):
        eff = dil_t[a] * (kernel[a] - 1) + 1
        span = in_shape[a] + pad[a][0] + pad[a][1]
        o = (span - eff) // stride_t[a] + 1 if span >= eff else 0
        if o < 1:
            raise ValueError(
                f"the output would be empty along spatial axis {a}: input size {in_shape[a]} "
                f"with padding {pad[a]} is smaller than the dilated kernel size {eff}"
            )
        out.append(o)
    return Window(tuple(in_shape), tuple(kernel), stride_t, dil_t, pad, tuple(out))


def check_padding_mode(padding_mode: str, win: Window) -> None:
    """Validate ``padding_mode`` against the window (reflect needs pad < size)."""
    if padding_mode not in PADDING_MODES:
        raise ValueError(
            f"padding_mode must be one of {sorted(PADDING_MODES)}, got {padding_mode!r}"
        )
    if padding_mode == "reflect":
        for a, (n, (b, e)) in enumerate(zip(win.in_shape, win.pad)):
            if max(b, e) >= n:
                raise ValueError(
                    f"padding_mode='reflect' needs padding smaller than the input along "
                    f"spatial axis {a}: padding {(b, e)} for input size {n}"
                )


def axis_map(size: int, before: int, after: int, padding_mode: str) -> np.ndarray:
    """Virtual (padded) axis -> input index, ``-1`` for a zero sample."""
    idx = np.arange(size, dtype=np.int64)
    mode = PADDING_MODES[padding_mode]
    if mode == "constant":
        return np.pad(idx, (before, after), mode="constant", constant_values=-1)
    return np.pad(idx, (before, after), mode=mode)


def _strides(shape: tuple[int, ...]) -> np.ndarray:
    """Row-major element strides of ``shape``."""
    st = np.ones(len(shape), dtype=np.int64)
    for a in range(len(shape) - 2, -1, -1):
        st[a] = st[a + 1] * shape[a + 1]
    return st


def interior(win: Window) -> tuple[np.ndarray, np.ndarray]:
    """Per axis, the output range ``[lo, hi)`` whose windows need no padding."""
    lo = np.zeros(win.ndim, dtype=np.int64)
    hi = np.zeros(win.ndim, dtype=np.int64)
    for a in range(win.ndim):
        s, b = win.stride[a], win.pad[a][0]
        reach = win.dilation[a] * (win.kernel[a] - 1)
        lo[a] = min(-(-b // s), win.out_shape[a])
        last = win.in_shape[a] - 1 + b - reach
        hi[a] = min(last // s + 1, win.out_shape[a]) if last >= 0 else 0
        hi[a] = max(hi[a], lo[a])
    return lo, hi


@dataclass(frozen=True)
class Tables:
    """The ``int64`` tables a compiled kernel reads (see the module docstring)."""

    geom: np.ndarray
    maps: np.ndarray
    taps: np.ndarray
    toff: np.ndarray
    voff: np.ndarray


@functools.lru_cache(maxsize=256)
def kernel_tables(win: Window, padding_mode: str = "zeros") -> Tables:
    """Pack a window and a padding mode into the tables the kernels read.

    Cached per (window, mode): a layer called again and again rebuilds nothing.
    The tables are read-only.
    """
    d = win.ndim
    maps = [axis_map(n, b, e, padding_mode) for n, (b, e) in zip(win.in_shape, win.pad)]
    geom = np.zeros((NROWS, d), dtype=np.int64)
    geom[G_IN] = win.in_shape
    geom[G_OUT] = win.out_shape
    geom[G_STRIDE] = win.stride
    geom[G_DIL] = win.dilation
    geom[G_PAD] = [b for b, _ in win.pad]
    geom[G_K] = win.kernel
    geom[G_LO], geom[G_HI] = interior(win)
    geom[G_INSTR] = _strides(win.in_shape)
    geom[G_OUTSTR] = _strides(win.out_shape)
    geom[G_MAPOFF] = np.cumsum([0] + [len(m) for m in maps[:-1]])
    geom[G_VLEN] = [len(m) for m in maps]
    geom[G_VSTR] = _strides(tuple(geom[G_VLEN]))
    # the run of each virtual axis that is the input itself: [ID0, ID0 + IDN) -> [0, IDN)
    geom[G_ID0] = geom[G_PAD]
    geom[G_IDN] = geom[G_IN]
    taps = np.indices(win.kernel, dtype=np.int64).reshape(d, -1).T.copy()
    step = taps * np.asarray(win.dilation)
    toff = (step * geom[G_INSTR]).sum(axis=1).astype(np.int64)
    voff = (step * geom[G_VSTR]).sum(axis=1).astype(np.int64)
    tables = Tables(geom, np.concatenate(maps).astype(np.int64), taps, toff, voff)
    for a in (tables.geom, tables.maps, tables.taps, tables.toff, tables.voff):
        a.flags.writeable = False
    return tables
