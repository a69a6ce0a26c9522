"""The 1-D Winograd F(4, 3) path of 3-tap kernels at stride 1, against the independent reference.

:func:`numbaconv._winograd1d.usable` sends these convolutions there (1-D, one
group, 64 or more channels in and 32 or more out, ``4 * dilation`` outputs);
each test checks whether it was taken. The dilations cover every form of the
output transform: runs of 1, 2, 4 and 8 outputs permuted in vectors, runs of
a multiple of a vector, other dilations through the scalar loop, and jobs
shorter than a block.
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from reference import conv_ref, conv_transpose_ref

import numbaconv
from numbaconv import _winograd1d

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def calls(count_calls):
    """How many times the 1-D Winograd kernel ran."""
    return count_calls(_winograd1d, "winograd1d")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("cin", [70, 130])
def test_matches_reference(rng, calls, mode, dtype, cin):
    # 70 or 130 input channels (a masked vector tail; the products with the output
    # channels as rows, or with the tiles: _ROWS_FORM_BELOW), 33 output channels (a
    # ragged panel), per-side padding, bias, activation; lengths with leftovers in
    # some phases (stepped-back tiles) and none in others
    x = rng.standard_normal((2, cin, 203)).astype(dtype)
    w = rng.standard_normal((33, cin, 3)).astype(dtype)
    b = rng.standard_normal(33).astype(dtype)
    for dilation in (1, 2, 3, 4, 8, 16, 20):
        kw = dict(padding=((3, 1),), dilation=dilation, padding_mode=mode,
                  activation="leaky_relu")
        y = numbaconv.conv(x, w, b, **kw)
        assert y.dtype == dtype
        assert_close(y, conv_ref(x, w, b, **kw), dtype)
    assert calls[0] == 7


@pytest.mark.parametrize("dtype", DTYPES)
def test_long_signals_and_jobs_shorter_than_a_block(rng, calls, dtype):
    """Many jobs per image, and a dilation wider than a job (runs of consecutive tiles)."""
    x = rng.standard_normal((3, 64, 3001)).astype(dtype)
    w = rng.standard_normal((40, 64, 3)).astype(dtype)
    for dilation, padding, mode in [(1, "same", "zeros"), (4, 0, "zeros"), (200, 5, "reflect"),
                                    (500, 0, "zeros")]:
        kw = dict(padding=padding, dilation=dilation, padding_mode=mode, activation="relu")
        assert_close(numbaconv.conv(x, w, **kw), conv_ref(x, w, **kw), dtype)
    assert calls[0] == 4
    assert_close(numbaconv.conv(x[1], w, padding="same"), conv_ref(x[1:2], w, padding="same")[0],
                 dtype)
    assert calls[0] == 5


def test_slab_bounded_whatever_the_dilation():
    """A wide dilation reads each tile's 6 samples as runs: the slab stays 6 columns a tile."""
    for dil in (200, 10_000, 100_000):
        plan = _winograd1d.tile_plan(4 * dil + 3, dil, 64, 32, 4)
        assert plan.compact and plan.width == 6 * plan.seg
    plan = _winograd1d.tile_plan(16_000, 4, 64, 64, 4)
    assert not plan.compact and plan.width < 6 * plan.seg


def test_long_signals_plans_not_cached(rng, calls, monkeypatch):
    """Plans of long axes (tables of 4 bytes an output) are made per call, not kept."""
    monkeypatch.setattr(_winograd1d, "_CACHED_OUTPUTS", 100)
    _winograd1d._cached_plan.cache_clear()
    x = rng.standard_normal((1, 64, 302))
    w = rng.standard_normal((32, 64, 3))
    assert_close(numbaconv.conv(x, w), conv_ref(x, w), np.float64)
    assert calls[0] == 1 and _winograd1d._cached_plan.cache_info().currsize == 0
    numbaconv.conv(x[..., :90], w)
    assert calls[0] == 2 and _winograd1d._cached_plan.cache_info().currsize == 1


@pytest.mark.parametrize("n_out, dil", [(n, s) for s in (1, 2, 3, 4, 7) for n in
                                        range(4 * s, 8 * s + 3)] + [(1000, 200), (3000, 700)])
