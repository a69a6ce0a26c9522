"""Backward passes against finite differences of the slow references, and their properties.

Each gradient is checked along a fresh random direction ``v``: the central
difference of ``L(a) = sum(forward(a) * g)`` (with ``forward`` the
independent reference in ``tests/reference.py``) must equal ``<grad_a, v>``.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from checks import assert_close
from reference import (
    conv_ref,
    conv_transpose_ref,
    deform_conv_ref,
    depthwise_ref,
    pool_ref,
    separable_ref,
)

import numbaconv

EPS = 1e-6


def directional(f, arrays, name, v):
    """Central difference of ``f()`` along ``v`` for ``arrays[name]`` (restored after)."""
    a = arrays[name]
    old = a.copy()
    a += EPS * v
    fp = f()
    a[...] = old - EPS * v
    fm = f()
    a[...] = old
    return (fp - fm) / (2 * EPS)


def check_grads(rng, forward, arrays, grads, g):
    """``grads[name]`` against the directional derivative of ``sum(forward() * g)``."""
    def loss():
        return float(np.sum(np.asarray(forward(), np.float64) * g))

    for name, grad in grads.items():
        a = arrays[name]
        assert grad is not None and grad.shape == a.shape, name
        v = rng.standard_normal(a.shape)
        expected = directional(loss, arrays, name, v)
        got = float(np.sum(grad * v))
        assert abs(got - expected) <= 1e-6 * max(1.0, abs(expected)), (name, got, expected)


CONV_CASES = [  # d, C_in, C_out, groups, stride, padding, dilation, padding_mode
    (1, 3, 5, 1, 2, 2, 1, "zeros"),
    (1, 4, 4, 4, 1, "same", 2, "reflect"),
    (2, 4, 6, 2, 1, 1, 1, "zeros"),
    (2, 3, 2, 1, (2, 1), ((1, 2), (0, 1)), (1, 2), "replicate"),
    (2, 2, 12, 1, 1, "same", 1, "circular"),
    (2, 4, 8, 4, 2, 1, 1, "symmetric"),
    (2, 3, 20, 1, 1, 1, 1, "zeros"),  # many channels: the GEMM path, ragged blocks
    (3, 2, 5, 1, 1, 1, 1, "reflect"),
    (4, 1, 4, 1, 1, 1, 1, "zeros"),
]


@pytest.mark.parametrize("case", CONV_CASES, ids=str)
def test_conv_backward_matches_finite_differences(rng, case):
    d, cin, cout, groups, stride, padding, dilation, mode = case
    sp = (7, 6, 5, 4)[:d] if d < 4 else (4,) * d
    arrays = {"x": rng.standard_normal((2, cin) + sp),
              "w": rng.standard_normal((cout, cin // groups) + (3,) * d),
              "b": rng.standard_normal(cout)}
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
              padding_mode=mode)
    y = conv_ref(arrays["x"], arrays["w"], arrays["b"], **kw)
    g = rng.standard_normal(y.shape)
    r = numbaconv.conv_backward(g, arrays["x"], arrays["w"], arrays["b"], **kw)
    check_grads(rng, lambda: conv_ref(arrays["x"], arrays["w"], arrays["b"], **kw), arrays,
                {"x": r.input, "w": r.weight, "b": r.bias}, g)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_backward_input_is_conv_transpose_of_grad(rng, dtype):
    """Adjointness: the input gradient is the transposed convolution of grad_output."""
    x = rng.standard_normal((2, 6, 11, 9)).astype(dtype)
    w = rng.standard_normal((8, 3, 3, 2)).astype(dtype)
    kw = dict(stride=2, padding=1, dilation=(1, 2), groups=2)
    g = rng.standard_normal(numbaconv.conv(x, w, **kw).shape).astype(dtype)
    r = numbaconv.conv_backward(g, x, w, **kw)
    assert r.input.dtype == dtype and r.weight.dtype == dtype and r.bias is None
    expected = numbaconv.conv_transpose(g, w, output_size=x.shape[2:], **kw)
    assert_close(r.input, expected, dtype)
    # and <conv(x), g> == <x, grad_x>, <w, grad_w>: conv is linear in each
    y = conv_ref(x, w, **kw)
    total = float(np.sum(y * g))
    assert abs(float(np.sum(x * r.input)) - total) <= 1e-4 * abs(total) + 1e-3
    assert abs(float(np.sum(w * r.weight)) - total) <= 1e-4 * abs(total) + 1e-3


def test_conv_backward_flags_and_unbatched(rng):
    x = rng.standard_normal((3, 8))
    w = rng.standard_normal((4, 3, 3))
    g = rng.standard_normal((4, 6))
    full = numbaconv.conv_backward(g, x, w, np.zeros(4))
    assert full.input.shape == x.shape and full.weight.shape == w.shape
    assert_close(full.bias, g.sum(axis=1), np.float64)
    only_w = numbaconv.conv_backward(g, x, w, np.zeros(4), input_grad=False, bias_grad=False)
    assert only_w.input is None and only_w.bias is None
    assert_close(only_w.weight, full.weight, np.float64)
    only_x = numbaconv.conv_backward(g, x, w, weight_grad=False)
    assert only_x.weight is None and only_x.bias is None
    assert_close(only_x.input, full.input, np.float64)


def test_backward_rejects_bad_grad_output(rng):
    x = rng.standard_normal((1, 3, 8, 8))
    w = rng.standard_normal((4, 3, 3, 3))
    with pytest.raises(ValueError, match="grad_output must have the forward output's shape"):
        numbaconv.conv_backward(np.ones((1, 4, 8, 8)), x, w)
    with pytest.raises(TypeError, match="grad_output"):
        numbaconv.conv_backward(np.ones((1, 4, 6, 6), complex), x, w)
    with pytest.raises(ValueError, match="grad_output"):
        numbaconv.max_pool_backward(np.ones((1, 3, 3, 3)), x, 2)
    with pytest.raises(ValueError, match="grad_output"):
        numbaconv.relu_backward(np.ones(3), np.ones(4))
    before = x.copy()
    numbaconv.conv_backward(np.ones((1, 4, 6, 6)), x, w)
    assert np.array_equal(x, before)


@pytest.mark.parametrize("case", [
    (1, 4, 6, 2, 2, 1, 1, 1),
    (2, 4, 4, 1, 2, 1, 1, 1),
    (2, 2, 6, 2, 3, 2, 2, 2),   # output_padding < dilation, > stride - 1
    (3, 2, 3, 1, 2, 0, 1, 1),
], ids=str)
def test_conv_transpose_backward_matches_finite_differences(rng, case):
    d, cin, cout, groups, stride, padding, output_padding, dilation = case
    sp = (5, 4, 3)[:d]
    arrays = {"x": rng.standard_normal((2, cin) + sp),
              "w": rng.standard_normal((cin, cout // groups) + (3,) * d),
              "b": rng.standard_normal(cout)}
    kw = dict(stride=stride, padding=padding, output_padding=output_padding, groups=groups,
              dilation=dilation)
    y = conv_transpose_ref(arrays["x"], arrays["w"], arrays["b"], **kw)
    g = rng.standard_normal(y.shape)
    r = numbaconv.conv_transpose_backward(g, arrays["x"], arrays["w"], arrays["b"], **kw)
    check_grads(rng, lambda: conv_transpose_ref(arrays["x"], arrays["w"], arrays["b"], **kw),
                arrays, {"x": r.input, "w": r.weight, "b": r.bias}, g)


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_separable_depthwise_pointwise_backward(rng, mode):
    arrays = {"x": rng.standard_normal((2, 3, 7, 6)),
              "dw": rng.standard_normal((6, 1, 3, 3)),
              "pw": rng.standard_normal((5, 6)),
              "b": rng.standard_normal(5)}
    kw = dict(stride=2, padding=1, padding_mode=mode)
    y = separable_ref(arrays["x"], arrays["dw"], arrays["pw"], arrays["b"], **kw)
    g = rng.standard_normal(y.shape)
    r = numbaconv.separable_conv_backward(g, arrays["x"], arrays["dw"], arrays["pw"],
                                          arrays["b"], **kw)
    check_grads(rng, lambda: separable_ref(arrays["x"], arrays["dw"], arrays["pw"],
                                           arrays["b"], **kw),
                arrays, {"x": r.input, "dw": r.depthwise_weight, "pw": r.pointwise_weight,
                         "b": r.bias}, g)
    yd = depthwise_ref(arrays["x"], arrays["dw"], **kw)
    gd = rng.standard_normal(yd.shape)
    rd = numbaconv.depthwise_conv_backward(gd, arrays["x"], arrays["dw"], **kw)
    check_grads(rng, lambda: depthwise_ref(arrays["x"], arrays["dw"], **kw), arrays,
                {"x": rd.input, "dw": rd.weight}, gd)
    pw4 = arrays["pw"][:, :, None, None].copy()
    arrays["pw4"] = pw4
    gp = rng.standard_normal((2, 5, 7, 6))
    rp = numbaconv.pointwise_conv_backward(gp, arrays["x"][:, :3].repeat(2, axis=1), pw4)
    assert rp.weight.shape == pw4.shape
    arrays["x6"] = arrays["x"][:, :3].repeat(2, axis=1)
    check_grads(rng, lambda: conv_ref(arrays["x6"], arrays["pw4"]), arrays,
                {"x6": rp.input, "pw4": rp.weight}, gp)


DEFORM_CASES = [  # d, groups, offset groups, mask, stride, padding, dilation
    (1, 1, 1, True, 1, 1, 1),
    (1, 2, 2, False, 2, 0, 2),
    (2, 1, 1, True, 1, 1, 1),
    (2, 2, 4, True, 2, 1, 1),
    (2, 1, 2, False, 1, 2, 2),
    (3, 1, 1, True, 1, 1, 1),
]


@pytest.mark.parametrize("case", DEFORM_CASES, ids=str)
def test_deform_conv_backward_matches_finite_differences(rng, case):
    d, groups, og, use_mask, stride, padding, dilation = case
    cin, cout = 4, 6 if d < 3 else 2
    sp = (6, 5, 4)[:d]
    k = (3,) * d if d < 3 else (2,) * d
    ntap = math.prod(k)
    out = tuple((n + 2 * padding - dilation * (kk - 1) - 1) // stride + 1 for n, kk in zip(sp, k))
    # the interpolation has kinks where a sample lands on the grid (an integer offset: the
    # windows start on it), where no derivative exists: keep every offset 1e-3 away from
    # them, past the central difference's reach (EPS times a normal draw, ~1e-5)
    x = rng.standard_normal((2, cin) + sp)
    off = rng.uniform(-2.5, 2.5, (2, og * ntap * d) + out)
    frac = off - np.floor(off)
    off[(frac < 1e-3) | (frac > 1 - 1e-3)] += 0.01
    arrays = {"x": x,
              "off": off,
              "w": rng.standard_normal((cout, cin // groups) + k),
              "b": rng.standard_normal(cout),
              "mask": rng.uniform(-1, 1, (2, og * ntap) + out)}
    mask = arrays["mask"] if use_mask else None
    kw = dict(stride=stride, padding=padding, dilation=dilation)

    def forward():
        return deform_conv_ref(arrays["x"], arrays["off"], arrays["w"], arrays["b"],
                               mask=arrays["mask"] if use_mask else None, **kw)

    g = rng.standard_normal(forward().shape)
    r = numbaconv.deform_conv_backward(g, arrays["x"], arrays["off"], arrays["w"], arrays["b"],
                                       mask=mask, **kw)
    grads = {"x": r.input, "off": r.offset, "w": r.weight, "b": r.bias}
    if use_mask:
        grads["mask"] = r.mask
    else:
        assert r.mask is None
    check_grads(rng, forward, arrays, grads, g)


def test_deform_backward_zero_offsets_is_conv_backward_and_flags(rng):
    x = rng.standard_normal((2, 16, 9, 8)).astype(np.float32)
    w = rng.standard_normal((24, 16, 3, 3)).astype(np.float32)
    g = rng.standard_normal((2, 24, 9, 8)).astype(np.float32)
    off = np.zeros((2, 18, 9, 8), np.float32)
    r = numbaconv.deform_conv_backward(g, x, off, w, padding=1)
    c = numbaconv.conv_backward(g, x, w, padding=1)
    assert r.input.dtype == np.float32 and r.weight.dtype == np.float32
    assert_close(r.input, c.input, np.float32)
    assert_close(r.weight, c.weight, np.float32)
    skip = numbaconv.deform_conv_backward(g, x, off, w, padding=1, input_grad=False,
                                          offset_grad=False)
    assert skip.input is None and skip.offset is None and skip.mask is None
    assert_close(skip.weight, c.weight, np.float32)
    bad = off.copy()
    bad[0, 0, 0, 0] = np.nan
    bad[1, 3, 2, 2] = 1e30
    r = numbaconv.deform_conv_backward(g, x, bad, w, padding=1)
    assert np.isfinite(r.input).all() and np.isfinite(r.offset).all()
    assert r.offset[0, 0, 0, 0] == 0 and r.offset[1, 3, 2, 2] == 0


POOL_CASES = [  # d, kernel, stride, padding, dilation, ceil_mode
    (1, 3, 2, 1, 1, True),
    (2, 2, None, 0, 1, False),
    (2, 3, 2, 1, 2, False),
    (3, 2, 1, 1, 1, True),
]


@pytest.mark.parametrize("case", POOL_CASES, ids=str)
def test_pool_backward_matches_finite_differences(rng, case):
    d, k, s, p, dl, cm = case
    sp = (7, 6, 5)[:d]
    arrays = {"x": rng.standard_normal((2, 3) + sp)}
    st = k if s is None else s
    kt, stt, pt, dlt = (k,) * d, (st,) * d, (p,) * d, (dl,) * d

    def pool(op, **extra):
        return pool_ref(arrays["x"], op, kt, stt, pt, dlt, cm, **extra)

    y = pool("max")[0]
    g = rng.standard_normal(y.shape)
    r = numbaconv.max_pool_backward(g, arrays["x"], k, s, p, dl, cm)
    check_grads(rng, lambda: pool("max")[0], arrays, {"x": r.input}, g)
    if dl == 1:
        for include, div in [(True, None), (False, None), (True, 3)]:
            r = numbaconv.avg_pool_backward(g, arrays["x"], k, s, p, cm, include, div)
            check_grads(rng, lambda inc=include, dv=div: pool("avg", count_include_pad=inc,
                                                              divisor_override=dv),
                        arrays, {"x": r.input}, g)
    if p == 0 and dl == 1:
        arrays["x"] = np.abs(arrays["x"]) + 0.5
        for norm in (1.0, 2.0, 3.5):
            r = numbaconv.lp_pool_backward(g, arrays["x"], norm, k, s, cm)
            check_grads(rng, lambda nt=norm: pool("lp", norm_type=nt), arrays, {"x": r.input}, g)


@pytest.mark.parametrize("d", [1, 2, 3])
def test_adaptive_and_global_pool_backward(rng, d):
    x = rng.standard_normal((2, 3) + (7,) * d)
    for o in (1, 3, 5):
        for name in ("max", "avg"):
            fwd = getattr(numbaconv, f"adaptive_{name}_pool")
            bwd = getattr(numbaconv, f"adaptive_{name}_pool_backward")
            y = fwd(x, o)
            g = rng.standard_normal(y.shape)
            ax = {"x": x.copy()}
            check_grads(rng, lambda f=fwd, size=o, a=ax: f(a["x"], size), ax,
                        {"x": bwd(g, x, o).input}, g)
    g = rng.standard_normal((2, 3))
    arrays = {"x": x.copy()}
    check_grads(rng, lambda: numbaconv.global_avg_pool(arrays["x"]), arrays,
                {"x": numbaconv.global_avg_pool_backward(g, x).input}, g)
    check_grads(rng, lambda: numbaconv.global_max_pool(arrays["x"]), arrays,
                {"x": numbaconv.global_max_pool_backward(g, x).input}, g)


@pytest.mark.parametrize("name,args", [("relu", ()), ("leaky_relu", (0.2,)), ("elu", (1.5,)),
                                       ("gelu", ()), ("sigmoid", ()), ("tanh", ()),
                                       ("silu", ()), ("softmax", (0,))])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_activation_backward(rng, name, args, dtype):
    x = rng.standard_normal((4, 33)).astype(dtype)
    g = rng.standard_normal((4, 33)).astype(dtype)
    r = getattr(numbaconv, f"{name}_backward")(g, x, *args).input
    assert r.dtype == dtype and r.shape == x.shape
    if dtype == np.float64:
        arrays = {"x": x}
        fwd = getattr(numbaconv, name)
        check_grads(rng, lambda: fwd(arrays["x"], *args), arrays, {"x": r}, g)


def test_rank_aliases_and_unpool_backward(rng):
    x = rng.standard_normal((2, 3, 8))
    w = rng.standard_normal((4, 3, 3))
    g = rng.standard_normal((2, 4, 6))
    a, b = numbaconv.conv1d_backward(g, x, w), numbaconv.conv_backward(g, x, w)
    assert_close(a.weight, b.weight, np.float64)
    with pytest.raises(ValueError, match="conv2d_backward takes a weight with 4 axes"):
        numbaconv.conv2d_backward(g, x, w)
    gp = rng.standard_normal((3, 4, 4))
    xp = rng.standard_normal((3, 8, 8))  # unbatched: the 2d form reads kernel 2 as (2, 2)
    assert_close(numbaconv.max_pool2d_backward(gp, xp, 2).input,
                 numbaconv.max_pool_backward(gp, xp, (2, 2)).input, np.float64)
    y, idx = numbaconv.max_pool(x, 2, return_indices=True)
    arrays = {"y": y.copy()}
    gu = rng.standard_normal(x.shape)
    r = numbaconv.max_unpool1d_backward(gu, y, idx, 2)
    check_grads(rng, lambda: numbaconv.max_unpool(arrays["y"], idx, 2), arrays, {"y": r.input},
                gu)
