"""Standalone activations against NumPy formulas, in place and not."""

from __future__ import annotations

import math

import numpy as np
import pytest
from checks import assert_close

import numbaconv

ERF = np.vectorize(math.erf, otypes=[float])
REFS = {
    "relu": (numbaconv.relu, lambda x: np.maximum(x, 0)),
    "leaky_relu": (lambda x, **k: numbaconv.leaky_relu(x, 0.2, **k),
                   lambda x: np.where(x < 0, 0.2 * x, x)),
    "elu": (lambda x, **k: numbaconv.elu(x, 0.7, **k),
            lambda x: np.where(x < 0, 0.7 * np.expm1(np.minimum(x, 0)), x)),
    "gelu": (numbaconv.gelu, lambda x: 0.5 * x * (1 + ERF(x / math.sqrt(2)))),
    "sigmoid": (numbaconv.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
    "tanh": (numbaconv.tanh, np.tanh),
    "silu": (numbaconv.silu, lambda x: x / (1 + np.exp(-x))),
}


@pytest.mark.parametrize("name", sorted(REFS))
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_elementwise(rng, name, dtype):
    ours, ref = REFS[name]
    x = (rng.standard_normal((3, 5, 7)) * 4).astype(dtype)
    expected = ref(x.astype(np.float64))
    y = ours(x)
    assert y.dtype == dtype and y.shape == x.shape
    assert_close(y, expected, dtype)
    xt = x[:, ::-1].T  # any layout
    assert_close(ours(xt), ref(xt.astype(np.float64)), dtype)
    inplace = x.copy()
    assert ours(inplace, out=inplace) is inplace
    assert_close(inplace, expected, dtype)
    out = np.empty_like(x)
    assert ours(x, out=out) is out
    assert_close(out, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_relu_and_leaky_relu_exact_on_every_lane(rng, dtype):
    """relu and leaky relu in place and not, on runs of whole vectors and a partial last one,
    with inf, -inf, NaN and zeros in every lane position: exact."""
    x = rng.standard_normal(77).astype(dtype)
    x[rng.integers(0, 77, 20)] = rng.choice([np.inf, -np.inf, np.nan, 0.0, -0.0], 20)
    with np.errstate(invalid="ignore"):
        for f, want in [(numbaconv.relu, np.where(x < 0, 0, x)),
                        (lambda a, **k: numbaconv.leaky_relu(a, 0.3, **k),
                         np.where(x < 0, x * dtype(0.3), x))]:
            np.testing.assert_array_equal(f(x), want)
            inplace = x.copy()
            np.testing.assert_array_equal(f(inplace, out=inplace), want)


def test_nan_propagates_and_integers_give_float64():
    x = np.array([np.nan, -1.0, 2.0])
    for f, _ in REFS.values():
        assert np.isnan(f(x)[0])
    assert numbaconv.relu(np.array([-1, 2])).dtype == np.float64


@pytest.mark.parametrize("axis", [0, 1, -1, 2])
def test_softmax(rng, axis):
    x = rng.standard_normal((3, 4, 5)) * 10
    e = np.exp(x - x.max(axis=axis, keepdims=True))
    expected = e / e.sum(axis=axis, keepdims=True)
    assert_close(numbaconv.softmax(x, axis), expected, np.float64)
    y = x.copy()
    numbaconv.softmax(y, axis, out=y)
    assert_close(y, expected, np.float64)
    assert_close(numbaconv.softmax(x.astype(np.float32), axis), expected, np.float32)


@pytest.mark.parametrize(
    "call, exc, match",
    [
        (lambda: numbaconv.relu(np.ones(3), out=np.ones(4)), ValueError, "out must have shape"),
        (lambda: numbaconv.relu(np.ones(3), out=np.ones(3, np.float32)), ValueError,
         "dtype float64"),
        (lambda: numbaconv.relu(np.ones(3), out=[0, 0, 0]), TypeError, "out must be a numpy"),
        (lambda: numbaconv.relu(np.ones(3, complex)), TypeError, "real numbers"),
        (lambda: numbaconv.softmax(np.ones(3), axis=1), ValueError, "axis must be in"),
        (lambda: numbaconv.softmax(np.ones(3), axis=0.5), TypeError, "axis must be an int"),
        (lambda: numbaconv.softmax(np.float64(1.0)), ValueError, "at least one axis"),
    ],
)
def test_bad_input(call, exc, match):
    with pytest.raises(exc, match=match):
        call()


def test_read_only_out_rejected():
    out = np.zeros(3)
    out.flags.writeable = False
    with pytest.raises(ValueError, match="writeable"):
        numbaconv.relu(np.ones(3), out=out)


ERFC = np.vectorize(math.erfc, otypes=[float])


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "silu", "elu", "gelu"])
def test_forms_within_one_rounding(rng, name, dtype):
    """The float32 forms (float64 arithmetic through polynomial ``exp`` and ``erfc``,
    _vecmath) are within one float32 ulp of the float64 formula, the float64 forms (the C
    library) within 8 ulps: everywhere, in the tails, near 0 (tanh's series, elu's
    ``expm1``), at overflow and underflow, and on inf, -0.0 and NaN. gelu's reference is
    ``x erfc(-x / sqrt 2) / 2``, which keeps the negative tail (``1 + erf`` cancels there)."""
    ours, ref = REFS[name]
    if name == "gelu":  # the argument rounded as ours is: erfc's tail scales its error by 2 z^2
        def ref(x):
            return 0.5 * x * ERFC(-x * (1 / math.sqrt(2)))
    f32 = np.finfo(np.float32)
    ends = [0.0, -0.0, 1e-3, -1e-3, 9.9e-4, 1e-30, -1e-30, 1e-45, 80.0, -80.0, 88.5, -88.5,
            100.0, -100.0, 104.0, -104.0, 1e30, -1e30, f32.max, -f32.max, np.inf, -np.inf,
            np.nan]
    x = np.concatenate([rng.standard_normal(20000) * 12, rng.standard_normal(2000) * 2e-3,
                        np.geomspace(1e-38, 1e2, 3000), -np.geomspace(1e-38, 1e2, 3000),
                        ends]).astype(dtype)
    got = ours(x)
    with np.errstate(over="ignore", invalid="ignore"):
        want = ref(x.astype(np.float64))
        w32 = want.astype(dtype)
        ulps = 1 if dtype == np.float32 else 8
        within = np.abs(got.astype(np.float64) - want) <= ulps * np.spacing(np.abs(w32))
    same = (got == w32) | (np.isnan(got) & np.isnan(w32))
    bad = ~(same | within)
    assert not bad.any(), list(zip(x[bad][:5], got[bad][:5], want[bad][:5]))


