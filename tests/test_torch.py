"""Cross-checks against PyTorch, when it is installed (skipped otherwise)."""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close

import numbaconv

torch = pytest.importorskip("torch")
F = torch.nn.functional
pytestmark = pytest.mark.torch

TORCH_PAD = {"reflect": "reflect", "replicate": "replicate", "circular": "circular"}


@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("mode", ["zeros", "reflect", "replicate", "circular"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups, stride, dilation", [(1, 1, 1), (2, 2, 1), (4, 1, 2), (1, 3, 2)])
def test_matches_torch(rng, d, mode, dtype, groups, stride, dilation):
    x = rng.standard_normal((2, 4) + (9,) * d).astype(dtype)
    w = rng.standard_normal((8, 4 // groups) + (3,) * d).astype(dtype)
    b = rng.standard_normal(8).astype(dtype)
    conv = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}[d]
    tx, tw, tb = (torch.from_numpy(a) for a in (x, w, b))
    if mode == "zeros":
        expected = conv(tx, tw, tb, stride=stride, padding=2, dilation=dilation, groups=groups)
    else:
        tx = F.pad(tx, (2,) * (2 * d), mode=TORCH_PAD[mode])
        expected = conv(tx, tw, tb, stride=stride, dilation=dilation, groups=groups)
    y = numbaconv.conv(x, w, b, stride=stride, padding=2, dilation=dilation, groups=groups,
                       padding_mode=mode)
    assert_close(y, expected.numpy(), dtype)


@pytest.mark.filterwarnings("ignore:Using padding='same' with even kernel:UserWarning")
@pytest.mark.parametrize("kernel, dilation", [((2, 4), 1), ((3, 4), (2, 1)), ((4, 5), 3)])
def test_same_padding_matches_torch(rng, kernel, dilation):
    x = rng.standard_normal((1, 3, 11, 10))
    w = rng.standard_normal((2, 3) + kernel)
    expected = F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding="same",
                        dilation=dilation).numpy()
    assert_close(numbaconv.conv(x, w, padding="same", dilation=dilation), expected, np.float64)


@pytest.mark.parametrize("activation, fn", [("relu", F.relu), ("leaky_relu", F.leaky_relu),
                                            ("sigmoid", torch.sigmoid), ("tanh", torch.tanh),
                                            ("gelu", F.gelu), ("silu", F.silu),
                                            ("elu", F.elu)])
def test_activations_match_torch(rng, activation, fn):
    x = rng.standard_normal((2, 3, 8, 8)).astype(np.float32) * 3
    w = rng.standard_normal((5, 3, 3, 3)).astype(np.float32)
    expected = fn(F.conv2d(torch.from_numpy(x), torch.from_numpy(w), padding=1)).numpy()
    y = numbaconv.conv(x, w, padding=1, activation=activation)
    assert_close(y, expected, np.float32)


def test_separable_matches_torch(rng):
    x = rng.standard_normal((2, 8, 12, 12)).astype(np.float32)
    dw = rng.standard_normal((16, 1, 3, 3)).astype(np.float32)
    pw = rng.standard_normal((10, 16, 1, 1)).astype(np.float32)
    b = rng.standard_normal(10).astype(np.float32)
    t = F.conv2d(F.conv2d(torch.from_numpy(x), torch.from_numpy(dw), padding=1, stride=2,
                          groups=8), torch.from_numpy(pw), torch.from_numpy(b))
    y = numbaconv.separable_conv(x, dw, pw, b, padding=1, stride=2)
    assert_close(y, t.numpy(), np.float32)
