"""The matrix-product-and-gather path of strided transposed convolutions, against the definition.

:func:`numbaconv._col2im.usable` sends ``conv_transpose`` there when some
stride is above 1; each test checks whether it was taken. The shapes make jobs
of several chunks of output channels (the last one cut short), narrow and wide
last panels of positions, and outputs with from zero to several terms.
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from reference import conv_transpose_ref

import numbaconv
from numbaconv import _col2im

DTYPES = [np.float32, np.float64]


@pytest.fixture
def calls(count_calls):
    """How many times the col2im path ran."""
    return count_calls(_col2im, "conv_transpose_gemm")


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 2, 3])
@pytest.mark.parametrize("chunk_bytes", [1, 512 * 1024])
def test_matches_definition(rng, calls, monkeypatch, d, dtype, chunk_bytes):
    # chunk_bytes=1: one output channel a job; the default: every channel of a group
    monkeypatch.setattr(_col2im, "_CHUNK_BYTES", chunk_bytes)
    kernel = (4, 3, 2)[:d]
    stride = (2, 3, 1)[:d]
    dilation = (1, 2, 1)[:d]
    padding = ((1, 2), (0, 1), (1, 0))[:d]
    op = (1, 2, 0)[:d]
    shape = {1: (45,), 2: (5, 7), 3: (3, 4, 5)}[d]
    x = rng.standard_normal((3, 6) + shape).astype(dtype)
    w = rng.standard_normal((6, 5) + kernel).astype(dtype)
    b = rng.standard_normal(10).astype(dtype)
    kw = dict(stride=stride, padding=padding, output_padding=op, groups=2, dilation=dilation,
              activation="leaky_relu")
    y = numbaconv.conv_transpose(x, w, b, **kw)
    assert calls[0] == 1
    assert y.dtype == dtype
    assert_close(y, conv_transpose_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_dcgan_layer_and_unbatched(rng, calls, dtype):
    """The bench's shape (many channels, a 4x4 kernel at stride 2), batched and not."""
    x = rng.standard_normal((2, 64, 8, 8)).astype(dtype)
    w = rng.standard_normal((64, 48, 4, 4)).astype(dtype)
    kw = dict(stride=2, padding=1)
    ref = conv_transpose_ref(x, w, **kw)
    assert_close(numbaconv.conv_transpose(x, w, **kw), ref, dtype)
    assert_close(numbaconv.conv_transpose(x[1], w, **kw), ref[1], dtype)
    assert calls[0] == 2


def test_outputs_no_tap_reaches_get_the_bias(rng, calls):
    """A 1-tap kernel at stride 3: two outputs in three get no term, only bias."""
    x = rng.standard_normal((2, 3, 5))
    w = rng.standard_normal((3, 4, 1))
    b = rng.standard_normal(4)
    y = numbaconv.conv_transpose(x, w, b, stride=3, output_padding=2)
    assert calls[0] == 1
    assert_close(y, conv_transpose_ref(x, w, b, stride=3, output_padding=2), np.float64)
    assert_close(y[..., 1::3], np.broadcast_to(b[:, None], y[..., 1::3].shape), np.float64)


def test_stride_one_keeps_the_phases(rng, calls):
    x = rng.standard_normal((1, 4, 6, 6))
    w = rng.standard_normal((4, 4, 3, 3))
    assert_close(numbaconv.conv_transpose(x, w, padding=1), conv_transpose_ref(x, w, padding=1),
                 np.float64)
    assert calls[0] == 0


def test_gather_table_lists_every_term_once():
    """Each (tap, input) pair landing inside the output is in its output's column, once."""
    in_shape, kernel, stride, dil = (4, 3), (3, 2), (2, 3), (1, 2)
    pads, out_shape = ((1, 0), (2, 1)), (7, 8)
    ldc = 16
    table = _col2im.gather_table(in_shape, kernel, stride, dil, pads, out_shape, ldc)
    want = [[] for _ in range(int(np.prod(out_shape)))]
    for t, tap in enumerate(np.ndindex(*kernel)):
        for i, pos in enumerate(np.ndindex(*in_shape)):
            o = [p * s + k * dl - pb for p, s, k, dl, (pb, _) in
                 zip(pos, stride, tap, dil, pads)]
            if all(0 <= v < n for v, n in zip(o, out_shape)):
                want[np.ravel_multi_index(o, out_shape)].append(t * ldc + i)
    lin = int(np.prod(in_shape))
    for o, terms in enumerate(want):
        got = [v for v in table[:, o] if v != lin]
        assert sorted(got) == sorted(terms), o
