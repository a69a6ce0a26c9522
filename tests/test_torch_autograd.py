"""numbaconv.torch: autograd Functions pass torch.autograd.gradcheck in float64."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
nct = pytest.importorskip("numbaconv.torch")
pytestmark = pytest.mark.torch


def _randn(gen, *shape, grad=True):
    return torch.randn(*shape, dtype=torch.float64, generator=gen, requires_grad=grad)


@pytest.fixture
def gen(rng):
    return torch.Generator().manual_seed(int(rng.integers(2**31)))


@pytest.mark.parametrize("d,mode,groups", [(1, "zeros", 1), (2, "reflect", 2),
                                           (3, "circular", 1), (2, "symmetric", 1)])
def test_conv_gradcheck(gen, d, mode, groups):
    x = _randn(gen, 2, 4, *(5,) * d)
    w = _randn(gen, 6, 4 // groups, *(3,) * d)
    b = _randn(gen, 6)
    assert torch.autograd.gradcheck(
        lambda x, w, b: nct.conv(x, w, b, 1, 1, 1, groups, mode), (x, w, b))


def test_conv_transpose_gradcheck(gen):
    x = _randn(gen, 2, 4, 4, 3)
    w = _randn(gen, 4, 3, 3, 3)
    b = _randn(gen, 3)
    assert torch.autograd.gradcheck(
        lambda x, w, b: nct.conv_transpose(x, w, b, 2, 1, 1), (x, w, b))


@pytest.mark.parametrize("d", [1, 2, 3])
def test_deform_conv_gradcheck(gen, d):
    k = 3 if d < 3 else 2
    x = _randn(gen, 1, 2, *(5,) * d)
    out = 5 + 2 - k + 1
    off = (torch.rand(1, d * k ** d, *(out,) * d, dtype=torch.float64, generator=gen) * 3 - 1.5
           ).requires_grad_()
    w = _randn(gen, 3, 2, *(k,) * d)
    mask = torch.rand(1, k ** d, *(out,) * d, dtype=torch.float64, generator=gen
                      ).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda x, off, w, mask: nct.deform_conv(x, off, w, None, 1, 1, 1, mask),
        (x, off, w, mask), atol=1e-5)


def test_pools_gradcheck(gen):
    x = _randn(gen, 2, 3, 7, 6)
    for fn in (lambda t: nct.max_pool(t, 3, 2, 1, ceil_mode=True),
               lambda t: nct.avg_pool(t, 3, 2, 1, count_include_pad=False),
               lambda t: nct.lp_pool(t.abs() + 0.5, 2.0, 2),
               lambda t: nct.adaptive_max_pool(t, (3, 4)),
               lambda t: nct.adaptive_avg_pool(t, (3, 4))):
        assert torch.autograd.gradcheck(fn, (x,))


def test_matches_torch_functional(gen):
    x = _randn(gen, 2, 4, 9, 9)
    w = _randn(gen, 8, 4, 3, 3)
    y = nct.conv(x, w, None, 2, 1)
    y.square().sum().backward()
    gx, gw = x.grad.clone(), w.grad.clone()
    x.grad = w.grad = None
    torch.nn.functional.conv2d(x, w, None, 2, 1).square().sum().backward()
    assert torch.allclose(gx, x.grad) and torch.allclose(gw, w.grad)
    with pytest.raises(TypeError, match="torch.Tensor"):
        nct.conv(x.detach().numpy(), w)