def test_axis_tiles_write_each_output_once(n_out, dil):
    starts, masks, blocks = _winograd1d.axis_tiles(n_out, dil)
    written = np.zeros(n_out, int)
    for s, m in zip(starts, masks):
        assert 0 <= s and s + 3 * dil < n_out  # the tile's samples lie in the virtual axis
        for i in range(4):
            if m >> i & 1:
                written[s + i * dil] += 1
    np.testing.assert_array_equal(written, 1)
    np.testing.assert_array_equal(masks[:blocks * dil], 15)
    t = np.arange(blocks * dil)
    np.testing.assert_array_equal(starts[:blocks * dil], 4 * dil * (t // dil) + t % dil)


@pytest.mark.parametrize("n_out, dil, taken", [(8, 2, True), (7, 2, False), (4, 1, True),
                                               (3, 1, False)])
def test_shortest_axes(rng, calls, n_out, dil, taken):
    """An axis needs ``4 * dilation`` outputs for one tile; shorter ones use another path."""
    x = rng.standard_normal((1, 64, n_out + 2 * dil))
    w = rng.standard_normal((32, 64, 3))
    y = numbaconv.conv(x, w, dilation=dil)
    assert calls[0] == int(taken)
    assert_close(y, conv_ref(x, w, dilation=dil), np.float64)


def test_not_taken_elsewhere(rng, calls):
    x = rng.standard_normal((1, 64, 50)).astype(np.float32)
    for w, kw in [((64, 64, 3), dict(stride=2)), ((64, 32, 3), dict(groups=2)),
                  ((64, 64, 5), {}), ((16, 64, 3), {}), ((64, 64, 1), {})]:
        numbaconv.conv(x, rng.standard_normal(w).astype(np.float32), **kw)
    numbaconv.conv(x[:, :48], rng.standard_normal((64, 48, 3)).astype(np.float32))
    numbaconv.conv(rng.standard_normal((1, 64, 8, 8)).astype(np.float32),
                   rng.standard_normal((64, 64, 3, 3)).astype(np.float32))
    assert calls[0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_stride_one(rng, calls, dtype):
    """conv_transpose at stride 1 is a convolution by the flipped kernel: the same path."""
    x = rng.standard_normal((2, 64, 57)).astype(dtype)
    w = rng.standard_normal((64, 48, 3)).astype(dtype)
    b = rng.standard_normal(48).astype(dtype)
    kw = dict(padding=2, dilation=3)
    y = numbaconv.conv_transpose(x, w, b, **kw)
    assert calls[0] == 1
    assert_close(y, conv_transpose_ref(x, w, b, **kw), dtype)


def test_adjoint_and_linear(rng, calls):
    """<conv(x), g> = <x, conv_transpose(g)>, and conv is linear in x."""
    x = rng.standard_normal((2, 64, 90))
    w = rng.standard_normal((64, 64, 3))
    y = numbaconv.conv(x, w, padding=2, dilation=2)
    g = rng.standard_normal(y.shape)
    xt = numbaconv.conv_transpose(g, w, padding=2, dilation=2)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, xt), rtol=1e-10)
    x2 = rng.standard_normal(x.shape)
    assert_close(numbaconv.conv(2 * x - x2, w, padding=2, dilation=2),
                 2 * y - numbaconv.conv(x2, w, padding=2, dilation=2), np.float64)
    assert calls[0] == 4


@pytest.mark.parametrize("dtype", DTYPES)
def test_non_finite_and_huge_inputs(rng, calls, dtype):
    """inf, NaN and overflowing values come out where direct summation puts them.

    F(4, 3)'s transforms mix a tile's 6 samples, so they alone would spread a
    non-finite sample to outputs whose window misses it; the jobs where an
    output came out non-finite are summed directly instead.
    """
    x = rng.standard_normal((2, 64, 700)).astype(dtype)
    x[0, 3, 100] = np.nan
    x[1, 5, 401] = np.inf
    x[1, 6, 650] = -np.inf
    x[0, 7, 500] = np.finfo(dtype).max / 2  # the transforms would overflow; direct sums do not
    w = (np.abs(rng.standard_normal((40, 64, 3))) * 1e-3).astype(dtype)
    for dilation in (1, 4):
        y = numbaconv.conv(x, w, dilation=dilation, activation="tanh")
        ref = conv_ref(x, w, dilation=dilation, activation="tanh")
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
        fin = np.isfinite(ref)
        assert_close(np.where(fin, y, 0), np.where(fin, ref, 0), dtype)
    assert calls[0] == 2


def test_float32_error_near_direct_sums(rng):
    """F(4, 3) in float32, relative to the float64 reference: a few times the direct error."""
    x = rng.standard_normal((4, 256, 500)).astype(np.float32)
    w = rng.standard_normal((64, 256, 3)).astype(np.float32)
    ref = conv_ref(x.astype(np.float64), w.astype(np.float64), dilation=2)
    err = np.abs(numbaconv.conv(x, w, dilation=2) - ref).max() / np.abs(ref).max()
    assert err < 5e-6


@pytest.mark.parametrize("dtype", DTYPES)
def test_random_configurations(rng, calls, dtype):
    """Lengths, dilations, per-side paddings, modes, channel counts and activations drawn at
    random (with an inf or a NaN now and then), against the reference."""
    taken = 0
    for _ in range(40):
        dil = int(rng.choice([1, 2, 3, 4, 5, 8, 9, 16, 17, 33, 64, 130]))
        length = int(rng.integers(6 * dil, 12 * dil + 300))  # 4 dil outputs at least
        mode = MODES[rng.integers(len(MODES))]
        before = int(rng.integers(0, min(2 * dil, length - 1) + 1))
        padding = ((before, int(rng.integers(0, before + 1))),)
        cin, cout = int(rng.choice([64, 65, 96, 127, 128, 129])), int(rng.choice([32, 33, 64]))
        x = rng.standard_normal((int(rng.integers(1, 3)), cin, length)).astype(dtype)
        if rng.random() < 0.2:
            x[0, rng.integers(cin), rng.integers(length)] = rng.choice([np.nan, np.inf, -np.inf])
        w = rng.standard_normal((cout, cin, 3)).astype(dtype)
        b = rng.standard_normal(cout).astype(dtype) if rng.random() < 0.5 else None
        kw = dict(padding=padding, dilation=dil, padding_mode=mode,
                  activation=[None, "relu", "leaky_relu", "elu"][rng.integers(4)])
        y = numbaconv.conv(x, w, b, **kw)
        ref = conv_ref(x, w, b, **kw)
        np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
        np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
        fin = np.isfinite(ref)
        assert_close(np.where(fin, y, 0), np.where(fin, ref, 0), dtype)
        taken += 1
    assert calls[0] == taken
