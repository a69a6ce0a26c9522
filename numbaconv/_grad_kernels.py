"""Compiled kernels of the backward passes (the forward ones do the rest).

The input gradient of a convolution is a transposed convolution and runs on
the forward kernels. What is new here:

* :func:`weight_grad_gemm` -- the weight gradient as a tile GEMM: a job is
  one image, one group and one tile of output positions; the core's gather
  writes the tile's windows (``colT[p, t*C_g + c]``), they are cut into
  panels of ``NR`` columns, and the explicit-vector micro-kernel multiplies
  the tile's ``grad_output`` rows (``MR`` output channels at a time) by each
  panel, the reduction running over the tile's positions. Each worker adds
  its products into its own copy of the weight gradient; the copies are
  summed at the end;
* :func:`weight_grad_direct` -- the weight gradient when a group has few
  output channels (depthwise): one job per (output channel, input channel),
  dot products of shifted virtual planes with ``grad_output``;
* :func:`scatter_add_planes` -- ``dst[n, c, idx] += src[n, c]``, the
  backward of max pooling, one job per channel plane (no two jobs write the
  same plane, so no races).

Like the forward kernels: one ``prange`` each, disjoint writes per job,
scratch per worker.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._config import HELPER, PARALLEL
from ._core import (
    ZERO,
    first_position,
    next_position,
    output_row_table,
    padded,
    virtual_cols_cl,
    virtual_plane,
    virtual_row_table,
    worker_rows,
)
from ._geometry import G_OUT, G_STRIDE, G_VLEN, G_VSTR
from ._jobs import job_counters, next_job
from ._microkernel import MR, VECTOR_BYTES, panel_block1, panel_block2


@njit(**HELPER)
def panels(colT, npos, kk, nr, pan, zero):
    """``pan[q*npos*nr + p*nr + j] = colT[p, q*nr + j]``: the tile's columns as panels,
    zero past column ``kk``."""
    npan = (kk + nr - 1) // nr
    for p in range(npos):
        row = colT[p]
        for q in range(npan):
            dst = pan[(q * npos + p) * nr:(q * npos + p + 1) * nr]
            jn = min(nr, kk - q * nr)
            src = row[q * nr:q * nr + jn]
            for j in range(jn):
                dst[j] = src[j]
            for j in range(jn, nr):
                dst[j] = zero


@njit(**HELPER)
def gather_panels(xv, nc, c0, cg, geom, voff, p0, npos, nr, kk, pan, o, zero):
    """The tile's windows straight into panels: ``pan[q*npos*nr + p*nr + j]`` = column
    ``q*nr + j`` (``t*cg + c``: channel ``c0 + c`` at tap ``t``) of output ``p0 + p``,
    zero past ``kk``. ``xv`` is a channels-last virtual plane with ``nc`` channels.

    Unsigned index arithmetic, no slices: a slice per run would cost more than its copy.
    """
    ntap = voff.shape[0]
    npan = (kk + nr - 1) // nr
    pstride = np.uint64(npos * nr)
    unr = np.uint64(nr)
    vo = first_position(geom, p0, o)
    for p in range(npos):
        prow = np.uint64(p * nr)
        for t in range(ntap):
            src = np.uint64((vo + voff[t]) * nc + c0)
            j = t * cg
            c = 0
            while c < cg:
                q = np.uint64(j // nr)
                off = np.uint64(j % nr)
                n = min(nr - j % nr, cg - c)
                dst = q * pstride + prow + off
                s0 = src + np.uint64(c)
                for i in range(np.uint64(n)):
                    pan[dst + i] = xv[s0 + i]
                c += n
                j += n
        tail = npan * nr - kk
        if tail:
            dst = np.uint64(npan - 1) * pstride + prow
            for i in range(np.uint64(nr - tail), unr):
                pan[dst + i] = zero
        vo = next_position(geom, o, vo)


@njit(**HELPER)
def wgrad_tile(npos, kk, nr, pan, a, sc, zb, gout, n, g, m, p0, acc, zero):
    """``acc[j, r] += sum_p gout[n, g*m + r, p0 + p] * column j of output p0 + p`` over
    one tile whose columns are in panels (``pan``, see :func:`gather_panels`).

    The tile's ``grad_output`` rows are copied to ``a`` (zero past ``m``, to
    whole ``MR`` blocks), and the micro-kernel's ``MR x NR`` products (in
    ``sc``) added to ``acc``.
    """
    npan = (kk + nr - 1) // nr
    mpad = (m + MR - 1) // MR * MR
    wide = nr * pan.itemsize > VECTOR_BYTES
    for r in range(mpad):
        dst = a[r * npos:(r + 1) * npos]
        if r < m:
            src = gout[n, g * m + r, p0:p0 + npos]
            for p in range(npos):
                dst[p] = src[p]
        else:
            for p in range(npos):
                dst[p] = zero
    for q in range(npan):
        b = pan[q * npos * nr:(q + 1) * npos * nr]
        ncol = min(nr, kk - q * nr)
        for r0 in range(0, m, MR):
            nrow = min(MR, m - r0)
            if wide:
                panel_block2(a, r0 * npos, npos, b, npos, zb, sc, 0, MR, nrow, ncol)
            else:
                panel_block1(a, r0 * npos, npos, b, npos, zb, sc, 0, MR, nrow, ncol)
            for j in range(ncol):
                dst = acc[q * nr + j, r0:r0 + nrow]
                src = sc[j * MR:j * MR + nrow]
                for i in range(nrow):
                    dst[i] += src[i]


@njit(**PARALLEL)
def weight_grad_gemm(x, gout, groups, geom, maps, voff, nr, tile, chunk, zero, acc_all):
    """``acc_all[w, g, t*C_g + c, r]`` += worker ``w``'s share of
    ``sum_{n, p} gout[n, g*m + r, p] * (tap t of input channel g*C_g + c at output p)``.

    x (N, C, L_in); gout (N, C_out, L_out); acc_all (workers, groups, T*C_g, m),
    zeroed by the caller (sum it over workers). ``nr``: panel width, one or
    two vectors; ``chunk`` images have their virtual planes built at a time.
    """
    nimg, nc, _ = x.shape
    cout = gout.shape[1]
    m = cout // groups
    cg = nc // groups
    kk = voff.shape[0] * cg
    npan = (kk + nr - 1) // nr
    mpad = (m + MR - 1) // MR * MR
    last = geom.shape[1] - 1
    d = last + 1
    vl = geom[G_VLEN, last]
    lv = geom[G_VSTR, 0] * geom[G_VLEN, 0]
    nvrow = lv // vl
    lout = gout.shape[2]
    ntile = (lout + tile - 1) // tile
    nw = acc_all.shape[0]
    vrows = virtual_row_table(geom, maps)
    xv_all = np.empty((min(chunk, nimg), padded(lv * nc)), dtype=x.dtype)
    pan_all = worker_rows(nw, npan * tile * nr, x.dtype, True)
    a_all = worker_rows(nw, mpad * tile, x.dtype, True)
    sc_all = worker_rows(nw, nr * MR, x.dtype, True)
    o_all = np.zeros((nw, padded(d)), dtype=np.int64)
    zb = np.zeros(nr, dtype=x.dtype)
    for n0 in range(0, nimg, chunk):
        nb = min(chunk, nimg - n0)
        for r in prange(nb * nvrow):
            vr = r % nvrow
            virtual_cols_cl(x[n0 + r // nvrow], vrows[vr], geom, maps, ZERO, nc, ZERO, vl,
                            xv_all[r // nvrow, vr * vl * nc:(vr + 1) * vl * nc], zero)
        njobs = nb * groups * ntile
        counts = job_counters(nw)
        for wk in prange(nw):
            pan = pan_all[wk]
            a = a_all[wk]
            sc = sc_all[wk]
            o = o_all[wk]
            while True:
                job = next_job(counts, wk, nw, njobs)
                if job < 0:
                    break
                tl = job % ntile
                g = (job // ntile) % groups
                nn = job // (ntile * groups)
                p0 = tl * tile
                npos = min(tile, lout - p0)
                gather_panels(xv_all[nn], nc, g * cg, cg, geom, voff, p0, npos, nr, kk, pan, o,
                              zero)
                wgrad_tile(npos, kk, nr, pan, a, sc, zb, gout, n0 + nn, g, m, p0, acc_all[wk, g],
                           zero)


@njit(**HELPER)
def _tap_dot(gr, vp, base, s_l, n):
    """``sum_j gr[j] * vp[base + j * s_l]`` for ``j < n``."""
    acc = gr[0] * 0
    if s_l == 1:
        src = vp[base:base + n]
        for j in range(n):
            acc += gr[j] * src[j]
    else:
        for j in range(n):
            acc += gr[j] * vp[base + j * s_l]
    return acc


@njit(**PARALLEL)
def weight_grad_direct(x, gout, groups, geom, maps, voff, dw, zero, workers):
    """``dw[co, c*T + t] = sum_{n, p} gout[n, co, p] * window tap t of input channel
    g*C_g + c`` (``g`` the group of ``co``).

    x (N, C, L_in); gout (N, C_out, L_out); dw (C_out, C_g * T), written whole.
    One job per (output channel, input channel of its group).
    """
    nimg, nc, _ = x.shape
    cout = gout.shape[1]
    m = cout // groups
    cg = nc // groups
    ntap = voff.shape[0]
    last = geom.shape[1] - 1
    lv = geom[G_VSTR, 0] * geom[G_VLEN, 0]
    olast = geom[G_OUT, last]
    nrow = gout.shape[2] // olast
    s_l = geom[G_STRIDE, last]
    njobs = cout * cg
    nw = max(min(workers, njobs), 1)
    vrows = virtual_row_table(geom, maps)
    orows = output_row_table(geom)
    vp_all = worker_rows(nw, lv, x.dtype, False)
    acc_all = worker_rows(nw, ntap, x.dtype, False)
    counts = job_counters(nw)
    for wk in prange(nw):
        vp = vp_all[wk]
        acc = acc_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            co = job // cg
            c = job % cg
            g = co // m
            for t in range(ntap):
                acc[t] = zero
            for n in range(nimg):
                virtual_plane(x[n, g * cg + c], geom, maps, vrows, vp, zero)
                gn = gout[n, co]
                for r in range(nrow):
                    gr = gn[r * olast:(r + 1) * olast]
                    for t in range(ntap):
                        acc[t] += _tap_dot(gr, vp, orows[r] + voff[t], s_l, olast)
            for t in range(ntap):
                dw[co, c * ntap + t] = acc[t]


@njit(**PARALLEL)
def scatter_add_planes(src, idx, dst, workers):
    """``dst[n, c, idx[n, c, j]] += src[n, c, j]``, one job per channel plane.

    Every index must be in ``[0, dst.shape[2])`` (the caller checks).
    """
    nimg, nc, m = src.shape
    njobs = nimg * nc
    nw = max(min(workers, njobs), 1)
    counts = job_counters(nw)
    for wk in prange(nw):
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            s = src[job // nc, job % nc]
            ix = idx[job // nc, job % nc]
            dd = dst[job // nc, job % nc]
            for j in range(m):
                dd[ix[j]] += s[j]
