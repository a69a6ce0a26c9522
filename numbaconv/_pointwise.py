"""One-tap windows (``1 x ... x 1`` kernels, pointwise convolution) as an NCHW matrix product.

A window of one tap reads one input sample per output position, so the
convolution of image ``n`` is the matrix product ``W_g (m, C_g) @ X_g (C_g,
positions)`` per group, where column ``p`` of ``X_g`` is the input sample that
output ``p`` reads (``src[p]``, through the padding maps, so every stride and
padding mode is the same table). Unlike the tile GEMM of :mod:`numbaconv._core`
this needs no channels-last plane and no window gather, and the weights are
read as PyTorch stores them: the micro-kernel's rows are output channels (rows
of ``W``), its panel is ``NR`` positions of ``X`` copied into the worker's
cache, and its sums are stored row by row straight into the NCHW output
(:func:`numbaconv._microkernel.row_block2`), with no transposes.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from ._activations import activate_run
from ._config import CALLED, PARALLEL
from ._core import worker_rows
from ._dtypes import to_kernel
from ._geometry import G_INSTR, G_MAPOFF, G_OUT, G_STRIDE, Tables
from ._jobs import job_counters, next_job
from ._microkernel import (
    MR,
    VECTOR_BYTES,
    row_block1,
    row_block2,
)

#: a job covers at least this many output channels (when the channels are split)
_MIN_ROWS = 64
#: the weight rows of one split of the output channels take at most this (they stay in L2)
_ROWS_BYTES = 512 * 1024
#: a job packs a run of up to ``_RUN_PANELS`` panels of positions (leaving about four jobs a
#: worker), so that each block of weight rows is read once a run rather than once a panel
#: (NOTES 97), within ``_RUN_BYTES``; with more input and output than ``_STREAM_BYTES`` (they
#: come from memory, not the caches), within ``_PANELS_BYTES``, so that each input row is
#: read as one stream the hardware prefetcher follows (NOTES 68)
_RUN_PANELS = 16
_RUN_BYTES = 64 * 1024
_STREAM_BYTES = 16 * 1024 * 1024
_PANELS_BYTES = 256 * 1024


@functools.lru_cache(maxsize=16)
def sources(tab: Tables, in_len: int) -> tuple[np.ndarray, bool]:
    """``(src, contiguous)``: the flat input offset each output position reads, -1 for zero.

    ``contiguous`` when ``src`` is ``arange(in_len)`` (stride 1, no padding):
    the kernel then copies runs instead of looking each sample up.
    """
    geom, maps = tab.geom, tab.maps
    src = np.zeros(1, np.int64)
    ok = np.ones(1, bool)
    for a in range(geom.shape[1]):  # row-major over the output axes
        idx = maps[geom[G_MAPOFF, a] + np.arange(geom[G_OUT, a]) * geom[G_STRIDE, a]]
        src = (src[:, None] + idx[None, :] * geom[G_INSTR, a]).ravel()
        ok = (ok[:, None] & (idx >= 0)[None, :]).ravel()
    src = np.where(ok, src, -1)
    src.flags.writeable = False
    return src, bool(len(src) == in_len and np.array_equal(src, np.arange(in_len)))


def onetap(x3: np.ndarray, w2: np.ndarray, bias: np.ndarray, out3: np.ndarray, groups: int,
           tab: Tables, act: int, workers: int) -> None:
    """Run :func:`onetap_conv`: ``w2`` is ``(C_out, C_in / groups)`` in any strides.

    Arrays in the compute dtype, ``x3`` and ``out3`` flat over space as in
    :mod:`numbaconv._core`.
    """
    src, contig = sources(tab, x3.shape[2])
    nr = 2 * (VECTOR_BYTES // x3.itemsize)
    npan = -(-x3.shape[0] * out3.shape[2] // nr)
    cg = x3.shape[1] // groups
    budget = _PANELS_BYTES if x3.nbytes + out3.nbytes > _STREAM_BYTES else _RUN_BYTES
    per = max(1, min(_RUN_PANELS, budget // max(cg * nr * x3.itemsize, 1),
                     npan // (4 * workers)))  # panels a job: within the budget, and enough
    # jobs for the workers
    onetap_conv(x3, to_kernel(w2, x3.dtype), bias, out3, groups, src, contig, act,
                x3.dtype.type(0), per, workers)


@njit(**CALLED)
def pack_run(x, c0, cg, src, contig, f0, ncol, lout, bpan, zero, nr):
    """Panels of ``nr`` positions: the samples that outputs ``f0 .. f0 + ncol`` read.

    ``f0`` counts positions over the whole batch (image ``f0 // lout``,
    position ``f0 % lout``), so a panel may span images. Panel ``q`` (outputs
    from ``f0 + q*nr``) is ``(cg, nr)`` at ``bpan[q * cg * nr:]``, flat:
    ``[k, j]`` is the sample of channel ``c0 + k`` at ``src[p]`` (zero where
    ``src`` is -1, or ``p`` itself when ``contig``), columns past the outputs
    zero. A last panel of at most ``nr // 2`` outputs is ``(cg, nr // 2)``
    instead (for the one-vector micro-kernel). The channels are the outer
    loop, so each input row is read as one run across the panels (a stream
    the hardware prefetcher follows) rather than ``nr`` samples at a time.
    """
    npq = (ncol + nr - 1) // nr
    n0 = f0 // lout
    p0 = f0 % lout
    if contig and p0 + ncol <= lout and ncol == npq * nr:  # whole panels in one image
        xn = x[n0]
        for k in range(cg):
            row = xn[c0 + k, p0:p0 + ncol]
            for q in range(npq):
                s = row[q * nr:(q + 1) * nr]
                dst = bpan[(q * cg + k) * nr:(q * cg + k + 1) * nr]
                for i in range(nr):
                    dst[i] = s[i]
        return
    for k in range(cg):
        for q in range(npq):
            fq = f0 + q * nr
            nq = min(nr, ncol - q * nr)
            w = nr if 2 * nq > nr else nr // 2
            dst = bpan[q * cg * nr + k * w:q * cg * nr + (k + 1) * w]
            n = fq // lout
            p = fq % lout
            j = 0
            while j < nq:  # one piece per image
                take = min(nq - j, lout - p)
                row = x[n, c0 + k]
                d = dst[j:j + take]
                if contig:
                    s = row[p:p + take]
                    for i in range(take):
                        d[i] = s[i]
                else:
                    sj = src[p:p + take]
                    for i in range(take):
                        qq = sj[i]
                        d[i] = row[qq] if qq >= 0 else zero
                j += take
                n += 1
                p = 0
            for i in range(nq, w):
                dst[i] = zero


@njit(**CALLED)
def spill_tile(tile, nr, out, co, nrow, f0, ncol):
    """``out[n, co + r, p] = tile[r * nr + j]`` for a panel spanning images (``f0 + j`` over
    the batch, as :func:`pack_run`)."""
    lout = out.shape[2]
    for r in range(nrow):
        j = 0
        n = f0 // lout
        p = f0 % lout
        while j < ncol:  # one piece per image
            take = min(ncol - j, lout - p)
            d = out[n, co + r, p:p + take]
            s = tile[r * nr + j:r * nr + j + take]
            for i in range(take):
                d[i] = s[i]
            j += take
            n += 1
            p = 0


@njit(**CALLED)
def activate_span(out, co, nrow, f0, ncol, act):
    """Activation ``act`` on ``out[n, co + r, p]`` for ``r < nrow`` and the positions
    ``f0 + j``, ``j < ncol``, of the whole batch (as :func:`pack_run`): one run a row and
    image, so that a job's block of rows takes a few long runs, not one a panel."""
    lout = out.shape[2]
    for r in range(nrow):
        j = 0
        n = f0 // lout
        p = f0 % lout
        while j < ncol:
            take = min(ncol - j, lout - p)
            activate_run(out[n, co + r, p:p + take], act)
            j += take
            n += 1
            p = 0


