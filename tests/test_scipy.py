"""Single-channel cross-checks against scipy.ndimage.correlate (an independent implementation)."""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close

import numbaconv

ndimage = pytest.importorskip("scipy.ndimage")

# numbaconv padding_mode -> scipy.ndimage mode
SCIPY_MODE = {
    "zeros": "constant",
    "reflect": "mirror",
    "replicate": "nearest",
    "circular": "wrap",
    "symmetric": "reflect",
}


@pytest.mark.parametrize("mode", sorted(SCIPY_MODE))
@pytest.mark.parametrize("shape, kernel", [((31,), (5,)), ((12, 15), (3, 5)),
                                           ((7, 8, 9), (3, 3, 3)), ((5, 6, 5, 6), (3, 1, 3, 3))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_same_padding_matches_ndimage_correlate(rng, mode, shape, kernel, dtype):
    x = rng.standard_normal(shape).astype(dtype)
    k = rng.standard_normal(kernel).astype(dtype)
    expected = ndimage.correlate(x.astype(np.float64), k.astype(np.float64),
                                 mode=SCIPY_MODE[mode])
    y = numbaconv.conv(x[None, None], k[None, None], padding="same", padding_mode=mode)
    assert_close(y[0, 0], expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_valid_region_matches_ndimage(rng, dtype):
    x = rng.standard_normal((20, 17)).astype(dtype)
    k = rng.standard_normal((5, 4)).astype(dtype)
    full = ndimage.correlate(x.astype(np.float64), k.astype(np.float64), mode="constant",
                             origin=(-2, -2))  # window anchored at its first tap
    y = numbaconv.conv(x[None, None], k[None, None])
    assert_close(y[0, 0], full[:16, :14], dtype)
