"""The depthwise-separable convolution fused by bands of rows, against the reference.

:func:`numbaconv._separable_rows.separable` takes the separable convolutions
whose depthwise window suits the row sweeps (every stride 1, the last axis
zero-padded to its own width). Each test checks that it was taken (or not).
The shapes give bands whose chunks read the input itself or the row plane,
bands cut short at the end of a plane, last panels narrow and wide, output
channels in whole blocks of rows and not, depthwise multipliers, and leading
axes padded in every mode.
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from reference import separable_ref

import numbaconv
from numbaconv import _microkernel, _separable_rows

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def calls(count_calls):
    """How many times the band kernel ran."""
    return count_calls(_separable_rows, "separable")


def _operands(rng, shape, cin, mult, cout, kernel, dtype):
    x = rng.standard_normal(shape[:1] + (cin,) + shape[1:]).astype(dtype)
    dw = rng.standard_normal((cin * mult, 1) + kernel).astype(dtype)
    pw = rng.standard_normal((cout, cin * mult)).astype(dtype)
    b = rng.standard_normal(cout).astype(dtype)
    return x, dw, pw, b


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape, kernel, mult, cout, band", [
    ((2, 45), (3,), 1, 16, 256),  # 1-D: one row, one band per image
    ((3, 9, 11), (3, 3), 2, 13, 256),  # small planes, read from the row plane
    ((2, 24, 25), (3, 3), 1, 24, 256),  # larger planes: bands read the input itself
    ((2, 24, 25), (5, 5), 1, 9, 50),  # bands of two rows, a narrow last panel
    ((1, 3, 20), (3, 3), 3, 8, 256),  # one image of 3 rows: 2-row bands, for the workers
    ((2, 4, 6, 7), (3, 3, 3), 1, 10, 256),  # 3-D
])
def test_matches_reference(rng, calls, monkeypatch, dtype, shape, kernel, mult, cout, band):
    monkeypatch.setattr(_separable_rows, "_BAND", band)
    x, dw, pw, b = _operands(rng, shape, 5, mult, cout, kernel, dtype)
    kw = dict(padding="same", activation="silu")
    x0 = x.copy()
    y = numbaconv.separable_conv(x, dw, pw, b, **kw)
    assert calls[0] == 1
    assert y.dtype == dtype
    assert np.array_equal(x, x0)
    assert_close(y, separable_ref(x, dw, pw, b, **kw), dtype)


@pytest.mark.parametrize("mode", MODES)
def test_leading_axes_padded_in_every_mode(rng, calls, mode):
    """The last axis unpadded (kernel width 1), the leading ones in ``mode``."""
    x, dw, pw, b = _operands(rng, (2, 26, 23), 4, 1, 8, (3, 1), np.float32)
    kw = dict(padding=(1, 0), padding_mode=mode)
    y = numbaconv.separable_conv(x, dw, pw, b, **kw)
    assert calls[0] == 1
    assert_close(y, separable_ref(x, dw, pw, b, **kw), np.float32)


def test_float16_dilation_and_no_bias(rng, calls):
    """float16 in float32 throughout (rounded once at the end); a dilated window."""
    x, dw, pw, _ = _operands(rng, (2, 21, 19), 6, 1, 7, (3, 3), np.float16)
    kw = dict(padding="same", dilation=2)
    y = numbaconv.separable_conv(x, dw, pw, **kw)
    assert calls[0] == 1
    assert y.dtype == np.float16
    exact = separable_ref(x, dw, pw, **kw)
    assert np.max(np.abs(y - exact)) <= 2.0 ** -10 * np.max(np.abs(exact))


def test_non_finite_inputs(rng, calls):
    """inf and NaN reach exactly the outputs whose windows hold them, as in direct sums."""
    x, dw, pw, b = _operands(rng, (2, 24, 25), 3, 1, 8, (3, 3), np.float64)
    x[0, 1, 0, 0] = np.inf  # a corner: its window reaches into the padding
    x[1, 2, 12, 7] = np.nan
    x[1, 0, 23, 24] = -np.inf
    y = numbaconv.separable_conv(x, dw, pw, b, padding=1)
    assert calls[0] == 1
    want = separable_ref(x, dw, pw, b, padding=1)
    assert np.array_equal(np.isnan(y), np.isnan(want))
    assert np.array_equal(np.isinf(y), np.isinf(want))
    ok = np.isfinite(want)
    assert_close(y[ok], want[ok], np.float64)


def test_other_windows_take_other_paths(rng, calls, monkeypatch):
    x, dw, pw, _ = _operands(rng, (1, 8, 9), 4, 1, 8, (3, 3), np.float32)
    for kw in (dict(stride=2, padding=1),  # a stride
               dict(padding=0),  # narrower rows out
               dict(padding=1, padding_mode="reflect")):  # the last axis not zero-padded
        assert_close(numbaconv.separable_conv(x, dw, pw, **kw), separable_ref(x, dw, pw, **kw),
                     np.float32)
    monkeypatch.setattr(_separable_rows, "_BAND_BYTES", 1)  # rows too wide for a band
    assert_close(numbaconv.separable_conv(x, dw, pw, padding=1),
                 separable_ref(x, dw, pw, padding=1), np.float32)
    assert calls[0] == 0


def test_band_rows():
    vl = _microkernel.lanes(np.float32)
    # as many rows as fit in _BAND positions, preferably a whole number of vectors
    assert _separable_rows.band_rows((56, 56), 128, 8, 4, 2) * 56 % vl == 0
    assert _separable_rows.band_rows((14, 14), 512, 8, 4, 2) * 14 % vl == 0
    assert _separable_rows.band_rows((7, 7), 64, 8, 4, 2) == 7  # no whole number: all rows
    assert _separable_rows.band_rows((1000,), 64, 8, 4, 2) == 1
    # fewer rows when the bands would be fewer than the workers
    assert _separable_rows.band_rows((4, 7), 64, 1, 4, 4) == 1
    # a row whose depthwise sums exceed the buffer
    assert _separable_rows.band_rows((3, 10 ** 6), 64, 1, 4, 2) == 0
