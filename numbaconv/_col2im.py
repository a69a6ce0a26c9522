"""Strided transposed convolution as a matrix product and a scatter (``col2im``).

A transposed convolution sends every input sample ``x[n, c, i]`` to the ``T``
outputs ``o = i * stride + t * dilation - padding`` of its taps ``t``, weighted
by ``w[c, co, t]``. So its work is one product per image, ``cols[(co, t), i] =
sum_c w[c, co, t] x[c, i]`` (``C_out * T`` rows, the reduction over ``C_in``:
the one-tap shape of :mod:`numbaconv._pointwise`, on the untransposed
micro-kernel), then the scatter of each row of ``cols`` onto its output plane.
With a stride above 1 this beats the stride phases of
:mod:`numbaconv.transposed` (``stride ** d`` small convolutions, each with its
own channels-last plane, gather, weight panels and placement); at stride 1
the phases are one plain convolution and stay.

:func:`gemm_col2im` fuses the two: a job is one image and a chunk of output
channels, whose ``cols`` stay in the worker's cache between the product and
the scatter, and it owns those channels' output planes, so the scatter is
race-free. Each output gathers its terms (at most ``ceil(k / stride)`` per
axis) through a table (:func:`gather_table`): one write per output.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from numba import njit, prange

from ._activations import activate_run
from ._config import PARALLEL
from ._core import worker_rows
from ._jobs import job_counters, next_job
from ._microkernel import MR, VECTOR_BYTES, lanes, row_block1, row_block2, transpose_block
from ._pointwise import pack_run

#: at most this many bytes of one output channel's ``cols`` (else the stride phases)
_COLS_BYTES = 4 * 1024 * 1024
#: a job's output channels: their weight rows or their ``cols``, whichever is larger,
#: take about this many bytes (they stay in L2)
_CHUNK_BYTES = 512 * 1024


def usable(stride: tuple[int, ...], kernel: tuple[int, ...], in_shape: tuple[int, ...],
           itemsize: int) -> bool:
    """Whether :func:`conv_transpose_gemm` takes this call: a stride above 1 somewhere,
    and one output channel's ``cols`` (``T`` rows of the input's size) within
    ``_COLS_BYTES``."""
    return (math.prod(stride) > 1
            and math.prod(kernel) * math.prod(in_shape) * itemsize <= _COLS_BYTES)


@functools.lru_cache(maxsize=16)
def gather_table(in_shape, kernel, stride, dilation, pads, out_shape, ldc: int) -> np.ndarray:
    """``(K, L_out)`` ``int32``: where in one output channel's ``cols`` each output finds its terms.

    Tap ``t`` (row-major over the kernel) sends input ``i`` (flat) to output
    ``o`` with ``o = i * stride + t * dilation - pad_before`` along each axis;
    that term is ``cols[t * ldc + i]``. Column ``o`` of the table lists the
    terms of output ``o`` (``K`` the most any output has), padded with
    ``L_in``, which points at a zero the kernel keeps in row 0 of ``cols``.
    """
    lin = math.prod(in_shape)
    t_all, i_all, o_all = [], [], []
    first = np.indices(in_shape).reshape(len(in_shape), -1) * np.array(stride)[:, None]
    for t, tap in enumerate(np.ndindex(*kernel)):
        o = first + (np.array(tap) * np.array(dilation) - np.array([p for p, _ in pads]))[:, None]
        ok = np.all((o >= 0) & (o < np.array(out_shape)[:, None]), axis=0)
        flat = np.ravel_multi_index(tuple(o[:, ok]), out_shape) if ok.any() else np.zeros(0, int)
        t_all.append(np.full(len(flat), t))
        i_all.append(np.flatnonzero(ok))
        o_all.append(flat)
    t_all, i_all, o_all = (np.concatenate(v).astype(np.int64) for v in (t_all, i_all, o_all))
    lout = math.prod(out_shape)
    count = np.bincount(o_all, minlength=lout)
    table = np.full((max(int(count.max(initial=0)), 1), lout), lin, np.int32)  # < T * ldc
    order = np.argsort(o_all, kind="stable")
    o_s = o_all[order]
    rank = np.arange(len(o_s)) - np.searchsorted(o_s, o_s)  # position among its output's terms
    table[rank, o_s] = t_all[order] * ldc + i_all[order]
    table.flags.writeable = False
    return table


def conv_transpose_gemm(xb: np.ndarray, weight: np.ndarray, bias: np.ndarray, groups: int,
                        stride, dilation, pads, out: np.ndarray, act: int, workers: int) -> None:
    """The transposed convolution of validated, compute-dtype arrays into ``out``.

    ``xb`` is ``(N, C_in, *in)``, ``weight`` ``(C_in, C_out / groups, *kernel)``
    in any strides, ``bias`` ``(C_out,)``, ``out`` ``(N, C_out, *out)``.
    """
    nimg, cin = xb.shape[:2]
    mo, kernel = weight.shape[1], weight.shape[2:]
    ntap = math.prod(kernel)
    cout, ci = mo * groups, cin // groups
    # the rows of the product: (group, output channel, tap), each over the group's inputs
    wrows = np.empty((cout * ntap, ci), weight.dtype)
    transpose_groups(np.ascontiguousarray(weight).reshape(groups, ci, mo * ntap),
                     wrows.reshape(groups, mo * ntap, ci))
    lin = math.prod(xb.shape[2:])
    nr = 2 * lanes(xb.dtype)  # the micro-kernel's panel of positions
    ldc = (lin // nr + 1) * nr  # a row of cols: whole panels and one more column (a zero)
    table = gather_table(xb.shape[2:], kernel, stride, dilation, pads, out.shape[2:], ldc)
    per_co = ntap * max(ci, ldc) * xb.itemsize  # weight rows or cols of one output channel
    chunk = max(1, min(mo, _CHUNK_BYTES // per_co))
    gemm_col2im(xb.reshape(nimg, cin, lin), wrows, out.reshape(nimg, cout, -1), groups, ntap,
                ldc, table, bias, chunk, act, xb.dtype.type(0), workers)


@njit(**PARALLEL)
def transpose_groups(src, dst):
    """``dst[g, j, c] = src[g, c, j]``, in square register blocks where they fit."""
    nb = VECTOR_BYTES // src.itemsize
    ng, nc, nj = src.shape
    cb = nc - nc % nb
    jb = nj - nj % nb
    nrb = cb // nb
    for job in prange(ng * nrb):  # one row of blocks of one group a job
        g = job // nrb
        c0 = job % nrb * nb
        s = src[g]
        d = dst[g]
        for j0 in range(0, jb, nb):
            transpose_block(s, c0 * nj + j0, nj, d, j0 * nc + c0, nc)
    for g in range(ng):  # the ragged edges
        for c in range(nc):
            for j in range(jb if c < cb else 0, nj):
                dst[g, j, c] = src[g, c, j]


@njit(**PARALLEL)
def gemm_col2im(x, w, out, groups, ntap, ldc, table, bias, chunk, act, zero, workers):
    """``out[n, co, o] = act(bias[co] + sum_k cols[table[k, o]])``, ``cols = w_g @ x[n]_g``.

    x (N, C_in, L_in); w (C_out * T, C_in/groups) rows (output channel, tap);
    table as :func:`gather_table` for rows ``ldc`` long;
    out (N, C_out, L_out) is written whole. A job is one image and ``chunk``
    output channels of a group: the product of their ``chunk * T`` weight rows
    (:func:`numbaconv._microkernel.row_block2`) by the image's panels of
    positions goes to the worker's ``cols`` (it stays in cache), then each of
    their output planes gathers its terms from it. The chunks vary slowest, so
    each worker keeps its chunks' weight rows in L2.
    """
    nimg, nc, lin = x.shape
    cout, lout = out.shape[1], out.shape[2]
    nterm = table.shape[0]
    m = cout // groups
    cg = nc // groups
    nr = 2 * (VECTOR_BYTES // x.itemsize)
    npan = (lin + nr - 1) // nr
    per_g = (m + chunk - 1) // chunk
    njobs = groups * per_g * nimg
    nw = max(min(workers, njobs), 1)
    cols_all = worker_rows(nw, chunk * ntap * ldc, x.dtype, False)
    bpan_all = worker_rows(nw, cg * nr, x.dtype, False)
    zb = np.zeros(MR, dtype=x.dtype)
    contig_src = np.empty(0, dtype=np.int64)  # unread: the inputs are read as they lie
    counts = job_counters(nw)
    for wk in prange(nw):
        cols = cols_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            n = job % nimg
            g = job // (nimg * per_g)
            c0 = g * m + (job // nimg) % per_g * chunk  # first output channel
            cn = min(chunk, (g + 1) * m - c0)
            nrow = cn * ntap
            for pl in range(npan):
                p0 = pl * nr
                ncol = min(nr, lin - p0)
                wide = 2 * ncol > nr  # else a narrow last panel of one vector: half the work
                bw = nr if wide else nr // 2
                bpan = bpan_all[wk, :cg * bw]  # positions p0 .. p0 + ncol of the group's inputs
                pack_run(x, g * cg, cg, contig_src, True, n * lin + p0, ncol, lin, bpan, zero,
                         nr)
                for r0 in range(0, nrow, MR):
                    if wide:
                        row_block2(w, (c0 * ntap + r0) * cg, cg, bpan, cg, zb, cols,
                                   r0 * ldc + p0, ldc, min(MR, nrow - r0), ncol)
                    else:
                        row_block1(w, (c0 * ntap + r0) * cg, cg, bpan, cg, zb, cols,
                                   r0 * ldc + p0, ldc, min(MR, nrow - r0), ncol)
            for co in range(c0, c0 + cn):
                plane = cols[(co - c0) * ntap * ldc:(co - c0 + 1) * ntap * ldc]
                plane[lin] = zero  # the term of the table's padding (never written above)
                orow = out[n, co]
                b = bias[co]
                for j in range(lout):
                    orow[j] = b
                for k in range(nterm):
                    tk = table[k]
                    for j in range(lout):
                        orow[j] += plane[tk[j]]
                if act != 0:
                    activate_run(orow, act)