@njit(**PARALLEL)
def onetap_conv(x, w, bias, out, groups, src, contig, act, zero, per, workers):
    """``out[n, co, p] = act(bias[co] + sum_c w[co, c] * x[n, g*C_g + c, src[p]])``.

    x (N, C_in, L_in); w (C_out, C_in/groups), C-contiguous; bias (C_out,); src
    (L_out,) as :func:`sources`, ``x`` read as zero where it is -1; out (N,
    C_out, L_out) is written whole. A job is one group, a run of ``per``
    panels of ``NR`` positions (packed together by :func:`pack_run`) and a
    run of output channels (the runs of channels change slowest, so that each
    worker keeps its run's weights in L2); each block of ``MR`` channels
    sweeps the job's panels. The panels run over the positions of the whole
    batch: where a plane's positions are not a whole number of panels, one
    panel covers the end of an image and the start of the next (computed into
    the worker's tile, then spilled), rather than every image ending in a
    narrow panel.
    """
    nimg, nc, _ = x.shape
    cout = out.shape[1]
    lout = out.shape[2]
    m = cout // groups
    cg = nc // groups
    nr = 2 * (VECTOR_BYTES // x.itemsize)
    total = nimg * lout
    npan = (total + nr - 1) // nr
    nrun = (npan + per - 1) // per
    base = groups * nrun
    # split the channels: each split's weight rows stay in L2 (``_ROWS_BYTES``), and
    # enough jobs for the workers when the runs alone are few
    nsplit = max(1, min(max((4 * workers + base - 1) // base,
                            (m * cg * x.itemsize + _ROWS_BYTES - 1) // _ROWS_BYTES),
                        m // _MIN_ROWS))
    rows = ((m + nsplit - 1) // nsplit + MR - 1) // MR * MR
    nsplit = (m + rows - 1) // rows
    njobs = base * nsplit
    nw = max(min(workers, njobs), 1)
    bpan_all = worker_rows(nw, per * cg * nr, x.dtype, False)
    tile_all = worker_rows(nw, MR * nr, x.dtype, False)
    counts = job_counters(nw)
    for wk in prange(nw):
        tile = tile_all[wk]
        bpan = bpan_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            # the split varies slowest: a worker's jobs share its weight rows
            sp = job // base
            g = (job // nrun) % groups
            f0 = job % nrun * per * nr
            ncols = min(per * nr, total - f0)
            npq = (ncols + nr - 1) // nr
            pack_run(x, g * cg, cg, src, contig, f0, ncols, lout, bpan, zero, nr)
            r1 = min(m, (sp + 1) * rows)
            for r0 in range(sp * rows, r1, MR):
                co = g * m + r0
                nrow = min(MR, r1 - r0)
                for q in range(npq):
                    fq = f0 + q * nr
                    ncol = min(nr, total - fq)
                    n = fq // lout
                    p0 = fq % lout
                    panel = bpan[q * cg * nr:]
                    whole = p0 + ncol <= lout  # the panel lies in one image
                    wide = 2 * ncol > nr  # else a narrow last panel of one vector: half the work
                    if whole:
                        o_off = (n * cout + co) * lout + p0
                        if wide:
                            row_block2(w, co * cg, cg, panel, cg, bias[co:], out, o_off, lout,
                                       nrow, ncol)
                        else:
                            row_block1(w, co * cg, cg, panel, cg, bias[co:], out, o_off, lout,
                                       nrow, ncol)
                    else:
                        if wide:
                            row_block2(w, co * cg, cg, panel, cg, bias[co:], tile, 0, nr, nrow,
                                       ncol)
                        else:
                            row_block1(w, co * cg, cg, panel, cg, bias[co:], tile, 0, nr, nrow,
                                       ncol)
                        spill_tile(tile, nr, out, co, nrow, fq, ncol)
                if act != 0:  # on the block's rows just written, still in cache
                    activate_span(out, co, nrow, f0, ncols, act)
