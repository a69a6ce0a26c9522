"""Every bad input gets a ValueError/TypeError that names the argument."""

from __future__ import annotations

import numpy as np
import pytest

import numbaconv

X = np.zeros((2, 4, 8, 8), np.float32)
W = np.zeros((6, 4, 3, 3), np.float32)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        (dict(x=np.zeros((2, 4, 8)), weight=W), ValueError, r"C_in .*read as unbatched"),
        (dict(x=np.zeros((4, 8)), weight=W), ValueError, r"x must have shape"),
        (dict(x=np.zeros((2, 4, 8, 8, 8, 8)), weight=W), ValueError, r"x must have shape"),
        (dict(weight=np.zeros((6, 4))), ValueError, r"weight must have shape"),
        (dict(weight=np.zeros((6, 3, 3, 3))), ValueError, r"weight.shape\[1\] must be C_in"),
        (dict(weight=np.zeros((6, 2, 3, 3)), groups=3), ValueError, r"divisible by groups"),
        (dict(weight=np.zeros((5, 2, 3, 3)), groups=2), ValueError, r"divisible by groups"),
        (dict(groups=0), ValueError, r"groups must be a positive int"),
        (dict(groups=1.5), TypeError, r"groups must be a positive int"),
        (dict(groups=True), TypeError, r"groups"),
        (dict(stride=0), ValueError, r"stride must be positive"),
        (dict(stride=(1, -1)), ValueError, r"stride must be positive"),
        (dict(stride=(1, 1, 1)), ValueError, r"stride must be an int or a tuple of 2"),
        (dict(stride=1.0), TypeError, r"stride must be an int"),
        (dict(dilation=0), ValueError, r"dilation must be positive"),
        (dict(dilation="2"), TypeError, r"dilation must be an int"),
        (dict(padding=-1), ValueError, r"padding must be non-negative"),
        (dict(padding=((1, -1), 0)), ValueError, r"padding must be non-negative"),
        (dict(padding=(1, 2, 3)), ValueError, r"padding must be an int, a tuple"),
        (dict(padding=((1, 2, 3), 0)), ValueError, r"padding must be an int, a tuple"),
        (dict(padding="full"), ValueError, r"padding must be an int, a tuple, 'same' or 'valid'"),
        (dict(padding=1.5), TypeError, r"padding must be an int"),
        (dict(weight=np.zeros((6, 4, 9, 3))), ValueError, r"output would be empty"),
        (dict(weight=np.zeros((6, 4, 3, 3)), dilation=5), ValueError, r"output would be empty"),
        (dict(padding=8, padding_mode="reflect"), ValueError, r"padding_mode='reflect' needs"),
        (dict(padding_mode="mirror"), ValueError, r"padding_mode must be one of"),
        (dict(activation="softplus"), ValueError, r"activation must be one of"),
        (dict(activation=1), ValueError, r"activation must be one of"),
        (dict(x=X.astype(np.complex64)), TypeError, r"x must hold real numbers"),
        (dict(weight=W.astype(np.complex128)), TypeError, r"weight must hold real numbers"),
        (dict(x=np.array([["a"]])), TypeError, r"x must hold real numbers"),
        (dict(bias=np.zeros(5)), ValueError, r"bias must have shape \(C_out,\) = \(6,\)"),
        (dict(bias=np.zeros((6, 1))), ValueError, r"bias must have shape"),
        (dict(bias=np.zeros(6, complex)), TypeError, r"bias must hold real numbers"),
        (dict(x=np.zeros((2, 4, 0, 8))), ValueError, r"non-empty spatial axes"),
        (dict(weight=np.zeros((0, 4, 3, 3))), ValueError, r"weight must have non-empty axes"),
        (dict(x=[[1, 2], [3]]), TypeError, r"x must be an array of real numbers"),
    ],
)
def test_conv_rejects(kwargs, exc, match):
    args = dict(x=X, weight=W)
    args.update(kwargs)
    x, w = args.pop("x"), args.pop("weight")
    with pytest.raises(exc, match=match):
        numbaconv.conv(x, w, **args)


def test_depthwise_rejects():
    with pytest.raises(ValueError, match=r"weight must have shape \(C \* multiplier, 1"):
        numbaconv.depthwise_conv(X, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="multiple of the 4 input channels"):
        numbaconv.depthwise_conv(X, np.zeros((6, 1, 3, 3)))


def test_pointwise_rejects():
    with pytest.raises(ValueError, match=r"weight must have shape \(C_out, C_in\)"):
        numbaconv.pointwise_conv(X, np.zeros((6, 4, 3, 3)))
    with pytest.raises(ValueError, match="at least one spatial axis"):
        numbaconv.pointwise_conv(np.zeros((4, 8)), np.zeros((6, 4)))
    with pytest.raises(ValueError, match=r"weight.shape\[1\] must be C_in"):
        numbaconv.pointwise_conv(X, np.zeros((6, 3)))


def test_separable_rejects():
    dw = np.zeros((4, 1, 3, 3))
    pw = np.zeros((6, 4))
    with pytest.raises(ValueError, match="depthwise_weight must have shape"):
        numbaconv.separable_conv(X, np.zeros((4, 2, 3, 3)), pw)
    with pytest.raises(ValueError, match="depthwise_weight.shape\\[0\\] must be a multiple"):
        numbaconv.separable_conv(X, np.zeros((6, 1, 3, 3)), pw)
    with pytest.raises(ValueError, match=r"pointwise_weight.shape\[1\] must equal"):
        numbaconv.separable_conv(X, dw, np.zeros((6, 5)))
    with pytest.raises(ValueError, match="pointwise_weight must have shape"):
        numbaconv.separable_conv(X, dw, np.zeros((6, 4, 3)))
    with pytest.raises(ValueError, match=r"bias must have shape"):
        numbaconv.separable_conv(X, dw, pw, np.zeros(4))
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        numbaconv.separable_conv(X, dw, pw, padding_mode="edge")


def test_rank_alias_rejects_wrong_rank():
    with pytest.raises(ValueError, match="conv3d takes weight"):
        numbaconv.conv3d(X, W)


def test_inputs_never_modified_on_error():
    x = X.copy()
    with pytest.raises(ValueError):
        numbaconv.conv(x, W, padding=-1)
    np.testing.assert_array_equal(x, X)


def test_cached_windows_still_check_types():
    """Windows are cached by their parameters (``conv_window``): ``True``, ``1.0`` and the
    like equal (and hash as) the ints already cached, and must still raise."""
    x = np.random.default_rng(0).standard_normal((1, 4, 8, 8)).astype(np.float32)
    w = np.ones((6, 4, 3, 3), np.float32)
    y = numbaconv.conv(x, w, stride=1, padding=1, dilation=1)  # now cached
    for kwargs in (dict(stride=True), dict(stride=(1, True)), dict(stride=1.0),
                   dict(padding=(1.0, 1)), dict(padding=((1, True), 1)), dict(dilation=True)):
        args = dict(stride=1, padding=1, dilation=1)
        args.update(kwargs)
        with pytest.raises(TypeError, match=next(iter(kwargs))):
            numbaconv.conv(x, w, **args)
    # other integer types and lists take the uncached checks, with the same result
    same = numbaconv.conv(x, w, stride=np.int64(1), padding=[1, 1], dilation=(np.int32(1), 1))
    np.testing.assert_array_equal(same, y)