def test_polynomial_exp_and_erfc_in_float64():
    """_vecmath's ``exp_poly`` and ``erfc_poly`` against the C library, to 1e-10 relative,
    over the ranges the float32 forms use (their limits included)."""
    from numba import njit

    from numbaconv._vecmath import erfc_poly, exp_poly

    @njit
    def both(x, z, ex, ez):
        for i in range(x.shape[0]):
            ex[i] = exp_poly(x[i])
            ez[i] = erfc_poly(z[i])

    x = np.concatenate([np.linspace(-708, 709, 200001), [0.0, -1e-300, 1e-300]])
    z = np.concatenate([np.linspace(0, 10.5, x.size - 3), [1e-300, 10.49, 10.5]])
    ex, ez = np.empty_like(x), np.empty_like(z)
    both(x, z, ex, ez)
    assert np.max(np.abs(ex / np.exp(x) - 1)) < 1e-10
    assert np.max(np.abs(ez / ERFC(z) - 1)) < 1e-10
    both(np.array([np.inf, -np.inf, np.nan, 710.0]), np.array([np.inf, 11.0, np.nan, 0.0]),
         ex[:4], ez[:4])
    assert ex[0] == np.inf and ex[1] == 0 and np.isnan(ex[2]) and ex[3] == np.inf
    assert ez[0] == 0 and ez[1] == 0 and np.isnan(ez[2]) and abs(ez[3] - 1) < 1e-10


