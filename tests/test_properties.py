"""Hypothesis property tests: linearity, the delta kernel, shift equivariance, groups."""

from __future__ import annotations

import numpy as np
from checks import assert_close
from hypothesis import given, settings
from hypothesis import strategies as st
from reference import conv_ref

import numbaconv

SETTINGS = settings(max_examples=25, deadline=None)
MODES = st.sampled_from(["zeros", "reflect", "replicate", "circular", "symmetric"])


@st.composite
def problems(draw, max_rank=3):
    d = draw(st.integers(1, max_rank))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(d))
    shape = tuple(draw(st.integers(k + 2, k + 6)) for k in kernel)
    cin = draw(st.integers(1, 4))
    cout = draw(st.integers(1, 5))
    seed = draw(st.integers(0, 2**32 - 1))
    return d, kernel, shape, cin, cout, np.random.default_rng(seed)


@SETTINGS
@given(problems(), MODES, st.floats(-3, 3), st.integers(1, 2))
def test_linear_in_x(p, mode, alpha, stride):
    d, kernel, shape, cin, cout, rng = p
    x1 = rng.standard_normal((2, cin) + shape)
    x2 = rng.standard_normal((2, cin) + shape)
    w = rng.standard_normal((cout, cin) + kernel)
    kw = dict(stride=stride, padding=1, padding_mode=mode)
    lhs = numbaconv.conv(alpha * x1 + x2, w, **kw)
    rhs = alpha * numbaconv.conv(x1, w, **kw) + numbaconv.conv(x2, w, **kw)
    assert_close(lhs, rhs, np.float64)


@SETTINGS
@given(problems(), MODES)
def test_linear_in_weight(p, mode):
    d, kernel, shape, cin, cout, rng = p
    x = rng.standard_normal((1, cin) + shape)
    w1 = rng.standard_normal((cout, cin) + kernel)
    w2 = rng.standard_normal((cout, cin) + kernel)
    kw = dict(padding="same", padding_mode=mode)
    assert_close(numbaconv.conv(x, w1 + w2, **kw),
                 numbaconv.conv(x, w1, **kw) + numbaconv.conv(x, w2, **kw), np.float64)


@SETTINGS
@given(problems(max_rank=4), MODES, st.sampled_from([np.float32, np.float64]))
def test_delta_kernel_is_identity(p, mode, dtype):
    d, kernel, shape, cin, _, rng = p
    kernel = tuple(2 * (k // 2) + 1 for k in kernel)  # odd: the centre is a tap
    x = rng.standard_normal((2, cin) + shape).astype(dtype)
    w = np.zeros((cin, cin) + kernel, dtype)
    for c in range(cin):
        w[(c, c) + tuple(k // 2 for k in kernel)] = 1
    y = numbaconv.conv(x, w, padding="same", padding_mode=mode)
    np.testing.assert_array_equal(y, x)


@SETTINGS
@given(problems(), st.data())
def test_shift_equivariance_stride_one(p, data):
    """With circular padding a cyclic shift of the input shifts the output exactly."""
    d, kernel, shape, cin, cout, rng = p
    x = rng.standard_normal((1, cin) + shape)
    w = rng.standard_normal((cout, cin) + kernel)
    shift = tuple(data.draw(st.integers(-3, 3)) for _ in range(d))
    axes = tuple(range(2, 2 + d))
    kw = dict(padding="same", padding_mode="circular")
    y = numbaconv.conv(x, w, **kw)
    ys = numbaconv.conv(np.roll(x, shift, axis=axes), w, **kw)
    assert_close(ys, np.roll(y, shift, axis=axes), np.float64)


@SETTINGS
@given(problems(), st.integers(1, 3), st.integers(1, 3), MODES)
def test_groups_are_independent_convolutions(p, groups, per_group_out, mode):
    d, kernel, shape, _, _, rng = p
    cin, cout = 2 * groups, per_group_out * groups
    x = rng.standard_normal((2, cin) + shape)
    w = rng.standard_normal((cout, 2) + kernel)
    y = numbaconv.conv(x, w, groups=groups, padding=1, padding_mode=mode)
    for g in range(groups):
        part = numbaconv.conv(x[:, 2 * g:2 * g + 2], w[g * per_group_out:(g + 1) * per_group_out],
                              padding=1, padding_mode=mode)
        assert_close(y[:, g * per_group_out:(g + 1) * per_group_out], part, np.float64)
    assert_close(y, conv_ref(x, w, groups=groups, padding=1, padding_mode=mode), np.float64)


@SETTINGS
@given(problems(), st.floats(-3, 3), st.integers(1, 2))
def test_deform_conv_linear_in_x_and_mask(p, alpha, stride):
    """For fixed offsets, deformable convolution is linear in the input and in the mask."""
    d, kernel, shape, cin, cout, rng = p
    x1 = rng.standard_normal((2, cin) + shape)
    x2 = rng.standard_normal((2, cin) + shape)
    w = rng.standard_normal((cout, cin) + kernel)
    out = numbaconv.conv(x1, w, stride=stride, padding=1).shape[2:]
    taps = int(np.prod(kernel))
    off = 2 * rng.standard_normal((2, d * taps) + out)
    m1, m2 = rng.random((2, 2, taps) + out)
    kw = dict(stride=stride, padding=1)
    lhs = numbaconv.deform_conv(alpha * x1 + x2, off, w, mask=m1, **kw)
    rhs = (alpha * numbaconv.deform_conv(x1, off, w, mask=m1, **kw)
           + numbaconv.deform_conv(x2, off, w, mask=m1, **kw))
    assert_close(lhs, rhs, np.float64)
    lhs = numbaconv.deform_conv(x1, off, w, mask=alpha * m1 + m2, **kw)
    rhs = (alpha * numbaconv.deform_conv(x1, off, w, mask=m1, **kw)
           + numbaconv.deform_conv(x1, off, w, mask=m2, **kw))
    assert_close(lhs, rhs, np.float64)
