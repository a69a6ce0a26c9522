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


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel, stride, padding", [(3, 2, 1), (2, 2, 0), (3, 1, 1), (4, 3, 2)])
def test_long_rows_in_vectors(rng, dtype, kernel, stride, padding):
    """Rows of many vectors and a partial last one (strides 1 and 2 run in explicit vectors):
    NaN wins wherever it sits in a vector, inf and -inf are kept, sums match; a NaN at the very
    end of each row reaches only the windows that hold it."""
    x = rng.standard_normal((1, 2, 4, 77)).astype(dtype)
    spots = rng.random(x.shape)
    x[spots < 0.05] = np.nan
    x[(spots >= 0.05) & (spots < 0.08)] = np.inf
    x[(spots >= 0.08) & (spots < 0.11)] = -np.inf
    x[0, 1, :, -1] = np.nan
    args = ((kernel,) * 2, (stride,) * 2, (padding,) * 2, (1, 1), False)
    ry, _ = pool_ref(x, "max", *args)
    np.testing.assert_array_equal(numbaconv.max_pool(x, kernel, stride, padding), ry.astype(dtype))
    xf = rng.standard_normal(x.shape).astype(dtype)
    assert_close(numbaconv.avg_pool(xf, kernel, stride, padding), pool_ref(xf, "avg", *args),
                 dtype)


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


def _adaptive_ref(x, out, op):
    """Adaptive pooling by its definition: box floor(i*n/o) .. ceil((i+1)*n/o) per axis."""
    sp = x.shape[2:]
    res = np.zeros(x.shape[:2] + tuple(out))
    idx = np.zeros(res.shape, dtype=np.int64)
    for o in np.ndindex(*out):
        box = tuple(slice((i * n) // m, -((-(i + 1) * n) // m)) for i, n, m in zip(o, sp, out))
        sub = x[(slice(None), slice(None)) + box]
        flat = sub.reshape(sub.shape[:2] + (-1,))
        if op == "avg":
            res[(slice(None), slice(None)) + o] = flat.mean(axis=2)
            continue
        coords = np.array(list(np.ndindex(*sub.shape[2:]))) + [b.start for b in box]
        for n_, c_ in np.ndindex(*x.shape[:2]):
            best, bi = -np.inf, -1
            for v, cd in zip(flat[n_, c_], coords):
                if bi < 0 or v > best or np.isnan(v):
                    best, bi = v, int(np.ravel_multi_index(tuple(cd), sp))
            res[(n_, c_) + o] = best
            idx[(n_, c_) + o] = bi
    return res, idx


@pytest.mark.parametrize("d, out", [(1, (4,)), (2, (3, 5)), (2, (7, 1)), (3, (2, 3, 2)),
                                    (4, (2, 1, 3, 2))])
@pytest.mark.parametrize("dtype", DTYPES)
def test_adaptive_and_global(rng, d, out, dtype):
    x = rng.standard_normal((2, 3) + tuple(6 + a for a in range(d))).astype(dtype)
    x[0, 0].flat[3] = np.nan
    y, idx = numbaconv.adaptive_max_pool(x, out, return_indices=True)
    ry, ridx = _adaptive_ref(x.astype(np.float64), out, "max")
    np.testing.assert_array_equal(y, ry.astype(dtype))
    np.testing.assert_array_equal(idx, ridx)
    np.testing.assert_array_equal(numbaconv.adaptive_max_pool(x, out), y)
    x[0, 0].flat[3] = 0.5
    assert_close(numbaconv.adaptive_avg_pool(x, out),
                 _adaptive_ref(x.astype(np.float64), out, "avg")[0], dtype)
    assert_close(numbaconv.global_avg_pool(x), x.astype(np.float64).mean(
        axis=tuple(range(2, 2 + d))), dtype)
    np.testing.assert_array_equal(numbaconv.global_max_pool(x, keepdims=True),
                                  x.max(axis=tuple(range(2, 2 + d)), keepdims=True))


def test_adaptive_none_keeps_axis_and_aliases(rng):
    x = rng.standard_normal((2, 3, 8, 9))
    assert numbaconv.adaptive_avg_pool(x, (4, None)).shape == (2, 3, 4, 9)
    assert numbaconv.adaptive_avg_pool2d(x[0], 2).shape == (3, 2, 2)
    assert numbaconv.adaptive_max_pool1d(x[0], 3).shape == (3, 8, 3)
    with pytest.raises(ValueError, match="output_size must be positive"):
        numbaconv.adaptive_avg_pool(x, 0)
    with pytest.raises(ValueError, match="at least one spatial axis"):
        numbaconv.global_avg_pool(np.ones((2, 3)))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_max_unpool_inverts_max_pool(rng, d):
    x = rng.standard_normal((2, 3) + (7,) * d)
    y, idx = numbaconv.max_pool(x, (2,) * d, 2, return_indices=True)
    up = numbaconv.max_unpool(y, idx, (2,) * d, output_size=x.shape)
    assert up.shape == x.shape
    flat = up.reshape(2, 3, -1)
    np.testing.assert_array_equal(np.take_along_axis(flat, idx.reshape(2, 3, -1), 2),
                                  y.reshape(2, 3, -1))
    assert np.count_nonzero(flat) == y.size
    x8 = rng.standard_normal((1, 2) + (8,) * d)
    y8, i8 = numbaconv.max_pool(x8, (2,) * d, return_indices=True)
    assert numbaconv.max_unpool(y8, i8, (2,) * d).shape == x8.shape  # the default size
    if d > 1:  # indices into 7-wide rows fall outside a 6x6 plane
        with pytest.raises(ValueError, match="indices must lie in"):
            numbaconv.max_unpool(y, idx, (2,) * d)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(indices=np.zeros((1, 2, 3), float)), TypeError, "integer array"),
        (dict(indices=np.zeros((1, 2, 2), int)), ValueError, "shape of x"),
        (dict(indices=np.full((1, 2, 3), 6)), ValueError, r"lie in \[0, 6\)"),
        (dict(output_size=(9,)), ValueError, "within the stride"),
    ],
)
def test_max_unpool_bad_input(kwargs, exc, match):
    args = dict(x=np.ones((1, 2, 3)), indices=np.zeros((1, 2, 3), int), kernel_size=2)
    args.update(kwargs)
    with pytest.raises(exc, match=match):
        numbaconv.max_unpool(**args)


@pytest.mark.torch
def test_adaptive_and_unpool_match_torch(rng):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    x = rng.standard_normal((2, 3, 9, 11))
    tx = torch.from_numpy(x)
    y, i = numbaconv.adaptive_max_pool(x, (4, 3), True)
    ty, ti = F.adaptive_max_pool2d(tx, (4, 3), True)
    np.testing.assert_array_equal(y, ty.numpy())
    np.testing.assert_array_equal(i, ti.numpy())
    assert_close(numbaconv.adaptive_avg_pool(x, (5, 2)), F.adaptive_avg_pool2d(tx, (5, 2)).numpy(),
                 np.float64)
    y, i = numbaconv.max_pool(x, 2, return_indices=True)
    ty, ti = F.max_pool2d(tx, 2, return_indices=True)
    np.testing.assert_array_equal(numbaconv.max_unpool(y, i, 2, output_size=(9, 11)),
                                  F.max_unpool2d(ty, ti, 2, output_size=(9, 11)).numpy())