def _gradient_refs():
    """Float64 derivatives in forms that keep the tails (no ``1 - s`` or ``1 - tanh**2``)."""
    def dsigmoid(x):
        e = np.exp(-np.abs(x))
        return e / (1 + e) ** 2

    def dsilu(x):
        return (1 + x / (1 + np.exp(x))) / (1 + np.exp(-x))  # s (1 + x (1 - s))

    return {
        "sigmoid": (dsigmoid, ()),
        "tanh": (lambda x: 1 / np.cosh(x) ** 2, ()),
        "silu": (dsilu, ()),
        "elu": (lambda x: np.where(x > 0, 1.0, 1.5 * np.exp(x)), (1.5,)),
        "gelu": (lambda x: 0.5 * ERFC(-x * (1 / math.sqrt(2)))
                 + x * np.exp(-0.5 * x * x) / math.sqrt(2 * math.pi), ()),
    }


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ["sigmoid", "tanh", "silu", "elu", "gelu"])
def test_gradients_within_one_rounding(rng, name, dtype):
    """``*_backward`` against float64 derivatives, to one float32 rounding or 8 float64 ulps
    (plus 1e-15 absolute near silu's and gelu's roots, where their float64 sums cancel): the
    float32
    forms of _vecmath and the float64 C-library forms, in the tails (where ``1 - s`` and
    ``1 - tanh**2`` would cancel), at overflow and underflow, and on inf, -0.0 and NaN
    (gelu and silu give NaN at +-inf, as in PyTorch)."""
    ref, args = _gradient_refs()[name]
    f32 = np.finfo(np.float32)
    ends = [0.0, -0.0, 1e-3, -1e-3, 1e-30, -1e-30, 1e-45, 20.0, -20.0, 40.0, -40.0, 88.5,
            -88.5, 104.0, -104.0, 1e30, -1e30, f32.max, -f32.max, np.inf, -np.inf, np.nan]
    x = np.concatenate([rng.standard_normal(20000) * 12, rng.standard_normal(2000) * 2e-3,
                        np.geomspace(1e-38, 1e2, 3000), -np.geomspace(1e-38, 1e2, 3000),
                        ends]).astype(dtype)
    g = np.where(np.arange(x.size) % 2, 1.0, rng.standard_normal(x.size)).astype(dtype)
    got = getattr(numbaconv, f"{name}_backward")(g, x, *args).input
    assert got.dtype == dtype
    with np.errstate(over="ignore", invalid="ignore"):
        want = g.astype(np.float64) * ref(x.astype(np.float64))
        wd = want.astype(dtype)
        ulps = 1 if dtype == np.float32 else 8  # the float64 reference has a few of its own
        near_root = (name in ("silu", "gelu")) & (np.abs(x) < 3)
        slack = np.where(near_root, 1e-15 * np.abs(g.astype(np.float64)), 0.0)
        within = np.abs(got.astype(np.float64) - want) <= ulps * np.spacing(np.abs(wd)) + slack
    same = (got == wd) | (np.isnan(got) & np.isnan(wd))
    bad = ~(same | within)
    assert not bad.any(), list(zip(x[bad][:5], got[bad][:5], want[bad][:5]))


#: ``activation=`` names -> the standalone function with the fused parameters
FUSED_AS = {
    "relu": numbaconv.relu,
    "leaky_relu": lambda y: numbaconv.leaky_relu(y, 0.01),
    "elu": lambda y: numbaconv.elu(y, 1.0),
    "gelu": numbaconv.gelu,
    "sigmoid": numbaconv.sigmoid,
    "tanh": numbaconv.tanh,
    "silu": numbaconv.silu,
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16])
def test_activation_argument_as_the_standalone_function(rng, dtype):
    """Every entry point's ``activation=`` is the standalone function applied to its plain
    result, on every path: the kernels fuse all but gelu, which runs after them
    (``_activations.finish_activation``), before the float16 result's rounding."""
    def arr(*shape):
        return rng.standard_normal(shape).astype(dtype)

    x, x1 = arr(2, 16, 9, 9), arr(2, 64, 30)
    off = 0.5 * arr(2, 18, 9, 9)
    calls = [
        lambda a: numbaconv.depthwise_conv(x, arr(16, 1, 3, 3), padding=1, activation=a),
        lambda a: numbaconv.conv(x, arr(4, 16, 2, 2), activation=a),  # direct (few outputs)
        lambda a: numbaconv.conv(x, arr(24, 16, 1, 1), arr(24), activation=a),  # one tap
        lambda a: numbaconv.conv(x, arr(24, 16, 3, 3), padding=1, activation=a),
        lambda a: numbaconv.conv(x, arr(24, 16, 5, 5), stride=2, activation=a),
        lambda a: numbaconv.conv(x1, arr(32, 64, 3), activation=a),  # 1-D Winograd
        lambda a: numbaconv.separable_conv(x, arr(16, 1, 3, 3), arr(24, 16), padding=1,
                                           activation=a),
        lambda a: numbaconv.deform_conv(x, off, arr(24, 16, 3, 3), padding=1, activation=a),
        lambda a: numbaconv.conv_transpose(x, arr(16, 8, 4, 4), stride=2, padding=1,
                                           activation=a),
        lambda a: numbaconv.conv_transpose(x, arr(16, 8, 3, 3), activation=a),
    ]
    for run in calls:
        state = rng.bit_generator.state
        plain = run(None)
        for name, standalone in FUSED_AS.items():
            rng.bit_generator.state = state  # the same weights
            y = run(name)
            assert y.dtype == dtype
            expected = standalone(plain.astype(np.float64))
            if dtype == np.float16:  # activated in float32, then rounded once (the expected
                # value's input was rounded too: two roundings of float16's 2**-11 apart)
                scale = np.abs(expected).max()
                np.testing.assert_allclose(y, expected, rtol=0, atol=4e-3 * scale)
            else:
                assert_close(y, expected, dtype)
