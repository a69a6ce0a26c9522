"""Pooling against explicit loops (and PyTorch when installed), ranks 1-4, every flag."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from checks import assert_close
from reference import pool_ref

import numbaconv

DTYPES = [np.float32, np.float64]


def _cases():
    i = 0
    for d, dtype, ceil_mode in itertools.product((1, 2, 3, 4), DTYPES, (False, True)):
        for _ in range(3 if d < 4 else 1):
            yield pytest.param(d, dtype, ceil_mode, i, id=f"d{d}-{np.dtype(dtype).name}-"
                               f"{'ceil' if ceil_mode else 'floor'}-{i}")
            i += 1


def _params(d, i):
    kernel = tuple([3, 2, 4][(a + i) % 3] for a in range(d))
    stride = tuple([2, 1, 3][(a + i) % 3] for a in range(d))
    padding = tuple(min(k // 2, (a + i) % 2) for a, k in enumerate(kernel))
    dilation = tuple([1, 2][(a + i) % 2] for a in range(d))
    return kernel, stride, padding, dilation


@pytest.mark.parametrize("d, dtype, ceil_mode, i", list(_cases()))
def test_max_and_avg_pool_match_loops(rng, d, dtype, ceil_mode, i):
    kernel, stride, padding, dilation = _params(d, i)
    size = {1: 13, 2: 9, 3: 7, 4: 6}[d]
    x = rng.standard_normal((2, 3) + tuple(size + a for a in range(d))).astype(dtype)
    y, idx = numbaconv.max_pool(x, kernel, stride, padding, dilation, ceil_mode,
                                return_indices=True)
    ry, ridx = pool_ref(x, "max", kernel, stride, padding, dilation, ceil_mode)
    assert y.dtype == dtype and idx.dtype == np.int64
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(
        numbaconv.max_pool(x, kernel, stride, padding, dilation, ceil_mode), y)
    for cip in (True, False):
        a = numbaconv.avg_pool(x, kernel, stride, padding, ceil_mode, cip, dilation=dilation)
        assert_close(a, pool_ref(x, "avg", kernel, stride, padding, dilation, ceil_mode, cip),
                     dtype)
    a = numbaconv.avg_pool(x, kernel, stride, padding, ceil_mode, divisor_override=3,
                           dilation=dilation)
    assert_close(a, pool_ref(x, "avg", kernel, stride, padding, dilation, ceil_mode,
                             divisor_override=3), dtype)
    xa = np.abs(x)
    for p in (1.0, 2.0, 3.5):
        lp = numbaconv.lp_pool(xa, p, kernel, stride, ceil_mode)
        ref = pool_ref(xa, "lp", kernel, stride, (0,) * d, (1,) * d, ceil_mode, norm_type=p)
        assert_close(lp, ref, dtype)


def test_nan_wins_and_its_index(rng):
    x = rng.standard_normal((1, 2, 8, 8))
    x[0, 0, 3, 3] = np.nan
    x[0, 0, 3, 4] = np.nan
    x[0, 1, 0, 0] = -np.inf
    y, idx = numbaconv.max_pool(x, 3, 2, 1, return_indices=True)
    ry, ridx = pool_ref(x, "max", (3, 3), (2, 2), (1, 1), (1, 1), False)
    np.testing.assert_array_equal(y, ry)
    np.testing.assert_array_equal(idx, ridx)
    assert np.isnan(y[0, 0]).sum() == 4
    np.testing.assert_array_equal(numbaconv.max_pool(x, 3, 2, 1), ry)  # without indices too


def test_all_minus_inf_window_keeps_first_valid_index():
    x = np.full((1, 1, 4, 4), -np.inf)
    y, idx = numbaconv.max_pool(x, 3, 2, 1, return_indices=True)
    ry, ridx = pool_ref(x, "max", (3, 3), (2, 2), (1, 1), (1, 1), False)
    np.testing.assert_array_equal(idx, ridx)
    assert np.all(np.isneginf(y))


def test_rank_rule_unbatched_and_aliases(rng):
    x = rng.standard_normal((3, 8, 9))
    # an int kernel_size means x.ndim - 2 spatial axes: (N=3, C=8, W=9)
    assert numbaconv.max_pool(x, 2).shape == (3, 8, 4)
    # a tuple means its length: unbatched (C=3, H=8, W=9)
    assert numbaconv.max_pool(x, (2, 2)).shape == (3, 4, 4)
    assert numbaconv.max_pool2d(x, 2).shape == (3, 4, 4)
    assert numbaconv.avg_pool1d(x, 3, 2).shape == (3, 8, 4)
    y, i = numbaconv.max_pool2d(x, 2, return_indices=True)
    assert y.shape == i.shape == (3, 4, 4)
    assert_close(numbaconv.lp_pool2d(np.abs(x), 2, 2),
                 pool_ref(np.abs(x)[None], "lp", (2, 2), (2, 2), (0, 0), (1, 1), False,
                          norm_type=2)[0], np.float64)
    v = rng.standard_normal((1, 2, 5, 4, 6))
    assert numbaconv.avg_pool3d(v, 2).shape == (1, 2, 2, 2, 3)


@pytest.mark.parametrize("dtype, expected", [(np.float16, np.float16), (np.int32, np.float64)])
def test_dtypes(rng, dtype, expected):
    x = (rng.standard_normal((1, 2, 6, 6)) * 4).astype(dtype)
    assert numbaconv.max_pool(x, 2).dtype == expected
    assert numbaconv.avg_pool(x, 2).dtype == expected


def test_empty_batch():
    assert numbaconv.max_pool(np.zeros((0, 3, 8, 8)), 2).shape == (0, 3, 4, 4)
    y, i = numbaconv.max_pool(np.zeros((0, 3, 8, 8)), 2, return_indices=True)
    assert i.shape == (0, 3, 4, 4)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda x: numbaconv.max_pool(x, 0), ValueError, "kernel_size must be positive"),
        (lambda x: numbaconv.max_pool(x, 2, stride=0), ValueError, "stride must be positive"),
        (lambda x: numbaconv.max_pool(x, 3, padding=2), ValueError, "at most half"),
        (lambda x: numbaconv.avg_pool(x, 2, padding=-1), ValueError, "non-negative"),
        (lambda x: numbaconv.max_pool(x, 9), ValueError, "output would be empty"),
        (lambda x: numbaconv.max_pool(x, (2, 2, 2, 2)), ValueError, "x must have shape"),
        (lambda x: numbaconv.max_pool(x[0, 0], 2), ValueError, "x must have shape"),
        (lambda x: numbaconv.lp_pool(x, 0, 2), ValueError, "norm_type must be positive"),
        (lambda x: numbaconv.lp_pool(x, -1.5, 2), ValueError, "norm_type must be positive"),
        (lambda x: numbaconv.lp_pool(x, "two", 2), TypeError, "norm_type must be a number"),
        (lambda x: numbaconv.avg_pool(x, 2, divisor_override=0), ValueError, "divisor_override"),
        (lambda x: numbaconv.avg_pool(x, 2, divisor_override=1.5), TypeError, "divisor_override"),
        (lambda x: numbaconv.max_pool(x.astype(complex), 2), TypeError, "real numbers"),
        (lambda x: numbaconv.max_pool(x, 2.0), TypeError, "kernel_size must be an int"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call(np.ones((1, 2, 6, 6)))


@pytest.mark.torch
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("ceil_mode", [False, True])
@pytest.mark.parametrize("dtype", DTYPES)
def test_matches_torch(rng, d, ceil_mode, dtype):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 3) + (9,) * d).astype(dtype)
    tx = torch.from_numpy(x)
    mp = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}[d]
    ap = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}[d]
    lp = {1: F.lp_pool1d, 2: F.lp_pool2d, 3: F.lp_pool3d}[d]
    ty, ti = mp(tx, 3, 2, 1, 2, ceil_mode, True)
    y, i = numbaconv.max_pool(x, (3,) * d, 2, 1, 2, ceil_mode, True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(i, ti.numpy())
    for cip in (True, False):
        assert_close(numbaconv.avg_pool(x, (3,) * d, 2, 1, ceil_mode, cip),
                     ap(tx, 3, 2, 1, ceil_mode, cip).numpy(), dtype)
    xa = np.abs(x)
    assert_close(numbaconv.lp_pool(xa, 2.0, (2,) * d, 2, ceil_mode),
                 lp(torch.from_numpy(xa), 2.0, 2, 2, ceil_mode).numpy(), dtype)
