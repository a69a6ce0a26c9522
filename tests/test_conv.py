"""conv and its family against the independent reference, over ranks 1-4 and every parameter."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from checks import assert_close
from reference import conv_ref, depthwise_ref, separable_ref

import numbaconv
from numbaconv import _core, _direct_rows
from numbaconv import convolution as conv_module

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
ACTIVATIONS = [None, "relu", "leaky_relu", "sigmoid", "tanh", "gelu", "silu", "elu"]
DTYPES = [np.float32, np.float64]


def _cases():
    """A covering sample: every rank x mode x dtype, cycling through the other parameters."""
    strides = [1, 2, "axes", 3]
    paddings = [0, 1, "same", "valid", "axes", "pairs"]
    dilations = [1, 2, "axes"]
    layouts = [(1, 8), (2, 8), ("dw", 8), (1, 5), (1, 3), (2, 6), ("dw", 4)]
    kernels = [3, 2, "mixed", 1]
    i = 0
    for d in (1, 2, 3, 4):
        for mode, dtype in itertools.product(MODES, DTYPES):
            for _ in range(3 if d < 4 else 2):
                yield pytest.param(
                    d, mode, dtype,
                    strides[i % 4], paddings[i % 6], dilations[i % 3], layouts[i % 7],
                    kernels[i % 4], ACTIVATIONS[i % 8], bool(i % 2),
                    id=f"d{d}-{mode}-{np.dtype(dtype).name}-{i}",
                )
                i += 1


def _per_axis(v, d, choices):
    return tuple(choices[a % len(choices)] for a in range(d)) if v == "axes" else v


@pytest.mark.parametrize(
    "d, mode, dtype, stride, padding, dilation, layout, ksize, activation, with_bias",
    list(_cases()),
)
def test_conv_matches_reference(rng, d, mode, dtype, stride, padding, dilation, layout, ksize,
                                activation, with_bias):
    cin = 4
    g, cout = layout
    groups = cin if g == "dw" else g
    kernel = tuple([1, 2, 3][a % 3] for a in range(d)) if ksize == "mixed" else (ksize,) * d
    stride = _per_axis(stride, d, [1, 2])
    dilation = _per_axis(dilation, d, [2, 1])
    if padding == "axes":
        padding = tuple([1, 0, 2][a % 3] for a in range(d))
    elif padding == "pairs":
        padding = tuple([(0, 2), (1, 0), (2, 1)][a % 3] for a in range(d))
    size = {1: 11, 2: 7, 3: 6, 4: 5}[d]
    shape = tuple(size + a % 2 for a in range(d))
    x = rng.standard_normal((2, cin) + shape).astype(dtype)
    w = rng.standard_normal((cout, cin // groups) + kernel).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype) if with_bias else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
              padding_mode=mode, activation=activation)
    y = numbaconv.conv(x, w, b, **kw)
    assert y.dtype == dtype
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_many_tiles_chunks_and_images(rng, dtype, monkeypatch):
    """Enough output for several tiles per image and several image chunks."""
    monkeypatch.setattr(conv_module, "_GEMM_PLANE_BYTES", 1)  # one image per chunk
    x = rng.standard_normal((3, 5, 40, 37)).astype(dtype)
    w = rng.standard_normal((9, 5, 3, 3)).astype(dtype)
    b = rng.standard_normal(9).astype(dtype)
    kw = dict(padding=(2, 1), dilation=(2, 1), padding_mode="reflect", activation="tanh")
    assert_close(numbaconv.conv(x, w, b, **kw), conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mult", [1, 3])
def test_depthwise(rng, dtype, mult):
    x = rng.standard_normal((2, 5, 9, 10)).astype(dtype)
    w = rng.standard_normal((5 * mult, 1, 3, 2)).astype(dtype)
    b = rng.standard_normal(5 * mult).astype(dtype)
    kw = dict(stride=(2, 1), padding="same", dilation=(1, 2), padding_mode="replicate")
    y = numbaconv.depthwise_conv(x, w, b, activation="silu", **kw)
    assert_close(y, depthwise_ref(x, w, bias=b, activation="silu", **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_pointwise(rng, dtype, d):
    x = rng.standard_normal((2, 6) + (5,) * d).astype(dtype)
    w = rng.standard_normal((7, 6)).astype(dtype)
    b = rng.standard_normal(7).astype(dtype)
    y = numbaconv.pointwise_conv(x, w, b, activation="relu")
    ref = conv_ref(x, w.reshape(w.shape + (1,) * d), b, activation="relu")
    assert_close(y, ref, dtype)
    w4 = w.reshape(w.shape + (1,) * d)
    assert_close(numbaconv.pointwise_conv(x[0], w4, b, activation="relu"), ref[0], dtype)
    wg = rng.standard_normal((8, 3)).astype(dtype)
    assert_close(numbaconv.pointwise_conv(x, wg, groups=2),
                 conv_ref(x, wg.reshape(wg.shape + (1,) * d), groups=2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d, mult, mode", [(1, 1, "zeros"), (2, 1, "reflect"), (2, 2, "circular"),
                                           (3, 1, "symmetric"), (4, 2, "replicate")])
def test_separable(rng, dtype, d, mult, mode):
    c = 3
    x = rng.standard_normal((2, c) + (6,) * d).astype(dtype)
    dw = rng.standard_normal((c * mult, 1) + (3,) * d).astype(dtype)
    pw = rng.standard_normal((5, c * mult)).astype(dtype)
    b = rng.standard_normal(5).astype(dtype)
    kw = dict(stride=2 if d == 2 else 1, padding=1, dilation=1, padding_mode=mode)
    y = numbaconv.separable_conv(x, dw, pw, b, activation="gelu", **kw)
    assert_close(y, separable_ref(x, dw, pw, bias=b, activation="gelu", **kw), dtype)
    y1 = numbaconv.separable_conv(x[1], dw, pw.reshape(pw.shape + (1,) * d), **kw)
    assert_close(y1, separable_ref(x[1:], dw, pw, **kw)[0], dtype)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_rank_aliases(rng, d):
    f = {1: numbaconv.conv1d, 2: numbaconv.conv2d, 3: numbaconv.conv3d}[d]
    x = rng.standard_normal((1, 2) + (6,) * d)
    w = rng.standard_normal((3, 2) + (3,) * d)
    assert_close(f(x, w, padding=1), conv_ref(x, w, padding=1), np.float64)
    wrong = rng.standard_normal((3, 2) + (3,) * (d + 1))
    with pytest.raises(ValueError, match=f"conv{d}d"):
        f(rng.standard_normal((1, 2) + (6,) * (d + 1)), wrong)


def test_unbatched(rng):
    x = rng.standard_normal((3, 8, 9))
    w = rng.standard_normal((4, 3, 3, 3))
    y = numbaconv.conv(x, w, padding="same", padding_mode="circular")
    assert y.shape == (4, 8, 9)
    assert_close(y, conv_ref(x[None], w, padding="same", padding_mode="circular")[0], np.float64)


def test_rank_seven(rng):
    x = rng.standard_normal((1, 2) + (3,) * 7)
    w = rng.standard_normal((2, 2) + (2,) * 7)
    assert_close(numbaconv.conv(x, w, padding=(0, 1) * 3 + (1,)),
                 conv_ref(x, w, padding=(0, 1) * 3 + (1,)), np.float64)


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda a: np.asfortranarray(a), id="fortran"),
        pytest.param(lambda a: a[:, :, ::-1], id="negative-strides"),
        pytest.param(lambda a: np.repeat(a, 2, axis=3)[..., ::2], id="non-contiguous"),
        pytest.param(lambda a: a.astype(a.dtype.newbyteorder(">")), id="byte-swapped"),
        pytest.param(lambda a: np.broadcast_to(a[:1], a.shape), id="read-only-broadcast"),
    ],
)
def test_memory_layouts(rng, make):
    x = rng.standard_normal((2, 3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    xs = make(x)
    expected = conv_ref(np.array(xs), w, padding=1, padding_mode="reflect")
    y = numbaconv.conv(xs, w, padding=1, padding_mode="reflect")
    assert_close(y, expected, np.float32)
    ws = make(w)
    assert_close(numbaconv.conv(x, ws, padding=1), conv_ref(x, np.array(ws), padding=1),
                 np.float32)


def test_read_only_input_is_not_modified(rng):
    x = rng.standard_normal((2, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    b = rng.standard_normal(4).astype(np.float32)
    copies = [a.copy() for a in (x, w, b)]
    for a in (x, w, b):
        a.flags.writeable = False
    y = numbaconv.conv(x, w, b, padding="same", activation="relu")
    for a, c in zip((x, w, b), copies):
        np.testing.assert_array_equal(a, c)
    assert_close(y, conv_ref(x, w, b, padding="same", activation="relu"), np.float32)


@pytest.mark.parametrize(
    "dtype, expected",
    [(np.float16, np.float16), (np.int32, np.float64), (np.uint8, np.float64),
     (np.bool_, np.float64), (np.int64, np.float64)],
)
def test_dtype_policy(rng, dtype, expected):
    x = (rng.standard_normal((1, 2, 7, 7)) * 3).astype(dtype)
    w = (rng.standard_normal((3, 2, 3, 3)) * 3).astype(dtype)
    y = numbaconv.conv(x, w, padding=1)
    assert y.dtype == expected
    ref = conv_ref(x.astype(np.float64), w.astype(np.float64), padding=1)
    tol = 2e-3 if dtype == np.float16 else 1e-12
    scale = np.abs(ref).max()
    assert np.abs(y.astype(np.float64) - ref).max() <= tol * max(scale, 1)


def test_mixed_float_dtypes_promote(rng):
    x = rng.standard_normal((1, 2, 6)).astype(np.float32)
    w = rng.standard_normal((2, 2, 3))
    y = numbaconv.conv(x, w)
    assert y.dtype == np.float64
    assert_close(y, conv_ref(x, w), np.float64)


@pytest.mark.parametrize("cout_groups", [(8, 1), (4, 4)])
def test_empty_batch(rng, cout_groups):
    cout, groups = cout_groups
    x = np.zeros((0, 4, 9, 9), np.float32)
    w = rng.standard_normal((cout, 4 // groups, 3, 3)).astype(np.float32)
    y = numbaconv.conv(x, w, stride=2, groups=groups)
    assert y.shape == (0, cout, 4, 4) and y.dtype == np.float32


def test_nan_and_inf_propagate(rng):
    x = rng.standard_normal((1, 2, 6, 6))
    x[0, 0, 2, 3] = np.nan
    x[0, 1, 4, 4] = np.inf
    w = np.abs(rng.standard_normal((3, 2, 3, 3))) + 0.1
    y = numbaconv.conv(x, w, padding=1)
    ref = conv_ref(x, w, padding=1)
    assert np.isnan(y).any() and np.isposinf(y).any()
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
    wd = np.abs(rng.standard_normal((2, 1, 3, 3))) + 0.1
    wd[1, 0, 0, 0] = np.inf  # inf weight times a zero pad is NaN, as IEEE says
    y = numbaconv.depthwise_conv(x, wd, padding=1)
    ref = depthwise_ref(x, wd, padding=1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))


def test_param_count():
    assert numbaconv.param_count("conv", 32, 64, (3, 3)) == 18432
    assert numbaconv.param_count("separable", 32, 64, (3, 3)) == 2336
    assert numbaconv.param_count("depthwise", 32, 64, (3, 3), bias=True) == 64 * 9 + 64
    assert numbaconv.param_count("pointwise", 32, 64, 1, groups=2) == 64 * 16
    w = np.zeros((64, 16, 3, 3))
    assert w.size == numbaconv.param_count("conv", 32, 64, (3, 3), groups=2)
    with pytest.raises(ValueError, match="layer"):
        numbaconv.param_count("dense", 1, 1, 1)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_long_signal_many_tiles(rng, dtype, mode):
    """1-D signals build their virtual segment per tile: cover several tiles and groups."""
    x = rng.standard_normal((2, 4, 2500)).astype(dtype)
    w = rng.standard_normal((6, 2, 3)).astype(dtype)
    b = rng.standard_normal(6).astype(dtype)
    kw = dict(stride=2, padding=((5, 2),), dilation=3, groups=2, padding_mode=mode)
    assert_close(numbaconv.conv(x, w, b, **kw), conv_ref(x, w, b, **kw), dtype)
    dw = rng.standard_normal((8, 1, 4)).astype(dtype)
    pw = rng.standard_normal((5, 8)).astype(dtype)
    kw = dict(padding="same", dilation=2, padding_mode=mode)
    assert_close(numbaconv.separable_conv(x, dw, pw, **kw), separable_ref(x, dw, pw, **kw),
                 dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_direct_schedule_in_bands_of_rows(rng, count_calls, monkeypatch, dtype, mode):
    """One image of one channel (a SciPy-style call) is cut into bands of output rows, one job
    each: 1 to every row a band, in 2-D and 3-D, at a stride and a dilation (the plane sweeps)
    and at stride 1 (the row sweeps, with zero padding), with an activation."""
    sweeps = count_calls(_core, "window_direct"), count_calls(_direct_rows, "window_rows")
    for nb in (1, 3, 10**6):
        monkeypatch.setattr(conv_module, "_bands", lambda planes, rows, workers, per, nb=nb:
                            min(nb, rows))
        for shape, k, kw in [((23, 17), (3, 4), dict(stride=(2, 1), dilation=(1, 2))),
                             ((9, 8, 11), (2, 3, 3), dict(stride=1, dilation=(2, 1, 1))),
                             ((30, 19), (5, 5), dict(stride=1))]:
            x = rng.standard_normal((1, 1) + shape).astype(dtype)
            w = rng.standard_normal((1, 1) + k).astype(dtype)
            b = rng.standard_normal(1).astype(dtype)
            kw = dict(kw, padding=2, padding_mode=mode, activation="silu")
            assert_close(numbaconv.conv(x, w, b, **kw), conv_ref(x, w, b, **kw), dtype)
    assert sweeps[0][0] > 0 and (sweeps[1][0] > 0) == (mode == "zeros")


def test_direct_schedule_bands():
    """``_bands``: one band with planes enough for twice the workers, else about ``per`` jobs a
    worker, at most one band a row."""
    assert conv_module._bands(4, 100, 2, 16) == 1
    assert conv_module._bands(1, 100, 2, 16) == 32
    assert conv_module._bands(3, 100, 2, 2) == 2
    assert conv_module._bands(1, 5, 2, 16) == 5


def test_tables_are_keys_by_content():
    """The paths cache what they work out from the tables with the tables as the key: tables
    of the same content are one key, tables differing in any of their arrays are not."""
    from numbaconv._geometry import conv_window, kernel_tables, tables_from_maps

    win = conv_window((6, 7), (3, 3), 1, 1, 1)
    a = kernel_tables(win)
    kernel_tables.cache_clear()
    b = kernel_tables(win)
    assert a is not b and a == b and hash(a) == hash(b) and len({a, b}) == 1
    maps = [np.r_[-1, np.arange(6), -1], np.r_[-1, np.arange(7), -1]]  # zero padding 1
    assert tables_from_maps((6, 7), (3, 3), (1, 1), (1, 1), (6, 7), maps) == a
    maps[0][-1] = 5  # the same shapes, one sample of the maps changed
    assert tables_from_maps((6, 7), (3, 3), (1, 1), (1, 1), (6, 7), maps) != a
    assert kernel_tables(win, "reflect") != a  # the maps differ
    assert kernel_tables(conv_window((6, 7), (3, 3), 1, 1, 2)) != a  # geom and voff differ
    assert kernel_tables(conv_window((6, 7), (3, 1), 1, 1, 1)) != a
    assert a != a.key and not any(arr.flags.writeable for arr in (a.geom, a.maps, a.voff))
