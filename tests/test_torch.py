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


def _deform_by_grid_sample(x, off, w, b, stride, padding, dilation, mask):
    """Deformable convolution from ``torch.nn.functional.grid_sample`` (an independent route).

    ``grid_sample`` with ``align_corners=True`` and zero padding interpolates
    exactly as ``torchvision.ops.deform_conv2d`` samples (corners outside the
    input count as zero), bilinear in 2-D and trilinear in 3-D.
    """
    x, off, w = (torch.from_numpy(np.asarray(a, np.float64)) for a in (x, off, w))
    d = w.ndim - 2
    kernel, out, size = w.shape[2:], off.shape[2:], x.shape[2:]
    taps = list(np.ndindex(*kernel))
    og = off.shape[1] // (d * len(taps))
    cpo = x.shape[1] // og
    grids = torch.meshgrid(*(torch.arange(n, dtype=torch.float64) for n in out), indexing="ij")
    cols = torch.zeros((x.shape[0], x.shape[1], len(taps)) + tuple(out), dtype=torch.float64)
    for h in range(og):
        for t, tap in enumerate(taps):
            coords = [grids[a] * stride - padding + tap[a] * dilation
                      + off[:, (h * len(taps) + t) * d + a] for a in range(d)]
            grid = torch.stack([2 * coords[a] / (size[a] - 1) - 1 for a in reversed(range(d))],
                               dim=-1)
            s = F.grid_sample(x[:, h * cpo:(h + 1) * cpo], grid, mode="bilinear",
                              padding_mode="zeros", align_corners=True)
            if mask is not None:
                s = s * torch.from_numpy(np.asarray(mask, np.float64))[:, h * len(taps) + t, None]
            cols[:, h * cpo:(h + 1) * cpo, t] = s
    groups = x.shape[1] // w.shape[1]
    cg, mg = w.shape[1], w.shape[0] // groups
    wt = w.reshape(w.shape[0], cg, len(taps))
    y = torch.cat([torch.einsum("nct...,oct->no...", cols[:, g * cg:(g + 1) * cg],
                                wt[g * mg:(g + 1) * mg]) for g in range(groups)], dim=1)
    return (y + torch.from_numpy(np.asarray(b, np.float64)).reshape((1, -1) + (1,) * d)).numpy()


@pytest.mark.parametrize("d", [2, 3])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("stride, padding, dilation, groups, offset_groups, with_mask", [
    (1, 1, 1, 1, 1, False), (2, 2, 1, 2, 1, True), (1, 2, 2, 1, 4, True), (2, 0, 1, 2, 2, False),
])
def test_deform_conv_matches_grid_sample(rng, d, dtype, stride, padding, dilation, groups,
                                         offset_groups, with_mask):
    size = 9 if d == 2 else 6
    x = rng.standard_normal((2, 4) + (size,) * d).astype(dtype)
    w = rng.standard_normal((4, 4 // groups) + (3,) * d).astype(dtype)
    b = rng.standard_normal(4).astype(dtype)
    out = tuple([(size + 2 * padding - dilation * 2 - 1) // stride + 1] * d)
    off = (2 * rng.standard_normal((2, d * offset_groups * 3 ** d) + out)).astype(dtype)
    mask = rng.random((2, offset_groups * 3 ** d) + out).astype(dtype) if with_mask else None
    y = numbaconv.deform_conv(x, off, w, b, stride=stride, padding=padding, dilation=dilation,
                              mask=mask)
    expected = _deform_by_grid_sample(x, off, w, b, stride, padding, dilation, mask)
    assert_close(y, expected, dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("groups,stride,mode", [(1, 1, "zeros"), (2, 2, "reflect"),
                                                (48, 1, "circular")])
def test_conv_backward_matches_torch_autograd(rng, dtype, groups, stride, mode):
    x = rng.standard_normal((3, 48, 13, 11)).astype(dtype)
    w = rng.standard_normal((40 if groups < 48 else 48, 48 // groups, 3, 3)).astype(dtype)
    b = rng.standard_normal(w.shape[0]).astype(dtype)
    tx, tw, tb = (torch.tensor(a, requires_grad=True) for a in (x, w, b))
    if mode == "zeros":
        y = F.conv2d(tx, tw, tb, stride, 1, 1, groups)
    else:
        y = F.conv2d(F.pad(tx, (1, 1, 1, 1), mode=mode), tw, tb, stride, 0, 1, groups)
    g = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.from_numpy(g))
    r = numbaconv.conv_backward(g, x, w, b, stride, 1, 1, groups, mode)
    for got, t in ((r.input, tx), (r.weight, tw), (r.bias, tb)):
        assert_close(got, t.grad.numpy(), dtype)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_conv_transpose_backward_matches_torch_autograd(rng, dtype):
    x = rng.standard_normal((2, 32, 6, 7)).astype(dtype)
    w = rng.standard_normal((32, 20, 4, 4)).astype(dtype)
    tx, tw = (torch.tensor(a, requires_grad=True) for a in (x, w))
    y = F.conv_transpose2d(tx, tw, None, 2, 1)
    g = rng.standard_normal(tuple(y.shape)).astype(dtype)
    y.backward(torch.from_numpy(g))
    r = numbaconv.conv_transpose_backward(g, x, w, None, 2, 1)
    assert_close(r.input, tx.grad.numpy(), dtype)
    assert_close(r.weight, tw.grad.numpy(), dtype)


@pytest.mark.parametrize("pool", ["max", "avg"])
def test_pool_backward_matches_torch_autograd(rng, pool):
    x = rng.standard_normal((2, 5, 15, 14)).astype(np.float32)
    tx = torch.tensor(x, requires_grad=True)
    fn = F.max_pool2d if pool == "max" else F.avg_pool2d
    y = fn(tx, 3, 2, 1, ceil_mode=True)
    g = rng.standard_normal(tuple(y.shape)).astype(np.float32)
    y.backward(torch.from_numpy(g))
    r = getattr(numbaconv, f"{pool}_pool_backward")(g, x, 3, 2, 1, ceil_mode=True)
    assert_close(r.input, tx.grad.numpy(), np.float32)
