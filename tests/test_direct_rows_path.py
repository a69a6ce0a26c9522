"""The row-sweep direct path (few output channels per group, width kept) against the reference.

:func:`numbaconv._direct_rows.window_rows` takes the direct schedule's windows
whose strides are all 1 and whose last axis is zero-padded to its own width
(``'same'`` there, the usual depthwise layer). Each test checks that it was
taken (or not). The shapes give tails of every length, blocks of 1-4 kernel
rows by 1-3 columns, several chunks of rows, small planes copied whole and
larger ones whose chunks read the input itself or the row plane, several input
channels per group, and leading axes padded in every mode.
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from reference import conv_ref

import numbaconv
from numbaconv import _direct_rows

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def calls(count_calls):
    """How many times the row-sweep kernel ran."""
    return count_calls(_direct_rows, "window_rows")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d, shape, kernel, dilation, padding", [
    (1, (37,), (3,), 1, "same"),
    (1, (50,), (7,), 2, "same"),
    (1, (5,), (2,), 1, "same"),  # even kernel: more padding after
    (2, (9, 11), (3, 3), 1, 1),
    (2, (9, 11), (5, 5), 1, 2),
    (2, (12, 13), (7, 7), 1, 3),
    (2, (8, 10), (3, 3), (2, 3), "same"),
    (2, (7, 6), (4, 2), 1, "same"),
    (2, (6, 7), (3, 3), 1, (0, 1)),  # the leading axis unpadded: fewer rows out
    (2, (6, 7), (1, 3), 1, (2, 1)),  # more rows out than in
    (2, (6, 9), (3, 3), 1, ((1, 1), (2, 0))),  # as wide, all the padding before
    (2, (9, 2), (3, 7), 1, "same"),  # padding wider than the rows: the plane only
    (2, (5, 1), (3, 1), 1, (1, 0)),  # rows one wide
    (3, (5, 6, 7), (3, 3, 3), 1, 1),
    (3, (4, 5, 9), (2, 3, 5), (1, 2, 1), "same"),
    # planes of 1024 outputs or more (in 2-D the chunks away from the edges read the input
    # in place; in 1-D, and past a padded leading axis, there are no margin rows for it)
    (1, (1400,), (5,), 1, "same"),
    (2, (40, 30), (3, 3), 1, 1),
    (2, (60, 19), (4, 2), 1, "same"),
    (2, (60, 20), (5, 5), (2, 1), "same"),
    (2, (50, 23), (3, 3), 1, (0, 1)),
    (2, (30, 40), (3, 7), 1, ((2, 0), (6, 0))),
    (3, (6, 12, 20), (3, 3, 3), 1, 1),
])
def test_matches_reference(rng, calls, d, shape, kernel, dilation, padding, dtype):
    x = rng.standard_normal((2, 4) + shape).astype(dtype)
    w = rng.standard_normal((8, 1) + kernel).astype(dtype)  # depthwise, multiplier 2
    b = rng.standard_normal(8).astype(dtype)
    kw = dict(padding=padding, dilation=dilation, groups=4, activation="tanh")
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1
    assert y.dtype == dtype
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_leading_axes_in_every_mode(rng, calls, mode, dtype):
    """Only the last axis must be zero-padded; the rows are padded through their maps."""
    # a small plane (copied whole), and one whose middle chunks read the input in place (its
    # rows only padded along the first axis, so the rows a chunk reads are consecutive)
    for shape, pad, in_place in (((6, 5, 9), (1, 2), False), ((8, 12, 15), (0, 0), True)):
        x = rng.standard_normal((2, 3) + shape).astype(dtype)
        w = rng.standard_normal((3, 1, 3, 3, 1)).astype(dtype)
        kw = dict(padding=((2, 1), pad, (0, 0)), groups=3, padding_mode=mode)
        y = numbaconv.conv(x, w, **kw)
        assert_close(y, conv_ref(x, w, **kw), dtype)
        assert _reads_in_place(shape, (3, 3, 1), kw["padding"]) == in_place
    assert calls[0] == 2


def _reads_in_place(shape, kernel, padding):
    """Whether some chunk of the row sweeps' plan reads the input itself."""
    from numbaconv._geometry import conv_window, kernel_tables

    tab = kernel_tables(conv_window(shape, kernel, 1, padding, 1))
    chunks = _direct_rows.row_plan(tab.geom, tab.maps, _direct_rows._CHUNK)[2]
    return bool((chunks[:, 3] >= 0).any())


