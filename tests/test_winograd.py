"""The Winograd F(2, 3) path of 3-wide kernels at stride 1, against the independent reference.

:func:`numbaconv._winograd.usable` sends these convolutions there (2-D and
3-D, 16 or more channels in and out, one group); each test checks whether it
was taken. 1-D cases check that the tile GEMM kept them.
"""

from __future__ import annotations

import numba
import numpy as np
import pytest
from checks import assert_close
from reference import conv_ref, conv_transpose_ref, conv_weight_grad_ref

import numbaconv
from numbaconv import _implicit, _winograd, _winograd_grad
from numbaconv._geometry import conv_window
from numbaconv.convolution import kernel_tables

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def calls(count_calls, monkeypatch):
    """How many times the Winograd kernel ran (every batch taken as enough tiles)."""
    monkeypatch.setattr(_winograd, "_MIN_PRODUCTS", 0)
    return count_calls(_winograd, "winograd")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_matches_reference(rng, calls, d, mode, dtype):
    # odd and even lengths (a stepped-back last tile), dilation 1 to 3,
    # per-side padding, 17 output channels (a ragged panel), bias, activation
    shape = {1: (29,), 2: (9, 12), 3: (7, 6, 8)}[d]
    dilation = {1: 2, 2: (1, 3), 3: (2, 1, 1)}[d]
    padding = {1: ((1, 3),), 2: ((2, 0), 3), 3: (2, 1, (0, 1))}[d]
    x = rng.standard_normal((2, 16) + shape).astype(dtype)
    w = rng.standard_normal((17, 16) + (3,) * d).astype(dtype)
    b = rng.standard_normal(17).astype(dtype)
    kw = dict(padding=padding, dilation=dilation, padding_mode=mode, activation="leaky_relu")
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == int(d > 1)
    assert y.dtype == dtype
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_several_small_images_a_job(rng, calls, monkeypatch, dtype):
    """Small images go several to a job (``_IMAGE_TILES``): 1, 2 or 3 of 7 images a
    job (a ragged last job), in 2-D and 3-D, with stepped-back tiles, a dilation, the
    padding modes, bias and activations."""
    monkeypatch.setattr(_winograd, "_BIG_WEIGHTS", 0)  # (any weights)
    seen = []
    run = _winograd.winograd_conv
    monkeypatch.setattr(_winograd, "winograd_conv",
                        lambda *a: (seen.append(a[-4]), run(*a))[1])  # (its ``imgs``)
    cases = [((5, 7), 1, "zeros", "relu"), ((6, 6), (2, 1), "circular", None),
             ((3, 5, 4), 1, "reflect", "gelu")]
    for shape, dilation, mode, act in cases:
        d = len(shape)
        x = rng.standard_normal((7, 16) + shape).astype(dtype)
        w = rng.standard_normal((17, 16) + (3,) * d).astype(dtype)
        b = rng.standard_normal(17).astype(dtype)
        kw = dict(padding=1, dilation=dilation, padding_mode=mode, activation=act)
        ref = conv_ref(x, w, b, **kw)
        tab = kernel_tables(conv_window(shape, (3,) * d, 1, 1, dilation), mode)
        per_img = int(np.prod(_winograd.tile_plan(tab, _winograd._TILES).ntax))
        for share in (1, 2, 3):
            monkeypatch.setattr(_winograd, "_IMAGE_TILES", share * per_img)
            seen.clear()
            assert_close(numbaconv.conv(x, w, b, **kw), ref, dtype)
            want = 1 if share == 1 else min(share, -(-7 // numba.get_num_threads()))
            assert seen == [want], (shape, share, seen)
    assert calls[0] == 9


def test_few_tiles_with_large_weights_take_winograd():
    """2048 tile-point products a channel pair are enough when the weights take 1 MB or more
    (the implicit GEMM reads them again for every image) and a point's transformed weights
    at most 1 MB (they stay in L2); else more than 4096."""
    tab = kernel_tables(conv_window((7, 7), (3, 3), 1, 1, 1))  # 16 tiles an image
    assert _winograd.pays_off(tab, 8, 256, 256, 4)  # 8 x 16 x 16 = 2048; 2.4 MB, 256 KB
    assert _winograd.pays_off(tab, 8, 512, 512, 4)  # 9.4 MB, 1 MB a point
    assert not _winograd.pays_off(tab, 7, 512, 512, 4)
    assert not _winograd.pays_off(tab, 8, 160, 160, 4)  # 922 KB of weights
    assert not _winograd.pays_off(tab, 8, 1024, 1024, 4)  # 4 MB a point
    assert not _winograd.pays_off(tab, 8, 512, 512, 8)
    assert _winograd.pays_off(tab, 17, 16, 16, 4)  # more than 4096, whatever the weights


@pytest.fixture
def grad_calls(count_calls):
    """How many times the Winograd weight gradient ran."""
    return count_calls(_winograd_grad, "weight_gradient")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_backward_matches_reference(rng, calls, grad_calls, d, mode, dtype):
    """Weight gradient (its own kernel) and input gradient (conv_transpose at stride 1)."""
    shape = {1: (29,), 2: (9, 12), 3: (7, 6, 8)}[d]
    dilation = {1: 2, 2: (1, 3), 3: (2, 1, 1)}[d]
    padding = {1: ((1, 3),), 2: ((2, 0), 3), 3: (2, 1, (0, 1))}[d]
    cin = 40 if d == 2 else 16  # 40: a ragged panel of input channels
    x = rng.standard_normal((2, cin) + shape).astype(dtype)
    w = rng.standard_normal((17, cin) + (3,) * d).astype(dtype)
    kw = dict(padding=padding, dilation=dilation, padding_mode=mode)
    g = rng.standard_normal(numbaconv.conv(x, w, **kw).shape).astype(dtype)
    calls[0] = 0
    grads = numbaconv.conv_backward(g, x, w, **kw)
    # other modes: onto the padded input, then folded
    assert grad_calls[0] == calls[0] == int(d > 1)
    assert grads.weight.dtype == dtype
    assert_close(grads.weight, conv_weight_grad_ref(x, g, (3,) * d, **kw), dtype)
    # the input gradient by linearity: <conv(x'), g> = <x', grad> for a random x'
    xd = rng.standard_normal(x.shape)
    np.testing.assert_allclose(np.vdot(conv_ref(xd, w, **kw), g), np.vdot(xd, grads.input),
                               rtol=1e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("d", [2, 3])
def test_many_jobs_and_unbatched(rng, calls, d):
    """Long last axes (several segments of tiles per row) and many rows of tiles."""
    shape = (37, 150) if d == 2 else (5, 9, 150)
    x = rng.standard_normal((3, 20) + shape).astype(np.float32)
    w = rng.standard_normal((40, 20) + (3,) * d).astype(np.float32)
    y = numbaconv.conv(x, w, padding="same")
    assert_close(y, conv_ref(x, w, padding="same"), np.float32)
    assert_close(numbaconv.conv(x[1], w, padding="same"), y[1], np.float32)
    assert calls[0] == 2
    g = rng.standard_normal(y.shape).astype(np.float32)
    dw = numbaconv.conv_backward(g, x, w, padding="same", input_grad=False).weight
    assert_close(dw, conv_weight_grad_ref(x, g, (3,) * d, padding="same"), np.float32)


@pytest.mark.parametrize("n_out, dil, taken", [(4, 2, True), (3, 2, False), (2, 1, True),
                                               (1, 1, False)])
def test_shortest_axes(rng, calls, n_out, dil, taken):
    """An axis needs ``2 * dilation`` outputs for one tile; shorter ones use the GEMM."""
    x = rng.standard_normal((1, 16, 5, n_out + 2 * dil)).astype(np.float64)
    w = rng.standard_normal((16, 16, 3, 3))
    y = numbaconv.conv(x, w, dilation=(1, dil))
    assert calls[0] == int(taken)
    assert_close(y, conv_ref(x, w, dilation=(1, dil)), np.float64)


def test_not_taken_elsewhere(rng, calls):
    x = rng.standard_normal((1, 16, 8, 8)).astype(np.float32)
    for w, kw in [((16, 16, 3, 3), dict(stride=2)), ((16, 8, 3, 3), dict(groups=2)),
                  ((16, 16, 3, 2), {}), ((8, 16, 3, 3), {})]:
        numbaconv.conv(x, rng.standard_normal(w).astype(np.float32), **kw)
    x8 = rng.standard_normal((1, 8, 8, 8)).astype(np.float32)
    numbaconv.conv(x8, rng.standard_normal((16, 8, 3, 3)).astype(np.float32))
    assert calls[0] == 0


@pytest.mark.parametrize("dtype", DTYPES)
def test_transposed_stride_one(rng, calls, dtype):
    """conv_transpose at stride 1 is a convolution by the flipped kernel: the same path."""
    x = rng.standard_normal((2, 24, 7, 10)).astype(dtype)
    w = rng.standard_normal((24, 16, 3, 3)).astype(dtype)
    b = rng.standard_normal(16).astype(dtype)
    kw = dict(padding=1, dilation=(2, 1))
    y = numbaconv.conv_transpose(x, w, b, **kw)
    assert calls[0] == 1
    assert_close(y, conv_transpose_ref(x, w, b, **kw), dtype)


def test_adjoint_and_linear(rng, calls):
    """<conv(x), g> = <x, conv_transpose(g)>, and conv is linear in x."""
    x = rng.standard_normal((2, 16, 11, 9))
    w = rng.standard_normal((20, 16, 3, 3))
    y = numbaconv.conv(x, w, padding=1)
    g = rng.standard_normal(y.shape)
    xt = numbaconv.conv_transpose(g, w, padding=1)
    np.testing.assert_allclose(np.vdot(y, g), np.vdot(x, xt), rtol=1e-10)
    x2 = rng.standard_normal(x.shape)
    assert_close(numbaconv.conv(2 * x - x2, w, padding=1),
                 2 * y - numbaconv.conv(x2, w, padding=1), np.float64)
    assert calls[0] == 4


def test_non_finite_inputs(rng, calls):
    """Non-finite inputs give non-finite outputs exactly where direct summation does.

    An output that direct summation makes ``+inf`` may come out NaN (the
    transforms subtract samples), as with every fast convolution algorithm.
    """
    x = rng.standard_normal((1, 16, 8, 9))
    x[0, 3, 2, 5] = np.nan
    x[0, 7, 6, 1] = np.inf
    w = np.abs(rng.standard_normal((16, 16, 3, 3))) + 0.1
    y = numbaconv.conv(x, w, padding=1)
    assert calls[0] == 1
    ref = conv_ref(x, w, padding=1)
    np.testing.assert_array_equal(np.isfinite(y), np.isfinite(ref))
    assert_close(np.where(np.isfinite(ref), y, 0), np.where(np.isfinite(ref), ref, 0),
                 np.float64)


@pytest.mark.parametrize("n_out, dil", [(n, s) for s in (1, 2, 3) for n in range(2 * s, 4 * s + 3)])
def test_axis_tiles_write_each_output_once(n_out, dil):
    starts, masks = _winograd.axis_tiles(n_out, dil)
    written = np.zeros(n_out, int)
    for s, m in zip(starts, masks):
        assert 0 <= s and s + dil < n_out  # the tile's samples lie in the virtual axis
        for bit in (0, 1):
            if m >> bit & 1:
                written[s + bit * dil] += 1
    np.testing.assert_array_equal(written, 1)


@pytest.mark.parametrize("dtype", DTYPES)
def test_few_tiles_take_the_implicit_gemm(rng, count_calls, dtype):
    """Calls of at most 4096 tile-point products a channel pair (256 tiles in 2-D, 64 in 3-D)
    go to the implicit GEMM, whose weights need no transform; more take Winograd."""
    wino = count_calls(_winograd, "winograd")
    implicit = count_calls(_implicit, "implicit")
    # (images, spatial shape) and whether Winograd takes them
    cases = [((1, 32, 32), False), ((2, 32, 32), True),  # 256 and 512 tiles
             ((1, 3, 5), False), ((3, 16, 7), False),  # 6 and 96 tiles (narrow rows)
             ((1, 8, 8, 8), False), ((2, 8, 7, 8), True)]  # 64 and 128 3-D tiles
    for shape, taken in cases:
        d = len(shape) - 1
        x = rng.standard_normal((shape[0], 20) + shape[1:]).astype(dtype)
        w = rng.standard_normal((24, 20) + (3,) * d).astype(dtype)
        b = rng.standard_normal(24).astype(dtype)
        wino[0] = implicit[0] = 0
        kw = dict(padding=1, padding_mode="reflect", activation="relu")
        y = numbaconv.conv(x, w, b, **kw)
        assert (wino[0], implicit[0]) == ((1, 0) if taken else (0, 1)), shape
        assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("tiles", [64, 3])
def test_stepped_back_tiles_before_the_tile_they_follow(rng, calls, monkeypatch, tiles, dtype):
    """At dilation 2 or 3 the tile stepped back at an axis's end starts before the one it
    follows; jobs of every length (3 tiles: some start on such a tile's predecessor) read
    their lowest to their highest start. These read past their samples and wrote garbage."""
    monkeypatch.setattr(_winograd, "_TILES", tiles)
    for n, dil in [(11, 2), (7, 2), (10, 3), (17, 3)]:
        starts, _ = _winograd.axis_tiles(n, dil)
        assert (np.diff(starts) < 0).any()  # the case this test is about
        x = rng.standard_normal((2, 16, 6, n)).astype(dtype)
        w = rng.standard_normal((16, 16, 3, 3)).astype(dtype)
        kw = dict(padding=dil, dilation=dil)
        y = numbaconv.conv(x, w, **kw)
        assert_close(y, conv_ref(x, w, **kw), dtype)
        g = rng.standard_normal(y.shape).astype(dtype)
        dw = numbaconv.conv_backward(g, x, w, input_grad=False, **kw).weight
        assert_close(dw, conv_weight_grad_ref(x, g, (3, 3), **kw), dtype)
    x3 = rng.standard_normal((1, 24, 5, 7, 11)).astype(dtype)  # the case that showed it
    w3 = rng.standard_normal((16, 24, 3, 3, 3)).astype(dtype)
    assert_close(numbaconv.conv(x3, w3, padding=2, dilation=2),
                 conv_ref(x3, w3, padding=2, dilation=2), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_transformed_panels_layout(rng, dtype, d):
    """``up[xi * npan + q, c, j] = sum_k m[xi, k] w3[q NR + j, c, k]``: whole and ragged groups
    of channels, one and two vectors a panel, strided weights; an inf weight makes NaN or inf
    only where ``m`` mixes it in, as in the products (zeros of ``m`` are skipped)."""
    vl = 64 // np.dtype(dtype).itemsize
    m = _winograd._kron_g(d, dtype)
    for cout, cin, nr in [(2 * vl, 5, 2 * vl), (3 * vl + 3, 7, 2 * vl), (vl - 3, 9, vl)]:
        w3 = rng.standard_normal((cin, cout, 3**d)).astype(dtype).transpose(1, 0, 2)
        w3[cout - 1, cin - 1, 0] = np.inf
        up = _winograd.transformed_panels(m, w3, nr)
        npan = -(-cout // nr)
        wp = np.zeros((npan * nr, cin, 3**d))
        wp[:cout] = w3
        with np.errstate(invalid="ignore"):
            want = np.stack([(wp * m[i]).sum(axis=2, where=m[i] != 0) for i in range(len(m))])
        want = want.reshape(len(m), npan, nr, cin).transpose(0, 1, 3, 2)
        assert up.shape == (len(m) * npan, cin, nr) and up.dtype == dtype
        got = up.reshape(want.shape)
        finite = np.isfinite(want)
        assert_close(got[finite], want[finite], dtype)
        assert np.array_equal(np.isfinite(got), finite)
