"""Window geometry: the plain-Python half of the sliding-window core.

Every operation slides a window over the spatial axes of an ``(N, C, *spatial)``
array. This module normalises the window parameters to per-axis tuples,
validates them, works out the output shape, and packs everything the compiled
kernels need into a few ``int64`` tables, so that one compiled kernel serves
every rank:

* ``geom`` -- an ``(NROWS, d)`` table with one row per per-axis quantity (the
  ``G_*`` row numbers below);
* ``maps`` -- for each axis, the *virtual axis* the window slides over mapped
  back to input indices, ``-1`` where the virtual sample is a zero. For a
  convolution the virtual axis is the padded input, and every padding mode is
  one such lookup table, made by :func:`numpy.pad` itself; for a transposed
  convolution it is the input dilated by the stride (zeros in between).
  Rows ``G_ID0``/``G_IDN``/``G_IDSRC`` of ``geom`` name the run of the
  virtual axis that is a stretch of the input itself (``maps[ID0 + j] ==
  IDSRC + j``), which kernels copy as a block;
* ``voff`` -- the flat offsets of the kernel taps (row-major) in the virtual
  plane, where every window is the same pattern of offsets.
"""

from __future__ import annotations

import functools
import operator
from dataclasses import dataclass, field

import numpy as np

IntOrTuple = int | tuple[int, ...]
Padding = int | str | tuple

# rows of the ``geom`` table
(G_OUT, G_STRIDE, G_DIL, G_K, G_INSTR, G_MAPOFF, G_VLEN, G_VSTR, G_ID0, G_IDN,
 G_IDSRC) = range(11)
NROWS = 11

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


def spatial_sizes(name: str, value: object, d: int) -> tuple[int, ...]:
    """``d`` spatial sizes, given as ``d`` ints or a full ``(N, C, *spatial)`` shape (as torch)."""
    try:
        sizes = tuple(operator.index(v) for v in value)
    except TypeError:
        raise TypeError(f"{name} must be a tuple of ints, got {value!r}") from None
    if len(sizes) == d + 2:
        sizes = sizes[2:]
    if len(sizes) != d:
        raise ValueError(f"{name} must have {d} spatial sizes, got {value!r}")
    return sizes


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


def conv_window(
    in_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: IntOrTuple,
    padding: Padding,
    dilation: IntOrTuple,
) -> Window:
    """Validate a convolution's window parameters and work out its output shape.

    Parameters given as plain ints, strings and tuples of them are looked up in
    a cache first (a call's checks took ~10 us, a quarter of a small call's
    Python): the key keeps their exact types, so ``True`` or ``2.0`` still
    meet the checks, and a call that raises is not cached.
    """
    args = (tuple(in_shape), tuple(kernel), stride, padding, dilation)
    if _plain(stride) and _plain(padding) and _plain(dilation):  # (shapes are int tuples)
        return _cached_window(*args)
    return _conv_window(*args)


def _plain(v: object) -> bool:
    """An int, a str, or a tuple of them (nested): what :func:`_cached_window` may key on."""
    t = type(v)
    if t is int or t is str:
        return True
    if t is not tuple:
        return False
    for u in v:
        if not _plain(u):
            return False
    return True


@functools.lru_cache(maxsize=256)
def _cached_window(*args: object) -> Window:
    return _conv_window(*args)


def _conv_window(in_shape, kernel, stride, padding, dilation) -> Window:
    """:func:`conv_window`'s checks and arithmetic, uncached."""
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


@dataclass(frozen=True, eq=False)
class Tables:
    """The read-only ``int64`` tables a compiled kernel reads (see the module docstring).

    Equal and hashed by content (``key``: the shape and bytes of the tables, made once), so
    that the paths can cache what they work out from the tables with the tables as the key.
    """

    geom: np.ndarray
    maps: np.ndarray
    voff: np.ndarray
    key: tuple = field(init=False, repr=False)

    def __post_init__(self) -> None:
        for arr in (self.geom, self.maps, self.voff):
            arr.flags.writeable = False
        key = (self.geom.shape, self.geom.tobytes(), self.maps.tobytes(), self.voff.tobytes())
        object.__setattr__(self, "key", key)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Tables) and self.key == other.key

    def __hash__(self) -> int:  # (the bytes keep their hashes: a tuple of four to combine)
        return hash(self.key)


def identity_run(m: np.ndarray) -> tuple[int, int, int]:
    """The longest run of ``m`` that is consecutive input indices: ``(start, length, m[start])``."""
    ok = m >= 0
    step = np.flatnonzero(~(ok[1:] & ok[:-1] & (np.diff(m) == 1))) + 1  # run boundaries
    starts = np.concatenate(([0], step))
    ends = np.concatenate((step, [len(m)]))
    lengths = np.where(ok[starts], ends - starts, 0)
    best = int(np.argmax(lengths))
    return int(starts[best]), int(lengths[best]), int(m[starts[best]]) if lengths[best] else 0


def tables_from_maps(
    in_shape: tuple[int, ...],
    kernel: tuple[int, ...],
    stride: tuple[int, ...],
    dilation: tuple[int, ...],
    out_shape: tuple[int, ...],
    maps: list[np.ndarray],
) -> Tables:
    """Pack per-axis virtual-axis maps and the window into the kernels' tables."""
    d = len(kernel)
    geom = np.zeros((NROWS, d), dtype=np.int64)
    geom[G_OUT] = out_shape
    geom[G_STRIDE] = stride
    geom[G_DIL] = dilation
    geom[G_K] = kernel
    geom[G_INSTR] = _strides(in_shape)
    geom[G_MAPOFF] = np.cumsum([0] + [len(m) for m in maps[:-1]])
    geom[G_VLEN] = [len(m) for m in maps]
    geom[G_VSTR] = _strides(tuple(geom[G_VLEN]))
    for a, m in enumerate(maps):
        geom[G_ID0, a], geom[G_IDN, a], geom[G_IDSRC, a] = identity_run(m)
    taps = np.indices(kernel, dtype=np.int64).reshape(d, -1).T
    voff = (taps * np.asarray(dilation) * geom[G_VSTR]).sum(axis=1).astype(np.int64)
    return Tables(geom, np.concatenate(maps).astype(np.int64), voff)


@functools.lru_cache(maxsize=256)
def kernel_tables(win: Window, padding_mode: str = "zeros") -> Tables:
    """The tables of a convolution window with ``padding_mode`` (cached; read-only)."""
    maps = [axis_map(n, b, e, padding_mode) for n, (b, e) in zip(win.in_shape, win.pad)]
    return tables_from_maps(win.in_shape, win.kernel, win.stride, win.dilation, win.out_shape,
                            maps)