@pytest.mark.parametrize("dtype", DTYPES)
def test_channels_per_group_and_widths(rng, calls, dtype):
    """Several input channels summed per output (groups 2, 3 out per group); every tail."""
    for width in range(1, 36):
        x = rng.standard_normal((1, 4, 3, width)).astype(dtype)
        w = rng.standard_normal((6, 2, 3, 3)).astype(dtype)
        b = rng.standard_normal(6).astype(dtype)
        kw = dict(padding=1, groups=2)
        assert_close(numbaconv.conv(x, w, b, **kw), conv_ref(x, w, b, **kw), dtype)
    assert calls[0] == 35


def test_several_chunks_of_rows(rng, calls):
    """A plane taller than one chunk (4096 positions): chunks from the input and the plane."""
    x = rng.standard_normal((3, 2, 1000, 9)).astype(np.float32)
    w = rng.standard_normal((2, 1, 5, 3)).astype(np.float32)
    kw = dict(padding="same", groups=2, activation="relu")
    assert_close(numbaconv.conv(x, w, **kw), conv_ref(x, w, **kw), np.float32)
    assert calls[0] == 1


@pytest.mark.parametrize("rows", [6, 160])  # the plane copied whole, or read in place
def test_neighbouring_rows_do_not_leak(rng, calls, rows):
    """A tap past a row's end reads the next row's first sample: it must count as 0."""
    x = rng.standard_normal((1, 1, rows, 8))
    x[0, 0, 2, 7] = np.inf  # last column: the left taps of row 3, column 0 reach it
    x[0, 0, 4, 0] = np.nan  # first column: the right taps of row 3, column 7 reach it
    x[0, 0, -20 % rows, 7] = -np.inf  # in place: inside the chunk that reads the input
    w = np.abs(rng.standard_normal((1, 1, 3, 3))) + 0.1
    y = numbaconv.conv(x, w, padding=1)
    assert _reads_in_place((rows, 8), (3, 3), 1) == (rows > 6)
    ref = conv_ref(x, w, padding=1)
    np.testing.assert_array_equal(np.isnan(y), np.isnan(ref))
    np.testing.assert_array_equal(np.isposinf(y), np.isposinf(ref))
    np.testing.assert_array_equal(np.isneginf(y), np.isneginf(ref))
    finite = np.isfinite(ref)
    assert_close(y[finite], ref[finite], np.float64)
    w7 = np.ones((1, 1, 3, 7))
    w7[0, 0, 1, 6] = np.inf  # an inf weight times the zero padding is NaN, as on explicit zeros
    y = numbaconv.conv(x, w7, padding="same")
    np.testing.assert_array_equal(np.isnan(y), np.isnan(conv_ref(x, w7, padding="same")))
    assert calls[0] == 2


def test_one_thread_and_two_agree(rng, calls):
    import numba

    x = rng.standard_normal((3, 5, 10, 12)).astype(np.float32)
    w = rng.standard_normal((5, 1, 3, 3)).astype(np.float32)
    before = numba.get_num_threads()
    try:
        numba.set_num_threads(1)
        one = numbaconv.conv(x, w, padding=1, groups=5)
    finally:
        numba.set_num_threads(before)
    np.testing.assert_array_equal(numbaconv.conv(x, w, padding=1, groups=5), one)
    assert calls[0] == 2


def test_other_windows_take_other_paths(rng, calls):
    x = rng.standard_normal((1, 2, 8, 9)).astype(np.float32)
    w = rng.standard_normal((2, 1, 3, 3)).astype(np.float32)
    for kw in (dict(stride=2, padding=1),  # a stride
               dict(padding=0),  # narrower rows out
               dict(padding=1, padding_mode="reflect"),  # the last axis not zero-padded
               dict(padding=((1, 1), (2, 1)))):  # wider rows out
        assert_close(numbaconv.conv(x, w, groups=2, **kw), conv_ref(x, w, groups=2, **kw),
                     np.float32)
    assert calls[0] == 0


