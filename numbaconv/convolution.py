"""Forward convolutions: standard, depthwise, pointwise and depthwise-separable.

All of them run on the sliding-window core (:mod:`numbaconv._core`), in any
number of spatial dimensions, with PyTorch's semantics (cross-correlation,
weights ``(C_out, C_in // groups, *kernel)``).
"""

from __future__ import annotations

import math
import operator
from typing import NamedTuple

import numba
import numpy as np

from . import (
    _core,
    _direct_rows,
    _implicit,
    _pointwise,
    _separable_rows,
    _winograd,
    _winograd1d,
)
from ._activations import activation_code, finish_activation, kernel_code
from ._dtypes import as_array, result_dtypes, to_kernel
from ._geometry import (
    G_K,
    G_VLEN,
    Padding,
    Tables,
    Window,
    check_padding_mode,
    conv_window,
    kernel_tables,
)
from ._microkernel import gemm_weights

ArrayLike = object

__all__ = [
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "depthwise_conv",
    "pointwise_conv",
    "separable_conv",
]

#: target size in bytes of one worker's gathered tile (it stays in L2)
_TILE_BYTES = 512 * 1024
#: at most this many bytes of virtual (padded, channels-last) planes at a time: the tile
#: GEMM's chunk of images (with 4 MB, not 32, the planes of a separable (8,128,56,56) are
#: two images' and stay nearer the cores: 7.3-8.8 -> 6.5-7.6 ms) ...
_GEMM_PLANE_BYTES = 4 * 1024 * 1024
#: ... and the deformable kernels' and the gradients'
_PLANE_BYTES = 32 * 1024 * 1024
#: fewer output channels per group than this go to the direct schedule
_MIN_GEMM_ROWS = 4
#: a depthwise-separable convolution runs in two passes when its product reduces over at least
#: this many channels (with 32, (8,32,112,112)->64 was faster fused: 4.6 against 4.9-5.4 ms) ...
_SEPARABLE_MIN_K = 64
#: ... and its intermediate takes at most this, or a quarter of the output (the working-memory
#: bound of issue 5)
_SEPARABLE_MID_BYTES = 64 * 1024 * 1024


