"""The one-tap path (``1 x ... x 1`` kernels) against the independent reference.

:func:`numbaconv._pointwise.onetap` computes every convolution whose kernel has
one tap (and at least four output channels per group) as an NCHW matrix
product; each test checks that it was taken. The shapes make whole and narrow
last panels of positions, blocks of output channels cut short, channel splits
across jobs, and every stride, padding and padding mode through the source
table.
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from reference import conv_ref, conv_weight_grad_ref

import numbaconv
from numbaconv import _microkernel, _pointwise

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def calls(count_calls):
    """How many times the one-tap kernel ran."""
    return count_calls(_pointwise, "onetap")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_matches_reference(rng, calls, d, mode, dtype):
    # positions: several whole panels plus a narrow or a wide last one;
    # 13 output channels per group: a block of rows cut short
    shape = {1: (71,), 2: (9, 11), 3: (3, 4, 5)}[d]
    stride = (1, 2, 1)[:d] if mode == "zeros" else 1
    padding = (1, 0, 2)[:d]
    x = rng.standard_normal((2, 6) + shape).astype(dtype)
    w = rng.standard_normal((26, 3) + (1,) * d).astype(dtype)
    b = rng.standard_normal(26).astype(dtype)
    kw = dict(stride=stride, padding=padding, groups=2, padding_mode=mode, activation="silu")
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1
    assert y.dtype == dtype
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_channel_splits_and_long_reductions(rng, calls, dtype):
    """One image and few positions: the output channels are split across jobs."""
    x = rng.standard_normal((1, 300, 5, 5)).astype(dtype)
    w = rng.standard_normal((200, 300, 1, 1)).astype(dtype)
    b = rng.standard_normal(200).astype(dtype)
    y = numbaconv.conv(x, w, b, activation="relu")
    assert calls[0] == 1
    assert_close(y, conv_ref(x, w, b, activation="relu"), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_panel_widths(rng, calls, dtype):
    """Every length of the last panel of positions, narrow and wide."""
    nr = 2 * _microkernel.lanes(dtype)
    w = rng.standard_normal((9, 4, 1)).astype(dtype)
    for n in range(1, 2 * nr + 2):
        x = rng.standard_normal((2, 4, n)).astype(dtype)
        assert_close(numbaconv.conv(x, w), conv_ref(x, w), dtype)
    assert calls[0] == 2 * nr + 1


def test_sources_table():
    """Each output position's input offset, -1 where it reads the zero padding."""
    from numbaconv._geometry import conv_window, kernel_tables

    win = conv_window((3, 4), (1, 1), 2, ((1, 0), (0, 1)), 1)
    src, contig = _pointwise.sources(kernel_tables(win, "zeros"), 12)
    # outputs (2, 3): rows -1, 1 of the input (padding 1 before), columns 0, 2, 4 (4 is padding)
    assert src.tolist() == [-1, -1, -1, 4, 6, -1]
    assert not contig
    win = conv_window((3, 4), (1, 1), 1, 0, 1)
    src, contig = _pointwise.sources(kernel_tables(win, "zeros"), 12)
    assert contig and src.tolist() == list(range(12))


def test_backward_on_the_path(rng, calls):
    """The gradients of a 1x1 convolution run through the same path and match."""
    x = rng.standard_normal((2, 10, 6, 7))
    w = rng.standard_normal((12, 10, 1, 1))
    g = rng.standard_normal((2, 12, 6, 7))
    grads = numbaconv.conv_backward(g, x, w)
    assert calls[0] >= 1
    assert_close(grads.input, np.einsum("nohw,oc->nchw", g, w[:, :, 0, 0]), np.float64)
    assert_close(grads.weight, conv_weight_grad_ref(x, g, (1, 1)), np.float64)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", ["zeros", "reflect", "circular"])
@pytest.mark.parametrize("d", [1, 2])
def test_runs_of_panels(rng, calls, monkeypatch, d, mode, dtype):
    """Jobs of several panels (taken wherever the panels leave enough jobs), forced on small
    shapes through the budget for inputs from memory.

    Runs that span images, a narrow or wide last panel, strided and padded
    sources, groups, and budgets of one to four panels a job.
    """
    monkeypatch.setattr(_pointwise, "_STREAM_BYTES", 0)
    kernel, runs = _pointwise.onetap_conv, []

    def record(*args):
        runs.append(args[-2])  # panels per job
        return kernel(*args)

    monkeypatch.setattr(_pointwise, "onetap_conv", record)
    shape = {1: (999,), 2: (33, 23)}[d]
    stride = (2, 1)[:d] if mode == "zeros" else 1
    x = rng.standard_normal((4, 6) + shape).astype(dtype)
    w = rng.standard_normal((22, 3) + (1,) * d).astype(dtype)
    b = rng.standard_normal(22).astype(dtype)
    kw = dict(stride=stride, padding=(1, 2)[:d], groups=2, padding_mode=mode, activation="relu")
    want = conv_ref(x, w, b, **kw)
    nr = 2 * _microkernel.lanes(dtype)
    for panels in (1, 3, 4):
        monkeypatch.setattr(_pointwise, "_PANELS_BYTES", panels * 3 * nr * x.itemsize)
        x0 = x.copy()
        assert_close(numbaconv.conv(x, w, b, **kw), want, dtype)
        assert np.array_equal(x, x0)
    assert runs == [1, 3, 4]