@pytest.mark.parametrize("mid_bytes, images_per_pass", [(64 << 20, 3), (1, 1)])
def test_separable_in_two_passes(rng, calls, monkeypatch, mid_bytes, images_per_pass):
    """float32 with 64 or more depthwise channels: row sweeps, then the one-tap product.

    With a tiny budget the intermediate is bounded by a quarter of the output:
    one image at a time.
    """
    from reference import separable_ref

    from numbaconv import _separable_rows, convolution

    monkeypatch.setattr(_separable_rows, "_BAND_BYTES", 1)  # rows too wide for the bands
    monkeypatch.setattr(convolution, "_SEPARABLE_MID_BYTES", mid_bytes)
    x = rng.standard_normal((3, 32, 7, 9)).astype(np.float32)
    dw = rng.standard_normal((64, 1, 3, 3)).astype(np.float32)  # multiplier 2
    pw = rng.standard_normal((160, 64)).astype(np.float32)
    b = rng.standard_normal(160).astype(np.float32)
    kw = dict(padding="same", activation="gelu")
    y = numbaconv.separable_conv(x, dw, pw, b, **kw)
    assert calls[0] == 3 // images_per_pass
    assert y.dtype == np.float32
    assert_close(y, separable_ref(x, dw, pw, b, **kw), np.float32)


def test_separable_stays_fused(rng, calls, monkeypatch):
    """Rows too wide for the bands and float64, float16, few channels, another window, or an
    image too large: fused."""
    from reference import separable_ref

    from numbaconv import _separable_rows, convolution

    monkeypatch.setattr(_separable_rows, "_BAND_BYTES", 1)

    x = rng.standard_normal((2, 64, 6, 6)).astype(np.float32)
    dw = rng.standard_normal((64, 1, 3, 3)).astype(np.float32)
    pw = rng.standard_normal((8, 64)).astype(np.float32)
    for xa, da, pa, kw in ((x.astype(np.float64), dw, pw, dict(padding=1)),
                           (x[:, :16], dw[:16], pw[:, :16], dict(padding=1)),
                           (x, dw, pw, dict(padding=1, stride=2))):
        y = numbaconv.separable_conv(xa, da, pa, **kw)
        assert y.dtype == xa.dtype
        assert_close(y, separable_ref(xa, da, pa, **kw), xa.dtype)
    x16, dw16, pw16 = (a.astype(np.float16) for a in (x, dw, pw))
    half = numbaconv.separable_conv(x16, dw16, pw16, padding=1)
    assert half.dtype == np.float16  # computed in float32 throughout, rounded once at the end
    exact = separable_ref(x16, dw16, pw16, padding=1)
    assert np.max(np.abs(half - exact)) <= 2.0 ** -10 * np.max(np.abs(exact))
    monkeypatch.setattr(convolution, "_SEPARABLE_MID_BYTES", 1)  # a quarter of 8 channels out
    y = numbaconv.separable_conv(x, dw, pw, padding=1)
    assert_close(y, separable_ref(x, dw, pw, padding=1), np.float32)
    assert calls[0] == 0


def test_row_plan_chunks_and_copies():
    """Which chunks read the input in place, and which rows the row plane copies."""
    from numbaconv._geometry import conv_window, kernel_tables

    tab = kernel_tables(conv_window((40, 30), (3, 3), 1, 1, 1))
    copies, offs, chunks, masks, head, plane_len = _direct_rows.row_plan(tab.geom, tab.maps,
                                                                         _direct_rows._CHUNK)
    # output rows 2..37 read plane rows 1..40 with a margin row: all input rows, in place
    assert chunks.tolist() == [[0, 0, 2, -1], [2, 2, 36, 30], [38, 38, 2, -1]]
    # the edge chunks read plane rows 0..3 and 38..41; rows 0 and 41 are the zero padding
    assert copies.tolist() == [[1, 0, 3], [38, 37 * 30, 3]]
    assert offs.tolist() == [-1, 0, 1, 29, 30, 31, 59, 60, 61] and head == 1
    assert plane_len == 1 + 42 * 30 + 1
    # all bits set where a column is inside the row (the sweeps AND the samples with it)
    assert masks[:, :30].tolist() == [[0] + [-1] * 29, [-1] * 30, [-1] * 29 + [0]]
    small = kernel_tables(conv_window((14, 14), (3, 3), 1, 1, 1))
    copies, _, chunks, *_ = _direct_rows.row_plan(small.geom, small.maps, _direct_rows._CHUNK)
    assert chunks.tolist() == [[0, 0, 14, -1]]  # copied whole: 196 outputs
    assert copies.tolist() == [[1, 0, 14]]
