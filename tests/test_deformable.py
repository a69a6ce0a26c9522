"""deform_conv against its definition, against conv, and with hostile offsets."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from checks import assert_close
from reference import conv_ref, deform_conv_ref

import numbaconv

DTYPES = [np.float32, np.float64]


def _out_shape(shape, kernel, stride, padding, dilation):
    """Output size per axis for int or per-axis int padding (the tests' own arithmetic)."""
    d = len(kernel)
    s = stride if isinstance(stride, tuple) else (stride,) * d
    p = padding if isinstance(padding, tuple) else (padding,) * d
    dl = dilation if isinstance(dilation, tuple) else (dilation,) * d
    return tuple((n + 2 * pp - ddl * (k - 1) - 1) // ss + 1
                 for n, k, ss, pp, ddl in zip(shape, kernel, s, p, dl))


def _cases():
    i = 0
    for d, dtype in itertools.product((1, 2, 3), DTYPES):
        for _ in range(4 if d < 3 else 3):
            yield pytest.param(d, dtype, [1, 2, 1, 2][i % 4], [1, 2, "axes", 0][i % 4],
                               [1, 1, 2][i % 3], [1, 2, 1, 2][(i // 2) % 4],
                               [1, 1, 2, 4][i % 4], bool(i % 2), [None, "relu", "tanh"][i % 3],
                               id=f"d{d}-{np.dtype(dtype).name}-{i}")
            i += 1


@pytest.mark.parametrize(
    "d, dtype, stride, padding, dilation, groups, offset_groups, with_mask, activation",
    list(_cases()))
def test_matches_definition(rng, d, dtype, stride, padding, dilation, groups, offset_groups,
                            with_mask, activation):
    """Random fractional offsets (many points near or past the edges), every parameter."""
    kernel = (3, 2, 3)[:d] if d < 3 else (2, 3, 2)
    padding = tuple([1, 0, 2][a % 3] for a in range(d)) if padding == "axes" else padding
    size = {1: 11, 2: 6, 3: 4}[d]
    cin = 4
    x = rng.standard_normal((2, cin) + (size,) * d).astype(dtype)
    w = rng.standard_normal((2 * groups, cin // groups) + kernel).astype(dtype)
    b = rng.standard_normal(2 * groups).astype(dtype)
    out = _out_shape((size,) * d, kernel, stride, padding, dilation)
    ntap = math.prod(kernel)
    off = (2.0 * rng.standard_normal((2, d * offset_groups * ntap) + out)).astype(dtype)
    mask = rng.random((2, offset_groups * ntap) + out).astype(dtype) if with_mask else None
    kw = dict(stride=stride, padding=padding, dilation=dilation, mask=mask, activation=activation)
    y = numbaconv.deform_conv(x, off, w, b, **kw)
    assert y.dtype == dtype
    assert_close(y, deform_conv_ref(x, off, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("cin, groups, offset_groups", [
    (16, 1, 1),  # a group's channels: two float32 vectors, four float64 ones
    (48, 2, 3),  # offset groups of 16 straddling weight groups of 24: runs of 16 and 8
    (12, 1, 1),  # not a whole number of float32 vectors
])
def test_channel_runs_in_vectors_match_definition(rng, dtype, d, cin, groups, offset_groups):
    """Each point's corners summed over runs of channels that fill vectors (the explicit
    vectors of ``blend_vectors``) or do not (the plain loop)."""
    kernel = (3,) * d
    size = {2: 6, 3: 4}[d]
    x = rng.standard_normal((2, cin) + (size,) * d).astype(dtype)
    w = rng.standard_normal((8, cin // groups) + kernel).astype(dtype)
    ntap = math.prod(kernel)
    off = (2.0 * rng.standard_normal((2, d * offset_groups * ntap) + (size,) * d)).astype(dtype)
    mask = rng.random((2, offset_groups * ntap) + (size,) * d).astype(dtype)
    kw = dict(padding=1, mask=mask)  # the weight groups: C_in / weight.shape[1], as torchvision
    y = numbaconv.deform_conv(x, off, w, **kw)
    assert_close(y, deform_conv_ref(x, off, w, **kw), dtype)


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("stride, padding, dilation, groups", [
    (1, 0, 1, 1), (2, 1, 1, 2), (1, "same", 2, 1), (3, ((2, 0),) * 3, 1, 4), (2, "valid", 2, 2),
])
def test_zero_offsets_equal_conv(rng, d, stride, padding, dilation, groups):
    padding = padding[:d] if isinstance(padding, tuple) else padding
    x = rng.standard_normal((2, 4) + (7,) * d).astype(np.float32)
    w = rng.standard_normal((4, 4 // groups) + (3,) * d).astype(np.float32)
    kw = dict(stride=stride, padding=padding, dilation=dilation)
    expected = numbaconv.conv(x, w, groups=groups, **kw)
    off = np.zeros((2, d * 3 ** d) + expected.shape[2:], np.float32)
    assert_close(numbaconv.deform_conv(x, off, w, **kw), conv_ref(x, w, groups=groups, **kw),
                 np.float32)
    assert_close(numbaconv.deform_conv(x, off, w, **kw), expected, np.float32)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_integer_offsets_equal_conv_of_shifted_input(rng, d):
    """A constant integer offset ``s`` reads ``xp[i + s]`` of the zero-padded input ``xp``."""
    shift = tuple(int(v) for v in rng.integers(-3, 4, d))
    x = rng.standard_normal((2, 3) + (8,) * d)
    w = rng.standard_normal((5, 3) + (3,) * d)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(1, 1)] * d)
    n = xp.shape[-1]
    shifted = np.zeros_like(xp)
    dst = tuple(slice(max(-s, 0), n - max(s, 0)) for s in shift)
    src = tuple(slice(max(s, 0), n - max(-s, 0)) for s in shift)
    shifted[(...,) + dst] = xp[(...,) + src]
    out = (8,) * d
    off = np.broadcast_to(np.tile(np.asarray(shift, float), 3 ** d).reshape((1, -1) + (1,) * d),
                          (2, d * 3 ** d) + out)
    assert_close(numbaconv.deform_conv(x, off, w, padding=1), conv_ref(shifted, w), np.float64)


def test_mask_scales_each_tap(rng):
    x = rng.standard_normal((2, 4, 6, 7))
    w = rng.standard_normal((6, 2, 3, 3))  # groups 2
    scale = rng.standard_normal(9)
    mask = np.broadcast_to(scale.reshape(1, 9, 1, 1), (2, 9, 6, 7))
    off = np.zeros((2, 18, 6, 7))
    expected = conv_ref(x, w * scale.reshape(3, 3), padding=1, groups=2)
    assert_close(numbaconv.deform_conv(x, off, w, padding=1, mask=mask), expected, np.float64)


def test_unbatched_and_aliases(rng):
    x = rng.standard_normal((3, 9, 8)).astype(np.float32)
    w = rng.standard_normal((2, 3, 3, 3)).astype(np.float32)
    off = rng.standard_normal((18, 9, 8)).astype(np.float32)
    mask = rng.random((9, 9, 8)).astype(np.float32)
    y = numbaconv.deform_conv2d(x, off, w, padding="same", mask=mask)
    assert y.shape == (2, 9, 8)
    assert_close(y, deform_conv_ref(x[None], off[None], w, padding="same", mask=mask[None])[0],
                 np.float32)
    with pytest.raises(ValueError, match="deform_conv3d takes weight"):
        numbaconv.deform_conv3d(x, off, w)
    x1 = rng.standard_normal((1, 2, 10))
    off1 = rng.standard_normal((1, 3, 10))
    assert_close(numbaconv.deform_conv1d(x1, off1, np.ones((1, 2, 3)), padding=1),
                 deform_conv_ref(x1, off1, np.ones((1, 2, 3)), padding=1), np.float64)


def test_4d_matches_definition(rng):
    x = rng.standard_normal((1, 2, 4, 3, 4, 3))
    w = rng.standard_normal((2, 2, 2, 1, 2, 2))
    off = rng.standard_normal((1, 4 * 8, 3, 3, 3, 2))
    assert_close(numbaconv.deform_conv(x, off, w), deform_conv_ref(x, off, w), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
def test_hostile_offsets_read_nothing_outside(rng, dtype):
    """NaN, +-inf, 1e30 and points on and just past every edge: finite, and zero where outside."""
    x = rng.standard_normal((2, 4, 5, 6)).astype(dtype)
    w = rng.standard_normal((3, 4, 3, 3)).astype(dtype)
    mask = rng.random((2, 18, 5, 6)).astype(dtype)
    tiny = float(np.finfo(dtype).eps) * 8
    values = np.array([np.nan, np.inf, -np.inf, 1e30, -1e30, 3e38, -3e38, 0.5, -1.0, 1.0,
                       -1 + tiny, 5.0, 6.0, 5 - tiny, 6 - tiny, -7.0, 9.0, 1e7], dtype=dtype)
    off = rng.choice(values, size=(2, 36, 5, 6)).astype(dtype)
    x0, off0, w0, mask0 = x.copy(), off.copy(), w.copy(), mask.copy()
    y = numbaconv.deform_conv(x, off, w, padding=1, mask=mask)
    assert np.isfinite(y).all()
    for a, a0 in ((x, x0), (off, off0), (w, w0), (mask, mask0)):
        np.testing.assert_array_equal(a, a0, strict=True)
    assert_close(y, deform_conv_ref(x, off, w, padding=1, mask=mask), dtype)
    far = np.full_like(off, np.nan)
    far[:, ::2] = rng.choice([np.inf, -1e30, 40.0], size=far[:, ::2].shape)
    b = rng.standard_normal(3).astype(dtype)
    y = numbaconv.deform_conv(x, far, w, b, padding=1, mask=np.full_like(mask, np.inf))
    np.testing.assert_array_equal(y, np.broadcast_to(b.reshape(1, 3, 1, 1), y.shape))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [37, (1 << 24) + 5])  # through int32, and the int64 loop
def test_axis_stencils_against_their_definition(rng, dtype, size):
    """One axis's corners of sample points: lower and upper corner offsets clamped into the
    axis (times its stride), their weights zero outside, ``ok`` cleared outside ``(-1, size)``
    and for NaN; at -1, 0, size - 1, just inside and outside them, inf and NaN."""
    from numbaconv._deform_kernels import axis_stencils

    edges = [-1.0, -0.999, -0.5, 0.0, 0.25, size - 1.0, size - 1.5, size - 0.75, size - 1e-3,
             size, size + 0.5, -1.5, np.inf, -np.inf, np.nan, 3.0, 4.5]
    n = len(edges) + 40
    src = np.concatenate([edges, rng.uniform(-3, 40, 40)]).astype(dtype)
    basep = np.zeros(n, dtype)
    if size > 1000:  # points near the far end of the long axis too
        basep[len(edges):] = size - 20
    st = 7
    ok = np.ones(n, np.bool_)
    ok[-1] = False
    ok0 = ok.copy()
    ilo, ihi = np.zeros(n, np.int64), np.zeros(n, np.int64)
    wlo, whi = np.zeros(n, dtype), np.zeros(n, dtype)
    one, zero = dtype(1), dtype(0)
    axis_stencils(basep, zero, src, dtype(size), size - 1, st, ok, ilo, ihi, wlo, whi, zero, one)
    v = basep + zero + src  # in the dtype, as the kernel (float32 steps by 2 past 2**24)
    inside = (v > -1) & (v < dtype(size))
    vs = np.where(inside, v, zero)
    low = np.floor(vs).astype(np.int64)
    fr = vs - np.floor(vs)
    np.testing.assert_array_equal(ok, ok0 & inside)
    np.testing.assert_array_equal(ilo, np.where(low >= 0, low, low + 1) * st)
    np.testing.assert_array_equal(ihi, np.where(low < size - 1, low + 1, low) * st)
    tol = 2 * np.finfo(dtype).eps * size
    np.testing.assert_allclose(wlo, np.where(low >= 0, 1 - fr, 0), atol=tol)
    np.testing.assert_allclose(whi, np.where(low < size - 1, fr, 0), atol=tol)


def test_dtypes(rng):
    x = rng.integers(-3, 4, (1, 2, 5, 5))
    off = rng.standard_normal((1, 18, 5, 5)).astype(np.float32)
    w = np.ones((1, 2, 3, 3), np.float32)
    y = numbaconv.deform_conv(x, off, w, padding=1)
    assert y.dtype == np.float64  # integers and float32 -> float64, as conv
    assert_close(y, deform_conv_ref(x, off, w, padding=1), np.float64)
    h = numbaconv.deform_conv(x.astype(np.float16), off.astype(np.float16),
                              w.astype(np.float16), padding=1)
    assert h.dtype == np.float16
    y32 = numbaconv.deform_conv(x.astype(np.float32), off, w, padding=1)
    assert y32.dtype == np.float32
    empty = numbaconv.deform_conv(np.zeros((0, 2, 5, 5), np.float32),
                                  np.zeros((0, 18, 5, 5), np.float32), w, padding=1)
    assert empty.shape == (0, 1, 5, 5) and empty.dtype == np.float32


def test_large_batch_runs_in_chunks(rng, monkeypatch):
    """Planes built a few images at a time give the same result as all at once."""
    from numbaconv import deformable

    x = rng.standard_normal((5, 3, 6, 6)).astype(np.float32)
    w = rng.standard_normal((4, 3, 3, 3)).astype(np.float32)
    off = rng.standard_normal((5, 18, 6, 6)).astype(np.float32)
    whole = numbaconv.deform_conv(x, off, w, padding=1)
    monkeypatch.setattr(deformable, "_PLANE_BYTES", 2 * 3 * 36 * 4)  # two images a chunk
    np.testing.assert_array_equal(numbaconv.deform_conv(x, off, w, padding=1), whole)


_X = np.zeros((2, 4, 6, 6), np.float32)
_W = np.zeros((6, 2, 3, 3), np.float32)  # groups 2
_OFF = np.zeros((2, 18, 4, 4), np.float32)


@pytest.mark.parametrize("args, kwargs, match", [
    ((_X, _OFF[:, :17], _W), {}, r"offset must have shape \(N, offset_groups \* 2 \* 9, 4, 4\)"),
    ((_X, _OFF[:, :0], _W), {}, "offset must have shape"),
    ((_X, _OFF[..., :3], _W), {}, "offset must have shape"),
    ((_X, _OFF[:1], _W), {}, "offset must have shape"),
    ((_X, _OFF[0], _W), {}, "offset must have shape"),
    ((_X, np.zeros((2, 54, 4, 4)), _W), {}, r"offset groups .* = 3\)"),
    ((_X, _OFF, _W), {"mask": np.zeros((2, 9, 4, 5))}, "mask must have shape"),
    ((_X, _OFF, _W), {"mask": np.zeros((2, 18, 4, 4))}, r"mask.shape\[1\] must be"),
    ((_X, _OFF, _W[:5]), {}, r"C_out \(5\) must be divisible"),
    ((_X, _OFF, np.zeros((6, 3, 3, 3))), {}, r"C_in \(4\) must be divisible by weight"),
    ((_X, _OFF, np.zeros((6, 2))), {}, "at least one spatial axis"),
    ((_X, _OFF, np.zeros((6, 2, 3))), {}, "x must have shape"),
    ((_X, _OFF, _W), {"padding": -1}, "padding must be non-negative"),
    ((_X, _OFF, _W), {"dilation": 5}, "output would be empty"),
    ((_X, _OFF, _W), {"stride": 0}, "stride must be positive"),
    ((_X, _OFF, _W), {"activation": "swish"}, "activation must be one of"),
    ((_X, _OFF, _W), {"bias": np.zeros(5)}, "bias must have shape"),
])
def test_bad_input(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        numbaconv.deform_conv(*args, **kwargs)


def test_bad_types():
    with pytest.raises(TypeError, match="offset must hold real numbers"):
        numbaconv.deform_conv(_X, _OFF.astype(complex), _W)
    with pytest.raises(TypeError, match="mask must hold real numbers"):
        numbaconv.deform_conv(_X, _OFF, _W, mask=np.array([["a"]]))
    with pytest.raises(TypeError, match="stride"):
        numbaconv.deform_conv(_X, _OFF, _W, stride=1.5)


def test_thread_count_does_not_change_the_result(rng):
    import numba

    x = rng.standard_normal((3, 4, 10, 9))
    w = rng.standard_normal((8, 4, 3, 3))
    off = rng.standard_normal((3, 18, 10, 9))
    old = numba.get_num_threads()
    try:
        results = []
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            results.append(numbaconv.deform_conv(x, off, w, padding=1))
    finally:
        numba.set_num_threads(old)
    for y in results[1:]:
        np.testing.assert_array_equal(y, results[0])


@pytest.mark.parametrize("groups, offset_groups", [(2, 3), (3, 2), (6, 1), (1, 6)])
def test_offset_groups_that_straddle_weight_groups(rng, groups, offset_groups):
    """Offset groups and weight groups split the channels independently."""
    x = rng.standard_normal((2, 6, 7, 6))
    w = rng.standard_normal((6, 6 // groups, 3, 3))
    off = 1.5 * rng.standard_normal((2, 18 * offset_groups, 7, 6))
    mask = rng.random((2, 9 * offset_groups, 7, 6))
    y = numbaconv.deform_conv(x, off, w, padding=1, mask=mask)
    assert_close(y, deform_conv_ref(x, off, w, padding=1, mask=mask), np.float64)