def _bands(planes: int, rows: int, workers: int, per_worker: int) -> int:
    """Bands of output rows a plane for the direct schedule: 1 with planes enough for twice
    the workers, else about ``per_worker`` jobs a worker, at most ``rows`` bands.

    One image of one channel (a SciPy-style call) had one job: one worker. The
    plane sweeps (:func:`numbaconv._core.window_direct`) take 16 bands a
    worker: each band's accumulator then stays in L2 (1024 x 1024, 5 x 5, one
    thread 2.7 -> 1.5 ms; two 1.0). The row sweeps copy their padded rows
    per job, so 2 (96^3 zero-padded: 32 bands took 2.8x as long as one).
    """
    if planes >= 2 * workers:
        return 1
    return max(1, min(rows, -(-per_worker * workers // max(planes, 1))))


def _tile(k: int, itemsize: int) -> int:
    """Output positions per job: the tile ``(tile, k)`` fills about ``_TILE_BYTES``."""
    t = _TILE_BYTES // max(k * itemsize, 1)
    return max(16, min(512, t - t % 2))


def _groups(groups: object) -> int:
    if isinstance(groups, (bool, np.bool_)):
        raise TypeError(f"groups must be a positive int, got {groups!r}")
    try:
        g = operator.index(groups)
    except TypeError:
        raise TypeError(f"groups must be a positive int, got {groups!r}") from None
    if g < 1:
        raise ValueError(f"groups must be a positive int, got {g}")
    return g


def _batched(x: np.ndarray, d: int, what: str) -> tuple[np.ndarray, bool]:
    """``(x as (N, C, *spatial), was_unbatched)``, checking the rank against ``d``."""
    if x.ndim == d + 2:
        xb, unbatched = x, False
    elif x.ndim == d + 1:
        xb, unbatched = x[None], True
    else:
        raise ValueError(
            f"x must have shape (N, C_in, *spatial) or (C_in, *spatial) with {d} spatial "
            f"axes to match {what}, got x.shape={x.shape}"
        )
    if any(n == 0 for n in xb.shape[2:]):
        raise ValueError(f"x must have non-empty spatial axes, got x.shape={x.shape}")
    return xb, unbatched


def _operands(x: ArrayLike, weight: ArrayLike, layout: str
              ) -> tuple[np.ndarray, np.ndarray, np.ndarray, bool]:
    """``(x, weight, x as (N, C, *spatial), was_unbatched)``, checking the ranks.

    ``weight`` must have the shape ``layout`` with at least one spatial axis.
    """
    x = as_array("x", x)
    weight = as_array("weight", weight)
    if weight.ndim < 3:
        raise ValueError(
            f"weight must have shape {layout} with at least one spatial axis, "
            f"got weight.shape={weight.shape}"
        )
    xb, unbatched = _batched(x, weight.ndim - 2, f"weight.shape={weight.shape}")
    return x, weight, xb, unbatched


def _bias(bias: ArrayLike | None, cout: int) -> np.ndarray | None:
    if bias is None:
        return None
    b = as_array("bias", bias)
    if b.shape != (cout,):
        raise ValueError(f"bias must have shape (C_out,) = ({cout},), got {b.shape}")
    return b


def run_window(
    xb: np.ndarray,
    w2: np.ndarray,
    bias: np.ndarray | None,
    groups: int,
    tab: Tables,
    out_shape: tuple[int, ...],
    act: int,
    dw: np.ndarray | None = None,
    mult: int = 1,
    tap_major: bool = False,
) -> np.ndarray:
    """Run a validated sliding-window weighted sum on the core.

    ``xb`` is batched ``(N, C_in, *spatial)``, ``w2`` is ``(C_out, K)`` with
    ``K = (C_in / groups) * taps`` channel-major as PyTorch stores it, or with
    ``tap_major`` ``(C_out, *taps, C_in / groups)`` in any strides (a view is
    read straight into the GEMM's panels); ``tab`` the window's tables and
    ``out_shape`` its spatial output shape.
    """
    cdt, rdt = result_dtypes(x=xb, weight=w2, bias=bias, depthwise_weight=dw)
    out = np.empty((xb.shape[0], w2.shape[0]) + tuple(out_shape), dtype=cdt)
    if xb.shape[0]:
        _fill_window(out, xb, w2, bias, groups, tab, out_shape, kernel_code(act), dw, mult,
                     tap_major)
        finish_activation(out, act)
    return out.astype(rdt, copy=False)


def _fill_window(out: np.ndarray, xb: np.ndarray, w2: np.ndarray, bias: np.ndarray | None,
                 groups: int, tab: Tables, out_shape: tuple[int, ...], act: int,
                 dw: np.ndarray | None, mult: int, tap_major: bool) -> None:
    """:func:`run_window`'s kernels: ``out`` ``(N, C_out, *out_shape)`` in the compute dtype,
    ``act`` a fused activation's code (:func:`numbaconv._activations.kernel_code`)."""
    cdt = out.dtype
    nimg, cin = xb.shape[:2]
    cout = w2.shape[0]
    x3 = to_kernel(xb, cdt).reshape(nimg, cin, -1)
    w2 = w2.astype(cdt, copy=False)
    b = np.zeros(cout, cdt) if bias is None else to_kernel(bias, cdt)
    out3 = out.reshape(nimg, cout, -1)
    zero = cdt.type(0)
    workers = numba.get_num_threads()
    ntap = len(tab.voff)
    # channel-major (C_out, C_in / groups, T), as PyTorch stores it: what the paths below the
    # tile GEMM read (a view)
    wc = w2.reshape(cout, ntap, -1).transpose(0, 2, 1) if tap_major else w2
    if dw is None and cout // groups < _MIN_GEMM_ROWS:  # the direct schedule
        wd = to_kernel(wc, cdt).reshape(cout, -1)
        rows = math.prod(out_shape[:-1])
        if _direct_rows.usable(tab):
            _direct_rows.window_rows(x3, wd, b, out3, groups, tab, act, zero,
                                     _bands(nimg * cout, rows, workers, 2), workers)
        else:
            _core.window_direct(x3, wd, b, out3, groups, tab.geom, tab.maps, tab.voff, act, zero,
                                _bands(nimg * cout, rows, workers, 16), workers)
        return
    if dw is None and ntap == 1:  # 1 x ... x 1: a matrix product on NCHW, no gather
        _pointwise.onetap(x3, w2.reshape(cout, -1), b, out3, groups, tab, act, workers)
        return
    if dw is None and _winograd1d.usable(tab, groups, cin, cout):  # 1-D, 3 taps, F(4, 3)
        _winograd1d.winograd1d(x3, wc.reshape(cout, cin, 3), b, out3, tab, act, workers)
        return
    wino = dw is None and _winograd.usable(tab, groups, cin, cout)
    few_tiles = wino and not _winograd.pays_off(tab, nimg, cin, cout, cdt.itemsize)
    if dw is None and (few_tiles or _implicit.usable(tab, groups, cin, cout)):  # few channels,
        # 1-D, or a batch with too few Winograd tiles for its weight transform
        _implicit.implicit(x3, wc.reshape(cout, -1), b, out3, groups, tab, act, workers)
        return
    if wino:
        _winograd.winograd(x3, wc.reshape((cout, cin) + tuple(tab.geom[G_K])), b, out3, tab, act,
                           workers)
        return
    if dw is not None:  # separable: the GEMM is the pointwise part
        wt = w2
        dwT = np.ascontiguousarray(to_kernel(dw, cdt).T)
    else:  # tap-major (C_out, T, C_g), a view
        wt = w2 if tap_major else w2.reshape(cout, -1, ntap).transpose(0, 2, 1)
        dwT = None
    wk, wp, bp = gemm_weights(wt, b, groups)
    plane = int(tab.geom[G_VLEN].prod()) * cin * cdt.itemsize
    chunk = max(1, min(nimg, _GEMM_PLANE_BYTES // plane))
    tile = _tile(wk.shape[1], cdt.itemsize)
    segs = _core.gemm_segments(x3, tab, tile, cin if dw is not None else cin // groups, workers)
    _core.window_gemm(x3, wk, wp, bp, b, out3, groups, tab.geom, tab.maps, tab.voff, dwT, mult,
                      act, tile, chunk, segs, zero, workers)


def conv(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    groups: int = 1,
    padding_mode: str = "zeros",
    activation: str | None = None,
) -> np.ndarray:
    """N-D convolution (cross-correlation), as ``torch.nn.functional.conv1d/2d/3d``.

    The number of spatial dimensions ``d = weight.ndim - 2`` may be any number
    from 1 up.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial) or (C_in, *spatial)
        Input; an unbatched input gives an unbatched result.
    weight : array_like, shape (C_out, C_in // groups, *kernel)
        Filters.
    bias : array_like, shape (C_out,), optional
        Added to every output position of each channel.
    stride, dilation : int or tuple of d ints
        Step between windows and between kernel taps; positive.
    padding : int, tuple of d ints, tuple of d (before, after) pairs, 'same' or 'valid'
        Implicit padding of every spatial axis. ``'same'`` gives
        ``ceil(size / stride)`` outputs per axis (PyTorch's rule at stride 1,
        TensorFlow's SAME at larger strides; an odd total pads one more after).
    groups : int
        Split the channels into ``groups`` independent convolutions.
    padding_mode : {'zeros', 'reflect', 'replicate', 'circular', 'symmetric'}
        What the padding holds: zeros, the reflection without repeating the
        edge (``numpy.pad`` ``'reflect'``, padding must be smaller than the
        input), the edge sample, the periodic continuation, or the reflection
        repeating the edge (``numpy.pad`` ``'symmetric'``, which
        ``scipy.ndimage`` calls ``'reflect'``).
    activation : {None, 'relu', 'leaky_relu', 'sigmoid', 'tanh', 'gelu', 'silu', 'elu'}
        Applied after the bias, in the pass that writes the output; gelu (in
        its exact erf form) in one more pass over it (``leaky_relu`` with
        slope 0.01, ``elu`` with alpha 1).

    Returns
    -------
    numpy.ndarray, shape (N, C_out, *out_spatial) or (C_out, *out_spatial)
        ``out = (in + pad_before + pad_after - dilation*(kernel-1) - 1) // stride + 1``
        per axis. float32 and float64 inputs are computed natively and keep
        their dtype (mixed float32/float64 gives float64); float16 is computed
        in float32 and returned as float16; integer and bool inputs are
        computed in and returned as float64.

    Raises
    ------
    ValueError
        Ranks or channel counts that do not match, bad stride, padding,
        dilation or groups, an empty output, an unknown mode or activation,
        a bias of the wrong shape.
    TypeError
        Complex or non-numeric input, non-integer parameters.

    Examples
    --------
    >>> import numpy as np
    >>> import numbaconv
    >>> x = np.arange(5, dtype=np.float32)[None]           # (C_in=1, W=5), unbatched
    >>> numbaconv.conv(x, np.ones((1, 1, 3), np.float32), padding=1)
    array([[1., 3., 6., 9., 7.]], dtype=float32)
    >>> x = np.random.default_rng(0).random((2, 3, 8, 8, 8, 8))   # a 4-D volume batch
    >>> numbaconv.conv(x, np.ones((4, 3, 3, 3, 3, 3)), padding="same").shape
    (2, 4, 8, 8, 8, 8)
    """
    act = activation_code(activation)
    cv = check_conv(x, weight, bias, stride, padding, dilation, groups, padding_mode)
    out = run_window(cv.xb, cv.weight.reshape(cv.weight.shape[0], -1), cv.bias, cv.groups,
                     kernel_tables(cv.win, padding_mode), cv.win.out_shape, act)
    return out[0] if cv.unbatched else out


class ConvCall(NamedTuple):
    """A validated convolution call (see :func:`check_conv`)."""

    xb: np.ndarray  # x as (N, C_in, *spatial)
    weight: np.ndarray
    bias: np.ndarray | None
    groups: int
    win: Window
    unbatched: bool


def check_conv(x: ArrayLike, weight: ArrayLike, bias: ArrayLike | None, stride: object,
               padding: Padding, dilation: object, groups: object,
               padding_mode: str) -> ConvCall:
    """Validate the arguments of :func:`conv` (shared with its backward)."""
    x, weight, xb, unbatched = _operands(x, weight, "(C_out, C_in // groups, *kernel)")
    g = _groups(groups)
    cin, cout = xb.shape[1], weight.shape[0]
    if cin % g or cout % g:
        raise ValueError(
            f"C_in ({cin}) and C_out ({cout}) must both be divisible by groups ({g})"
        )
    if weight.shape[1] * g != cin:
        how = " (x read as unbatched (C_in, *spatial))" if unbatched else ""
        raise ValueError(
            f"weight.shape[1] must be C_in // groups = {cin} // {g} = {cin // g}, "
            f"got weight.shape={weight.shape} for x.shape={x.shape}{how}"
        )
    if cout == 0 or any(k == 0 for k in weight.shape[2:]):
        raise ValueError(f"weight must have non-empty axes, got weight.shape={weight.shape}")
    b = _bias(bias, cout)
    win = conv_window(xb.shape[2:], weight.shape[2:], stride, padding, dilation)
    check_padding_mode(padding_mode, win)
    return ConvCall(xb, weight, b, g, win, unbatched)


def _conv_nd(d: int):
    def f(x, weight, bias=None, stride=1, padding=0, dilation=1, groups=1,
          padding_mode="zeros", activation=None):
        w = as_array("weight", weight)
        if w.ndim != d + 2:
            raise ValueError(
                f"conv{d}d takes weight of shape (C_out, C_in // groups{', k' * d}) "
                f"({d + 2} axes), got weight.shape={w.shape}"
            )
        return conv(x, w, bias, stride, padding, dilation, groups, padding_mode, activation)

    f.__name__ = f.__qualname__ = f"conv{d}d"
    f.__doc__ = f"""{d}-D convolution: :func:`conv`, checking that ``weight`` has {d} spatial axes.

    Same as ``torch.nn.functional.conv{d}d``; see :func:`conv` for the parameters.

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((1, 2{', 5' * d}), np.float32)
    >>> numbaconv.conv{d}d(x, np.ones((3, 2{', 3' * d}), np.float32)).shape
    (1, 3{', 3' * d})
    """
    return f


conv1d = _conv_nd(1)
conv2d = _conv_nd(2)
conv3d = _conv_nd(3)


def _depthwise_weight(
    x: np.ndarray, weight: ArrayLike, name: str
) -> tuple[np.ndarray, np.ndarray, bool]:
    """Check a depthwise filter bank against ``x``: ``(weight, x batched, was_unbatched)``."""
    w = as_array(name, weight)
    if w.ndim < 3 or w.shape[1] != 1:
        raise ValueError(
            f"{name} must have shape (C * multiplier, 1, *kernel), got {name}.shape={w.shape}"
        )
    xb, unbatched = _batched(x, w.ndim - 2, f"{name}.shape={w.shape}")
    c = xb.shape[1]
    if c == 0 or w.shape[0] % c:
        raise ValueError(
            f"{name}.shape[0] must be a multiple of the {c} input channels, "
            f"got {name}.shape={w.shape}"
        )
    return w, xb, unbatched


def depthwise_conv(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    padding_mode: str = "zeros",
    activation: str | None = None,
) -> np.ndarray:
    """Depthwise convolution: each input channel convolved with its own filters.

    Same as :func:`conv` with ``groups = C_in``; output channel ``j`` reads input
    channel ``j // multiplier``.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
    weight : array_like, shape (C * multiplier, 1, *kernel)
    bias : array_like, shape (C * multiplier,), optional
    stride, padding, dilation, padding_mode, activation
        As in :func:`conv`.

    Returns
    -------
    numpy.ndarray, shape (N, C * multiplier, *out_spatial)

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((1, 4, 6, 6), np.float32)
    >>> w = np.ones((8, 1, 3, 3), np.float32)       # multiplier 2
    >>> y = numbaconv.depthwise_conv(x, w, padding=1)
    >>> y.shape, float(y[0, 0, 2, 2]), float(y[0, 0, 0, 0])
    ((1, 8, 6, 6), 9.0, 4.0)
    """
    x = as_array("x", x)
    weight, xb, _ = _depthwise_weight(x, weight, "weight")
    return conv(x, weight, bias, stride, padding, dilation, xb.shape[1], padding_mode,
                activation)


def _pointwise_weight(weight: ArrayLike, name: str) -> np.ndarray:
    w = as_array(name, weight)
    if w.ndim < 2 or any(k != 1 for k in w.shape[2:]):
        raise ValueError(
            f"{name} must have shape (C_out, C_in) or (C_out, C_in, 1, ..., 1), "
            f"got {name}.shape={w.shape}"
        )
    return w.reshape(w.shape[:2])


def pointwise_conv(
    x: ArrayLike,
    weight: ArrayLike,
    bias: ArrayLike | None = None,
    groups: int = 1,
    activation: str | None = None,
) -> np.ndarray:
    """Pointwise (1x1) convolution: a channel mix at every spatial position.

    Parameters
    ----------
    x : array_like, shape (N, C_in, *spatial)
        With a 2-D ``weight`` the input must be batched and have at least one
        spatial axis; an unbatched input needs the weight's trailing ones,
        ``(C_out, C_in // groups, 1, ..., 1)``, to tell its rank.
    weight : array_like, shape (C_out, C_in // groups) or (C_out, C_in // groups, 1, ..., 1)
    bias : array_like, shape (C_out,), optional
    groups, activation
        As in :func:`conv`.

    Returns
    -------
    numpy.ndarray, shape (N, C_out, *spatial)

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((2, 3, 4, 5), np.float32)
    >>> numbaconv.pointwise_conv(x, np.full((6, 3), 0.5, np.float32))[0, :, 0, 0]
    array([1.5, 1.5, 1.5, 1.5, 1.5, 1.5], dtype=float32)
    """
    x, w = pointwise_as_conv(x, weight)
    return conv(x, w, bias, groups=groups, activation=activation)


def pointwise_as_conv(x: ArrayLike, weight: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """``(x, weight as (C_out, C_in // groups, 1, ..., 1))`` for :func:`pointwise_conv`."""
    x = as_array("x", x)
    raw = as_array("weight", weight)
    w2 = _pointwise_weight(raw, "weight")
    if raw.ndim > 2:
        d = raw.ndim - 2
    else:
        if x.ndim < 3:
            raise ValueError(
                "x must have shape (N, C_in, *spatial) with at least one spatial axis "
                f"for a 2-D weight, got x.shape={x.shape}"
            )
        d = x.ndim - 2
    return x, w2.reshape(w2.shape + (1,) * d)


def separable_conv(
    x: ArrayLike,
    depthwise_weight: ArrayLike,
    pointwise_weight: ArrayLike,
    bias: ArrayLike | None = None,
    stride: int | tuple[int, ...] = 1,
    padding: Padding = 0,
    dilation: int | tuple[int, ...] = 1,
    padding_mode: str = "zeros",
    activation: str | None = None,
) -> np.ndarray:
    """Depthwise-separable convolution: depthwise, then pointwise, in one pass.

    Equal to ``pointwise_conv(depthwise_conv(x, depthwise_weight, ...),
    pointwise_weight, bias, activation=activation)``, but the depthwise result
    is never held whole: it is computed a band of output rows (or a tile of
    positions) at a time, straight into the buffer that the pointwise product
    reads.

    Parameters
    ----------
    x : array_like, shape (N, C, *spatial) or (C, *spatial)
    depthwise_weight : array_like, shape (C * multiplier, 1, *kernel)
    pointwise_weight : array_like, shape (C_out, C * mult) or (C_out, C * mult, 1, ..., 1)
        ``mult`` is the depthwise multiplier.
    bias : array_like, shape (C_out,), optional
        Bias of the pointwise step.
    stride, padding, dilation, padding_mode
        Of the depthwise step, as in :func:`conv`.
    activation
        Applied to the final output, as in :func:`conv`.

    Returns
    -------
    numpy.ndarray, shape (N, C_out, *out_spatial)

    Examples
    --------
    >>> import numpy as np, numbaconv
    >>> x = np.ones((1, 2, 5, 5), np.float32)
    >>> dw = np.ones((2, 1, 3, 3), np.float32)
    >>> pw = np.ones((4, 2), np.float32)
    >>> numbaconv.separable_conv(x, dw, pw, padding="same")[0, 0]
    array([[ 8., 12., 12., 12.,  8.],
           [12., 18., 18., 18., 12.],
           [12., 18., 18., 18., 12.],
           [12., 18., 18., 18., 12.],
           [ 8., 12., 12., 12.,  8.]], dtype=float32)
    """
    act = activation_code(activation)
    sc = check_separable(x, depthwise_weight, pointwise_weight, bias, stride, padding, dilation,
                         padding_mode)
    cdw = sc.depthwise_weight.shape[0]
    tab = kernel_tables(sc.win, padding_mode)
    out = _separable_bands(sc, tab, act)
    if out is None:
        out = _separable_two_passes(sc, tab, act)
    if out is None:
        out = run_window(sc.xb, sc.pointwise_weight, sc.bias, 1, tab, sc.win.out_shape, act,
                         dw=sc.depthwise_weight.reshape(cdw, -1), mult=cdw // sc.xb.shape[1])
    return out[0] if sc.unbatched else out


def _separable_bands(sc: SeparableCall, tab: Tables, act: int) -> np.ndarray | None:
    """The separable convolution fused by bands of output rows, or ``None``.

    Taken when the depthwise window suits the row sweeps
    (:mod:`numbaconv._direct_rows`) and a row's depthwise sums over every
    channel fit the band buffer (:mod:`numbaconv._separable_rows`).
    """
    xb, dw, pw = sc.xb, sc.depthwise_weight, sc.pointwise_weight
    cdt, rdt = result_dtypes(x=xb, weight=pw, bias=sc.bias, depthwise_weight=dw)
    nimg, cin = xb.shape[:2]
    cdw, cout = dw.shape[0], pw.shape[0]
    shape = tuple(sc.win.out_shape)
    workers = numba.get_num_threads()
    if nimg == 0 or not _direct_rows.usable(tab):
        return None
    rows = _separable_rows.band_rows(shape, cdw, nimg, cdt.itemsize, workers)
    if rows == 0:
        return None
    out = np.empty((nimg, cout) + shape, dtype=cdt)
    b = np.zeros(cout, cdt) if sc.bias is None else to_kernel(sc.bias, cdt)
    _separable_rows.separable(to_kernel(xb, cdt).reshape(nimg, cin, -1),
                              to_kernel(dw, cdt).reshape(cdw, -1), to_kernel(pw, cdt), b,
                              out.reshape(nimg, cout, -1), tab, rows, kernel_code(act), workers)
    finish_activation(out, act)
    return out.astype(rdt, copy=False)


def _separable_two_passes(sc: SeparableCall, tab: Tables, act: int) -> np.ndarray | None:
    """The separable convolution as a depthwise pass, then a one-tap product, or ``None``.

    For rows too wide for :func:`_separable_bands`. Taken in float32 (not
    float16, whose intermediate would be rounded) when the depthwise step runs
    on the row sweeps (:mod:`numbaconv._direct_rows`: its
    window suits them and the multiplier is below ``_MIN_GEMM_ROWS``) and the
    product has at least ``_SEPARABLE_MIN_K`` channels to reduce; then both
    passes run at their kernels' speed, where the fused tile GEMM computes the
    depthwise result per tile with a gather. The intermediate is bounded like
    any working memory (``_SEPARABLE_MID_BYTES`` or a quarter of the output):
    images are taken a chunk at a time, and an image too large for it stays
    on the fused path.
    """
    xb, dw, pw = sc.xb, sc.depthwise_weight, sc.pointwise_weight
    cdt, rdt = result_dtypes(x=xb, weight=pw, bias=sc.bias, depthwise_weight=dw)
    nimg, cin = xb.shape[:2]
    cdw, cout = dw.shape[0], pw.shape[0]
    if (rdt != np.float32 or cdw < _SEPARABLE_MIN_K or nimg == 0
            or cdw // cin >= _MIN_GEMM_ROWS or not _direct_rows.usable(tab)):
        return None
    shape = sc.win.out_shape
    positions = int(np.prod(shape))
    limit = max(_SEPARABLE_MID_BYTES, nimg * cout * positions * cdt.itemsize // 4)
    chunk = min(nimg, limit // (cdw * positions * cdt.itemsize))
    if chunk < 1:
        return None
    onetap = kernel_tables(conv_window(shape, (1,) * len(shape), 1, 0, 1))
    dw2 = dw.reshape(cdw, -1)
    if chunk == nimg:
        mid = run_window(xb, dw2, None, cin, tab, shape, 0)
        return run_window(mid, pw, sc.bias, 1, onetap, shape, act)
    out = np.empty((nimg, cout) + tuple(shape), cdt)
    for i in range(0, nimg, chunk):
        mid = run_window(xb[i:i + chunk], dw2, None, cin, tab, shape, 0)
        out[i:i + chunk] = run_window(mid, pw, sc.bias, 1, onetap, shape, act)
    return out


class SeparableCall(NamedTuple):
    """A validated depthwise-separable call (see :func:`check_separable`)."""

    xb: np.ndarray  # x as (N, C, *spatial)
    depthwise_weight: np.ndarray  # (C * mult, 1, *kernel)
    pointwise_weight: np.ndarray  # (C_out, C * mult)
    bias: np.ndarray | None
    win: Window
    unbatched: bool


def check_separable(x: ArrayLike, depthwise_weight: ArrayLike, pointwise_weight: ArrayLike,
                    bias: ArrayLike | None, stride: object, padding: Padding, dilation: object,
                    padding_mode: str) -> SeparableCall:
    """Validate the arguments of :func:`separable_conv` (shared with its backward)."""
    x = as_array("x", x)
    dw, xb, unbatched = _depthwise_weight(x, depthwise_weight, "depthwise_weight")
    cdw = dw.shape[0]
    if any(k == 0 for k in dw.shape[2:]):
        raise ValueError(f"depthwise_weight must have non-empty axes, got {dw.shape}")
    pw = _pointwise_weight(pointwise_weight, "pointwise_weight")
    if pw.shape[1] != cdw:
        raise ValueError(
            f"pointwise_weight.shape[1] must equal depthwise_weight.shape[0] = {cdw}, "
            f"got pointwise_weight.shape={pw.shape}"
        )
    if pw.shape[0] == 0:
        raise ValueError("pointwise_weight must have at least one output channel")
    b = _bias(bias, pw.shape[0])
    win = conv_window(xb.shape[2:], dw.shape[2:], stride, padding, dilation)
    check_padding_mode(padding_mode, win)
    return SeparableCall(xb, dw, pw, b, win, unbatched)
