"""The explicit-vector GEMM micro-kernel: its masked stores, its panels, and the paths using it."""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import subprocess
import sys

import numpy as np
import pytest
from checks import assert_close, assert_sums_close
from numba import njit
from reference import conv_ref, deform_conv_ref

import numbaconv
from numbaconv import _implicit, _pointwise, _separable_rows
from numbaconv import _microkernel as mk

DTYPES = [np.float32, np.float64]


@njit(cache=False)
def _block(wide, a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol, rows_out=False):
    if rows_out and wide:
        mk.row_block2(a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol)
    elif rows_out:
        mk.row_block1(a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol)
    elif wide:
        mk.panel_block2(a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol)
    else:
        mk.panel_block1(a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wide", [False, True])
def test_block_writes_exactly_the_valid_rows_and_channels(rng, dtype, wide):
    vl = mk.lanes(dtype)
    nr = (2 if wide else 1) * vl
    kk, lda, ldo, a_off, o_off = 13, 17, 11, 3, 5
    a = rng.standard_normal(a_off + mk.MR * lda).astype(dtype)
    b = rng.standard_normal((kk, nr)).astype(dtype)
    bias = rng.standard_normal(nr).astype(dtype)
    rows = a[a_off:].reshape(mk.MR, lda)[:, :kk].astype(np.float64)
    full = rows @ b.astype(np.float64) + bias  # (MR, NR): position i, channel j
    bound = np.abs(rows) @ np.abs(b.astype(np.float64)) + np.abs(bias)
    for nrow, ncol in [(mk.MR, nr), (1, 1), (mk.MR - 1, nr - 3), (3, vl + 1), (0, nr), (2, 0)]:
        out = np.full(o_off + nr * ldo, np.nan, dtype)
        _block(wide, a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol)
        got = out[o_off:].reshape(nr, ldo)
        assert_sums_close(got[:ncol, :nrow], full[:nrow, :ncol].T, bound[:nrow, :ncol].T, dtype)
        written = np.zeros(out.shape, bool)
        written[o_off:].reshape(nr, ldo)[:ncol, :nrow] = True
        assert np.isnan(out[~written]).all(), (nrow, ncol)  # nothing else touched


def _assert_rows_written(out, o_off, ldo, nrow, nc, full, bound, dtype):
    """A rows-out block stored ``full[:, :nc]`` at ``o_off + i*ldo + j`` and touched nothing
    else (``out`` was NaN; ``nc`` = the valid columns, at most a panel's; ``bound`` the sums
    of the terms' absolute values)."""
    got = out[o_off:].reshape(mk.MR, ldo)
    assert_sums_close(got[:nrow, :nc], full[:, :nc], bound[:, :nc], dtype)
    written = np.zeros(out.shape, bool)
    written[o_off:].reshape(mk.MR, ldo)[:nrow, :nc] = True
    assert np.isnan(out[~written]).all(), (nrow, nc)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("wide", [False, True])
def test_row_block_writes_exactly_the_valid_rows_and_columns(rng, dtype, wide):
    """The untransposed store: row ``i`` (a channel) at ``o_off + i*ldo``, its bias ``bias[i]``."""
    vl = mk.lanes(dtype)
    nr = (2 if wide else 1) * vl
    kk, lda, ldo, a_off, o_off = 13, 17, nr + 5, 3, 5
    a = rng.standard_normal(a_off + mk.MR * lda).astype(dtype)
    b = rng.standard_normal((kk, nr)).astype(dtype)
    rows = a[a_off:].reshape(mk.MR, lda)[:, :kk].astype(np.float64)
    for nrow, ncol in [(mk.MR, nr), (1, 1), (mk.MR - 1, nr - 3), (3, vl + 1), (0, nr), (2, 0)]:
        bias = rng.standard_normal(nrow).astype(dtype)  # exactly nrow: no row past it is read
        full = rows[:nrow] @ b.astype(np.float64) + bias[:, None]
        bound = np.abs(rows[:nrow]) @ np.abs(b.astype(np.float64)) + np.abs(bias)[:, None]
        out = np.full(o_off + mk.MR * ldo, np.nan, dtype)
        _block(wide, a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol, rows_out=True)
        _assert_rows_written(out, o_off, ldo, nrow, min(ncol, nr), full, bound, dtype)


@njit(cache=False)
def _taps(nv, a, a_off, lda, b, koff, kk, bias, out, o_off, ldo, nrow, ncol):
    if nv == 3:
        mk.tap_block3(a, a_off, lda, b, koff, kk, bias, out, o_off, ldo, nrow, ncol)
    elif nv == 2:
        mk.tap_block2(a, a_off, lda, b, koff, kk, bias, out, o_off, ldo, nrow, ncol)
    else:
        mk.tap_block1(a, a_off, lda, b, koff, kk, bias, out, o_off, ldo, nrow, ncol)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("nv", [1, 2, 3])
def test_tap_block_reads_its_panel_through_the_offsets(rng, dtype, nv):
    """Step ``k`` reads ``b[koff[k]:koff[k] + NR]`` (any offsets, repeats, any order), for
    panels of one, two and three vectors."""
    vl = mk.lanes(dtype)
    nr = nv * vl
    kk, lda, ldo, a_off, o_off = 13, 17, nr + 5, 3, 5
    a = rng.standard_normal(a_off + mk.MR * lda).astype(dtype)
    b = rng.standard_normal(200 + nr).astype(dtype)
    koff = rng.integers(0, 200, kk).astype(np.int64)
    koff[1] = koff[0]  # the same row twice
    panel = np.stack([b[o:o + nr] for o in koff]).astype(np.float64)  # (kk, NR)
    rows = a[a_off:].reshape(mk.MR, lda)[:, :kk].astype(np.float64)
    for nrow, ncol in [(mk.MR, nr), (1, 1), (mk.MR - 1, nr - 3), (3, vl + 1), (0, nr),
                       (2, nr - vl + 1)]:
        bias = rng.standard_normal(nrow).astype(dtype)
        full = rows[:nrow] @ panel + bias[:, None]
        bound = np.abs(rows[:nrow]) @ np.abs(panel) + np.abs(bias)[:, None]
        out = np.full(o_off + mk.MR * ldo, np.nan, dtype)
        _taps(nv, a, a_off, lda, b, koff, kk, bias, out, o_off, ldo, nrow, ncol)
        _assert_rows_written(out, o_off, ldo, nrow, min(ncol, nr), full, bound, dtype)


@njit(cache=False)
def _vectors(a, a_off, lda, b, koff, kk, boff, bias, out, ooff, ldo, nrow, ncols, acc=False):
    mk.vector_block(a, a_off, lda, b, koff, kk, boff, bias, out, ooff, ldo, nrow, ncols, acc)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_block_places_each_vector_on_its_own(rng, dtype):
    """Vector ``v`` reads ``b[boff[v] + koff[k]:][:lanes]`` and writes ``ncols[v]`` columns of
    each row from ``out[ooff[v] + i*ldo]``: any order, overlapping panels, columns cut short or
    none at all; nothing else is written."""
    vl, nv = mk.lanes(dtype), mk.TAP_VECTORS
    kk, lda, ldo, a_off = 11, 14, 5 * vl, 2
    a = rng.standard_normal(a_off + mk.MR * lda).astype(dtype)
    b = rng.standard_normal(300 + vl).astype(dtype)
    koff = rng.integers(0, 100, kk).astype(np.int64)
    rows = a[a_off:].reshape(mk.MR, lda)[:, :kk].astype(np.float64)
    for nrow, boff, ooff, ncols in [
        (mk.MR, [150, 7, 60], [2 * vl, 0, 4 * vl + 3], [vl, vl - 3, 1]),
        (3, [0, 1, 2], [vl + 1, 3 * vl, 1], [2, 0, vl]),
        (mk.MR - 1, [199, 199, 33], [0, vl, 2 * vl], [0, vl, 0]),
    ]:
        boff, ooff, ncols = (np.array(q[:nv] + [0] * (3 - nv), np.int64)
                             for q in (boff, ooff, ncols))
        bias = rng.standard_normal(nrow).astype(dtype)
        out = np.full(ooff.max() + mk.MR * ldo, np.nan, dtype)
        _vectors(a, a_off, lda, b, koff, kk, boff, bias, out, ooff, ldo, nrow, ncols)
        written = np.zeros(out.shape, bool)
        for v in range(nv):
            panel = np.stack([b[boff[v] + o:boff[v] + o + vl] for o in koff]).astype(np.float64)
            full = rows[:nrow] @ panel + bias[:, None]
            bound = np.abs(rows[:nrow]) @ np.abs(panel) + np.abs(bias)[:, None]
            got = out[ooff[v]:ooff[v] + mk.MR * ldo].reshape(mk.MR, ldo)
            assert_sums_close(got[:nrow, :ncols[v]], full[:, :ncols[v]], bound[:, :ncols[v]],
                              dtype)
            written[ooff[v]:ooff[v] + mk.MR * ldo].reshape(mk.MR, ldo)[:nrow, :ncols[v]] = True
        assert np.isnan(out[~written]).all(), (nrow, ncols)


@pytest.mark.parametrize("dtype", DTYPES)
def test_vector_block_adds_a_later_part(rng, dtype):
    """With ``acc`` a block adds its sums to what the outputs hold (not to the bias): two
    parts of a reduction give the whole one, rows and columns cut short included; nothing
    else is read as a sum or written."""
    vl, nv = mk.lanes(dtype), mk.TAP_VECTORS
    kk, lda, ldo = 13, 13, 4 * vl
    a = rng.standard_normal(mk.MR * lda).astype(dtype)
    b = rng.standard_normal(200 + vl).astype(dtype)
    koff = rng.integers(0, 150, kk).astype(np.int64)
    rows = a.reshape(mk.MR, lda).astype(np.float64)
    for nrow, ncols in [(mk.MR, [vl, vl, vl]), (mk.MR - 2, [vl - 1, 0, 3])]:
        boff = np.array([0, 40, 90], np.int64)
        ooff = np.array([0, vl, 2 * vl], np.int64)
        nc = np.array(ncols[:nv] + [0] * (3 - nv), np.int64)
        bias = rng.standard_normal(mk.MR).astype(dtype)
        out = np.full(ooff.max() + mk.MR * ldo, np.nan, dtype)
        k = 5  # the first part: steps 0..4, with the bias; the second adds steps 5..12
        _vectors(a, 0, lda, b, koff[:k], k, boff, bias, out, ooff, ldo, nrow, nc)
        _vectors(a, k, lda, b, koff[k:], kk - k, boff, bias, out, ooff, ldo, nrow, nc, True)
        written = np.zeros(out.shape, bool)
        for v in range(nv):
            panel = np.stack([b[boff[v] + o:boff[v] + o + vl] for o in koff]).astype(np.float64)
            full = rows[:nrow] @ panel + bias[:nrow, None].astype(np.float64)
            bound = np.abs(rows[:nrow]) @ np.abs(panel) + np.abs(full)
            got = out[ooff[v]:ooff[v] + mk.MR * ldo].reshape(mk.MR, ldo)
            assert_sums_close(got[:nrow, :nc[v]], full[:, :nc[v]], bound[:, :nc[v]], dtype)
            written[ooff[v]:ooff[v] + mk.MR * ldo].reshape(mk.MR, ldo)[:nrow, :nc[v]] = True
        assert np.isnan(out[~written]).all(), (nrow, ncols)


@njit(cache=False)
def _add_row(src, s_off, dst, d_off, n, b):
    mk.add_row(src, s_off, dst, d_off, n, b)


@njit(cache=False)
def _copy_row(src, s_off, dst, d_off, n):
    mk.copy_row(src, s_off, dst, d_off, n)


@pytest.mark.parametrize("dtype", DTYPES)
def test_add_and_copy_row_write_exactly_n_elements(rng, dtype):
    """Whole vectors and a masked last one: nothing before ``d_off`` or from ``d_off + n`` on;
    the copy is exact (``-0.0``, ``-inf`` and NaN stay)."""
    vl = mk.lanes(dtype)
    src = rng.standard_normal(5 * vl).astype(dtype)
    src[4:7] = [-0.0, -np.inf, np.nan]
    for n in [0, 1, vl - 1, vl, vl + 1, 3 * vl + 5]:
        dst = np.full(4 * vl + 9, np.nan, dtype)
        _add_row(src, 3, dst, 2, n, dtype(0.5))
        np.testing.assert_array_equal(dst[2:2 + n], src[3:3 + n] + dtype(0.5))
        assert np.isnan(dst[:2]).all() and np.isnan(dst[2 + n:]).all(), n
        dst = np.full(4 * vl + 9, 7.0, dtype)
        _copy_row(src, 3, dst, 2, n)
        assert dst[2:2 + n].tobytes() == src[3:3 + n].tobytes()
        assert (dst[:2] == 7).all() and (dst[2 + n:] == 7).all(), n


@njit(cache=False)
def _transpose(src, s_off, lds, dst, d_off, ldd):
    mk.transpose_block(src, s_off, lds, dst, d_off, ldd)


@pytest.mark.parametrize("dtype", DTYPES)
def test_transpose_block_writes_exactly_one_block(rng, dtype):
    n = mk.lanes(dtype)
    src = rng.standard_normal(7 + 3 * n * n).astype(dtype)
    dst = rng.standard_normal(5 + 2 * n * n).astype(dtype)
    want = dst.copy()
    block = src[7:7 + n * (3 * n)].reshape(n, 3 * n)[:, :n]  # rows 3n apart
    want[5:5 + n * 2 * n].reshape(n, 2 * n)[:, :n] = block.T
    _transpose(src, 7, 3 * n, dst, 5, 2 * n)
    np.testing.assert_array_equal(dst, want)


def _guarded(a):
    """A copy of ``a`` (C order) that ends where an unreadable page starts: a kernel reading
    one element past it faults (the test process dies rather than passing)."""
    page = mmap.PAGESIZE
    size = -(-a.nbytes // page) * page + page
    buf = mmap.mmap(-1, size)
    addr = ctypes.addressof(ctypes.c_char.from_buffer(buf))
    libc = ctypes.CDLL(None, use_errno=True)
    libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    assert libc.mprotect(addr + size - page, page, 0) == 0  # PROT_NONE
    g = np.frombuffer(buf, a.dtype, count=a.size, offset=size - page - a.nbytes)
    g = g.reshape(a.shape)
    g[...] = a
    return g


needs_mprotect = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                    reason="guard pages through libc's mprotect")


@needs_mprotect
@pytest.mark.parametrize("dtype", DTYPES)
def test_blocks_read_only_the_rows_they_store(rng, dtype):
    """A block of ``nrow < MR`` rows reads ``nrow`` rows of ``a``, none past them (the
    weights of 512 output channels are not a whole number of 6-row blocks, and are not
    padded: NOTES 104), in every micro-kernel, with the sums right."""
    vl = mk.lanes(dtype)
    kk, lda, ldo = 9, 11, 3 * vl + 4
    b = rng.standard_normal(100 + 3 * vl).astype(dtype)
    koff = rng.integers(0, 100, kk).astype(np.int64)
    for nrow in (1, mk.MR - 1):
        a = _guarded(rng.standard_normal(nrow * lda - (lda - kk)).astype(dtype))  # last row: kk
        rows = np.stack([a[i * lda:i * lda + kk] for i in range(nrow)]).astype(np.float64)
        bias = rng.standard_normal(max(mk.MR, vl * 3)).astype(dtype)
        for kind, nv in [("cols", 1), ("cols", 2), ("rows", 1), ("rows", 2), ("taps", 1),
                         ("taps", 2), ("taps", 3), ("vectors", mk.TAP_VECTORS)]:
            nr = nv * vl
            panel = np.stack([b[o:o + nr] for o in koff])
            out = np.full(max(mk.MR, nr) * ldo, np.nan, dtype)
            if kind == "cols":  # rows are positions, columns channels (transposed stores)
                _block(nv == 2, a, 0, lda, np.ascontiguousarray(panel), kk, bias, out, 0, ldo,
                       nrow, nr)
                got = out[:nr * ldo].reshape(nr, ldo)[:, :nrow].T
                want = rows @ panel.astype(np.float64) + bias[:nr]
            else:
                if kind == "rows":
                    _block(nv == 2, a, 0, lda, np.ascontiguousarray(panel), kk, bias, out, 0,
                           ldo, nrow, nr, rows_out=True)
                elif kind == "taps":
                    _taps(nv, a, 0, lda, b, koff, kk, bias, out, 0, ldo, nrow, nr)
                else:
                    lanes_at = np.array([0, vl, 2 * vl], np.int64)
                    _vectors(a, 0, lda, b, koff, kk, lanes_at, bias, out, lanes_at, ldo, nrow,
                             np.full(3, vl, np.int64))
                got = out[:mk.MR * ldo].reshape(mk.MR, ldo)[:nrow, :nr]
                want = rows @ panel.astype(np.float64) + bias[:nrow, None]
            bound = np.abs(rows) @ np.abs(panel.astype(np.float64)) + np.abs(want)
            assert_sums_close(got, want, bound, dtype)


@needs_mprotect
@pytest.mark.parametrize("path, xs, ws, kw", [
    ("pointwise", (2, 8, 5, 7), (13, 8, 1, 1), {}),
    ("implicit rows", (2, 3, 9, 40), (19, 3, 3, 3), dict(stride=2, padding=1)),
    ("implicit narrow", (1, 4, 6, 36), (26, 4, 3, 3), dict(padding=1)),
    ("implicit flat", (1, 40, 3, 3), (17, 40, 3, 3), dict(padding=1)),
])
def test_conv_reads_no_weight_past_the_last(rng, count_calls, monkeypatch, path, xs, ws, kw):
    """Weights whose last element ends a readable page, on the paths that pass the caller's
    C-contiguous weights to the micro-kernels as they are, output channels cut short of a
    whole block."""
    x = rng.standard_normal(xs).astype(np.float32)
    w = _guarded(rng.standard_normal(ws).astype(np.float32))
    module, name = ((_pointwise, "onetap") if path == "pointwise" else (_implicit, "implicit"))
    n = count_calls(module, name)
    flat = []  # the implicit GEMM's choice: blocks a job in flat mode, 0 for the row jobs
    run = _implicit.flat_blocks
    monkeypatch.setattr(_implicit, "flat_blocks", lambda *a: flat.append(run(*a)) or flat[-1])
    got = numbaconv.conv(x, w, **kw)
    assert n[0] == 1
    if path != "pointwise":
        assert (flat[0] > 0) == (path == "implicit flat")
    if path == "implicit narrow":
        assert _implicit.narrow_blocks(ws[0]) and ws[0] % mk.NARROW_ROWS
    assert_close(got, conv_ref(x, w, **kw), np.float32)


@needs_mprotect
def test_separable_bands_read_no_pointwise_weight_past_the_last(rng, count_calls):
    x = rng.standard_normal((2, 8, 6, 20)).astype(np.float32)
    dw = rng.standard_normal((8, 1, 3, 3)).astype(np.float32)
    pw = _guarded(rng.standard_normal((13, 8)).astype(np.float32))
    n = count_calls(_separable_rows, "separable")
    got = numbaconv.separable_conv(x, dw, pw, padding=1)
    assert n[0] == 1
    want = conv_ref(conv_ref(x, dw, padding=1, groups=8), pw[:, :, None, None])
    assert_close(got, want, np.float32)


def test_block_with_empty_reduction_writes_the_bias():
    vl = mk.lanes(np.float64)
    bias = np.arange(vl, dtype=np.float64)
    out = np.full(vl * 4, np.nan)
    a = np.ones(mk.MR * 4)
    _block(False, a, 0, 4, np.ones((0, vl)), 0, bias, out, 0, 4, 2, vl)
    np.testing.assert_array_equal(out.reshape(vl, 4)[:, :2], np.repeat(bias[:, None], 2, 1))
    assert np.isnan(out.reshape(vl, 4)[:, 2:]).all()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("m", [3, 12, 16, 17, 40])
def test_pack_panels_layout(rng, dtype, m):
    groups, kk = 2, 7
    w = rng.standard_normal((groups * m, kk)).astype(dtype)
    bias = rng.standard_normal(groups * m).astype(dtype)
    wp, bp = mk.pack_panels(w, bias, groups)
    vl = mk.lanes(dtype)
    if 4 * m < 3 * vl:
        assert wp.shape[0] == 0 and bp.shape[0] == 0
        return
    nr = wp.shape[2]
    assert nr == (vl if m <= vl else 2 * vl)
    npan = -(-m // nr)
    assert wp.shape == (groups * npan, kk, nr) and bp.shape == (groups * npan, nr)
    assert wp.flags.c_contiguous and bp.flags.c_contiguous
    for g in range(groups):
        for q in range(npan):
            for j in range(nr):
                r = q * nr + j
                want_w = w[g * m + r] if r < m else 0
                want_b = bias[g * m + r] if r < m else 0
                np.testing.assert_array_equal(wp[g * npan + q, :, j], want_w)
                assert bp[g * npan + q, j] == want_b


def _panel_sizes(dtype):
    """Output channels per group around the panel thresholds of this machine's vectors."""
    vl = mk.lanes(dtype)
    return sorted({(3 * vl + 3) // 4 - 1, (3 * vl + 3) // 4, vl, vl + 1, 2 * vl, 2 * vl + 3,
                   4 * vl + 5})


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("groups", [1, 3])
def test_conv_on_both_sides_of_the_panel_threshold(rng, dtype, groups):
    """Each m: panel or dot kernel, ragged position blocks and panels, bias, activation."""
    for i, m in enumerate(_panel_sizes(dtype)):
        cin = 2 * groups
        x = rng.standard_normal((2, cin, 7, 9)).astype(dtype)
        w = rng.standard_normal((groups * m, 2, 3, 2)).astype(dtype)
        b = rng.standard_normal(groups * m).astype(dtype)
        act = [None, "relu", "tanh"][i % 3]
        kw = dict(stride=(1, 2), padding=(1, 0), groups=groups, activation=act)
        got = numbaconv.conv2d(x, w, b, **kw)
        assert_close(got, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_deform_conv_on_the_panel_path(rng, dtype):
    m = 2 * mk.lanes(dtype) + 1
    x = rng.standard_normal((2, 3, 6, 5)).astype(dtype)
    w = rng.standard_normal((m, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(m).astype(dtype)
    off = rng.uniform(-2, 2, (2, 18, 6, 5)).astype(dtype)
    mask = rng.uniform(0, 1, (2, 9, 6, 5)).astype(dtype)
    got = numbaconv.deform_conv2d(x, off, w, b, padding=1, mask=mask, activation="silu")
    want = deform_conv_ref(x, off, w, b, padding=1, mask=mask, activation="silu")
    assert_close(got, want, dtype)


_AVX2 = ("+64bit,+avx,+avx2,+bmi,+bmi2,+cmov,+cx16,+f16c,+fma,+fxsr,+lzcnt,+mmx,+movbe,"
         "+popcnt,+sse,+sse2,+sse3,+sse4.1,+sse4.2,+ssse3,+xsave")


def test_avx2_build(tmp_path, capsys):
    """Compiled for an AVX2 CPU (256-bit vectors, 6-row blocks), the panel paths are still exact.

    The first two cases take the tile GEMM, the third Winograd (enough tiles) and its 8 x 8
    block transposes, the last two the implicit GEMM (too few tiles), with blocks of two vectors
    and 6 rows (30 output channels) or three vectors and 4 rows (32: the narrow block) that
    span rows (33 outputs a row: 5 vectors). On an AVX-512 host this runs in a fresh process
    compiled for Haswell (a minute of cold compile); on an AVX2 host, whose own build it is, in
    this process, on the kernels the rest of the suite compiles.
    """
    code = (
        "import json, numpy as np, numbaconv\n"
        "from numbaconv import _implicit, _microkernel as mk, _winograd\n"
        "from numpy.lib.stride_tricks import sliding_window_view as view\n"
        "rng = np.random.default_rng(0)\n"
        "err, paths, saved = [], [], []\n"
        "def spy(mod, name):\n"
        "    f = getattr(mod, name)\n"
        "    saved.append((mod, name, f))\n"
        "    def g(*a):\n"
        "        paths[-1] = name\n"
        "        return f(*a)\n"
        "    setattr(mod, name, g)\n"
        "spy(_winograd, 'winograd'); spy(_implicit, 'implicit')\n"
        "cases = ((np.float32, 5, 40, 7, 9), (np.float64, 5, 20, 7, 9),\n"
        "         (np.float32, 24, 24, 24, 24), (np.float32, 16, 30, 7, 33),\n"
        "         (np.float32, 16, 32, 7, 33))\n"
        "try:\n"
        "    for dt, cin, cout, h, wd in cases:\n"
        "        paths.append('gemm')\n"
        "        x = rng.standard_normal((2, cin, h, wd)).astype(dt)\n"
        "        w = rng.standard_normal((cout, cin, 3, 3)).astype(dt)\n"
        "        b = rng.standard_normal(cout).astype(dt)\n"
        "        got = numbaconv.conv2d(x, w, b, padding=1)\n"
        "        xp = np.pad(x.astype(float), ((0, 0), (0, 0), (1, 1), (1, 1)))\n"
        "        win = view(xp, (3, 3), axis=(2, 3))\n"
        "        want = np.einsum('ncijkl,ockl->noij', win, w) + b[:, None, None]\n"
        "        err.append(float(np.abs(got - want).max() / np.abs(want).max()))\n"
        "finally:  # in this process: the modules as they were\n"
        "    for mod, name, f in saved:\n"
        "        setattr(mod, name, f)\n"
        "narrow = [_implicit.narrow_blocks(m) for m in (30, 32)]\n"
        "print(json.dumps([mk.VECTOR_BYTES, mk.MR, err, paths, narrow]))\n"
    )
    if mk.VECTOR_BYTES == 32:
        exec(code, {})
        out = capsys.readouterr().out
    else:
        env = dict(os.environ, NUMBA_CPU_NAME="haswell", NUMBA_CPU_FEATURES=_AVX2,
                   NUMBA_CACHE_DIR=str(tmp_path))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                             env=env, check=True).stdout
    vector_bytes, mr, err, paths, narrow = json.loads(out.strip().splitlines()[-1])
    assert (vector_bytes, mr, narrow) == (32, 6, [False, True])
    assert paths == ["gemm", "gemm", "winograd", "implicit", "implicit"], paths
    assert err[1] < 1e-12 and max(err[:1] + err[2:]) < 1e-5, err
