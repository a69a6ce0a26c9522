"""Compiled kernels of the deformable convolution's backward pass.

* :func:`deform_weight_grad` -- the forward's jobs (image, weight group, tile
  of positions) and its interpolating gather
  (:func:`~numbaconv._deform_kernels.deform_tile`), followed by the weight
  gradient's tile product (:func:`~numbaconv._grad_kernels.wgrad_tile`) into
  the worker's own copy of the gradient.
* :func:`deform_input_grad` -- one job per (image, offset group), tile by
  tile: the gradient of the tile's columns (``dcolT[p, t*C_g + c]``, the
  weights times ``grad_output``, by the micro-kernel), then per sample point
  its interpolation stencil and, over the offset group's channels, the
  scatter of that gradient onto the point's ``2**d`` corners (the input
  gradient, channels-last), the dot products with the corner values that
  give the mask's gradient, and those with the stencil's derivatives that
  give the offsets'. A job owns its image's channels of that offset group and
  its offset and mask rows, so nothing is written by two jobs.

Points outside ``(-1, size)`` on some axis, or not finite, contribute nothing
and get zero gradients, as in the forward; corners outside the input count as
zeros (their weights and derivatives are zero).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._config import HELPER, PARALLEL
from ._core import padded, virtual_row_table, worker_rows
from ._deform_kernels import (
    cl_planes,
    deform_tile,
    stencil_scratch,
    stencil_views,
    window_starts,
)
from ._grad_kernels import panels, wgrad_tile
from ._jobs import job_counters, next_job
from ._microkernel import MR, VECTOR_BYTES, panel_block1, panel_block2


@njit(**PARALLEL)
def deform_weight_grad(x, offset, mask, gout, groups, geom, maps, outlen, size, instr, ostart,
                       tapk, nr, tile, chunk, zero, one, acc_all):
    """``acc_all[w, g, t*C_g + c, r]`` += worker ``w``'s share of
    ``sum_{n, p} gout[n, g*m + r, p] * column (t, g*C_g + c) of output p``.

    Arguments as :func:`~numbaconv._deform_kernels.window_deform`; gout
    (N, C_out, L_out); acc_all (workers, groups, T*C_g, m), zeroed by the caller.
    """
    nimg, nc, lin = x.shape
    cout = gout.shape[1]
    m = cout // groups
    cg = nc // groups
    ntap, d = tapk.shape
    kk = ntap * cg
    npan = (kk + nr - 1) // nr
    mpad = (m + MR - 1) // MR * MR
    lout = gout.shape[2]
    ntile = (lout + tile - 1) // tile
    nw = acc_all.shape[0]
    vrows = virtual_row_table(geom, maps)
    xv_all = np.empty((min(chunk, nimg), padded((lin + 1) * nc)), dtype=x.dtype)
    colT_all = worker_rows(nw, tile * kk, x.dtype, True)
    pan_all = worker_rows(nw, npan * tile * nr, x.dtype, True)
    a_all = worker_rows(nw, mpad * tile, x.dtype, True)
    sc_all = worker_rows(nw, nr * MR, x.dtype, True)
    int_all, flt_all, ok_all = stencil_scratch(nw, tile, d, x.dtype)
    zb = np.zeros(nr, dtype=x.dtype)
    fsize = size.astype(x.dtype)
    for n0 in range(0, nimg, chunk):
        nb = min(chunk, nimg - n0)
        cl_planes(x, n0, nb, geom, maps, vrows, xv_all, zero)
        njobs = nb * groups * ntile
        counts = job_counters(nw)
        for wk in prange(nw):
            colT = colT_all[wk, :tile * kk].reshape((tile, kk))
            st = stencil_views(int_all[wk], flt_all[wk], d, tile, one)
            while True:
                job = next_job(counts, wk, nw, njobs)
                if job < 0:
                    break
                tl = job % ntile
                g = (job // ntile) % groups
                nn = job // (ntile * groups)
                p0 = tl * tile
                npos = min(tile, lout - p0)
                window_starts(outlen, ostart, p0, npos, st[3], st[4])
                deform_tile(xv_all[nn], nc, lin, offset, mask, n0 + nn, p0, npos, g * cg, cg, size,
                            fsize, instr, tapk, ok_all[wk], st, colT, zero, one)
                panels(colT, npos, kk, nr, pan_all[wk], zero)
                wgrad_tile(npos, kk, nr, pan_all[wk], a_all[wk], sc_all[wk], zb, gout, n0 + nn, g,
                           m, p0, acc_all[wk, g], zero)


@njit(**HELPER)
def _column_grads(wa, nrows, g, m, gout, n, p0, npos, nr, gp, zb, dcol):
    """``dcol[p*R + r] = sum_k wa[g, r, k] * gout[n, g*m + k, p0 + p]`` (``R = T*C_g``).

    ``wa[g]`` is group ``g``'s tap-major weights transposed, ``(R_pad, m)``:
    ``nrows = R`` rows padded to whole ``MR`` blocks (the row stride of
    ``dcol``); ``gp`` scratch for one panel of ``grad_output`` (``m x nr``).
    """
    rows = wa.shape[1]
    wide = nr * wa.itemsize > VECTOR_BYTES
    for pb in range(0, npos, nr):
        ncol = min(nr, npos - pb)
        for k in range(m):
            src = gout[n, g * m + k, p0 + pb:p0 + pb + ncol]
            dst = gp[k * nr:(k + 1) * nr]
            for j in range(ncol):
                dst[j] = src[j]
            for j in range(ncol, nr):
                dst[j] = 0.0
        for r0 in range(0, nrows, MR):
            nrow = min(MR, nrows - r0)
            if wide:
                panel_block2(wa[g], r0 * m, m, gp, m, zb, dcol, pb * rows + r0, rows, nrow, ncol)
            else:
                panel_block1(wa[g], r0 * m, m, gp, m, zb, dcol, pb * rows + r0, rows, nrow, ncol)


@njit(**PARALLEL)
def deform_input_grad(x, nc, offset, mask, gout, wa, groups, outlen, size, instr, ostart, tapk,
                      nr, tile, gx, goff, gmask, zero, one, workers):
    """Input, offset and mask gradients of a deformable convolution (module docstring).

    x channels-last planes ``(N, (L_in + 1) * C)`` (a zero row last); offset,
    mask, gout as the forward's (mask empty for none); wa ``(groups, R_pad, m)``
    (see :func:`_column_grads`); ``nc`` channels; gx like
    ``x``, goff like ``offset``, gmask like ``mask`` (or empty): all zeroed by
    the caller and added to.
    """
    nimg = x.shape[0]
    ntap, d = tapk.shape
    og = offset.shape[1] // (ntap * d)
    cpo = nc // og
    cg = nc // groups
    m = gout.shape[1] // groups
    ncorner = 1 << d
    has_mask = mask.shape[0] > 0
    lout = gout.shape[2]
    njobs = nimg * og
    nw = max(min(workers, njobs), 1)
    dcol_all = worker_rows(nw, tile * wa.shape[1], gx.dtype, False)
    gp_all = worker_rows(nw, m * nr, gx.dtype, False)
    zb = np.zeros(nr, dtype=gx.dtype)
    int_all = np.empty((nw, padded(2 * ncorner + 4 * d)), dtype=np.int64)
    flt_all = worker_rows(nw, (2 + d) * ncorner + 3 * d + tile * d, gx.dtype, False)
    counts = job_counters(nw)
    for wk in prange(nw):
        dcol = dcol_all[wk]
        iw = int_all[wk]
        fw = flt_all[wk]
        coff = iw[:ncorner]
        il = iw[ncorner:ncorner + d]
        ih = iw[ncorner + d:ncorner + 2 * d]
        lo_in = iw[ncorner + 2 * d:ncorner + 3 * d]
        hi_in = iw[ncorner + 3 * d:ncorner + 4 * d]
        o = iw[ncorner + 4 * d:2 * ncorner + 4 * d]
        cw = fw[:ncorner]
        s = fw[ncorner:2 * ncorner]
        dcw = fw[2 * ncorner:(2 + d) * ncorner].reshape((d, ncorner))
        wl = fw[(2 + d) * ncorner:(2 + d) * ncorner + d]
        wh = fw[(2 + d) * ncorner + d:(2 + d) * ncorner + 2 * d]
        basep = fw[(2 + d) * ncorner + 3 * d:(2 + d) * ncorner + 3 * d + tile * d].reshape(
            (d, tile))
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            n = job // og
            h = job % og
            xv = x[n]
            gxv = gx[n]
            for p0 in range(0, lout, tile):
                npos = min(tile, lout - p0)
                window_starts(outlen, ostart, p0, npos, o, basep)
                for g in range(h * cpo // cg, ((h + 1) * cpo - 1) // cg + 1):
                    c_lo = max(h * cpo, g * cg)
                    c_hi = min((h + 1) * cpo, (g + 1) * cg)
                    _column_grads(wa, ntap * cg, g, m, gout, n, p0, npos, nr, gp_all[wk], zb,
                                  dcol)
                    rows = wa.shape[1]
                    for t in range(ntap):
                        ch = (h * ntap + t) * d
                        for p in range(npos):
                            ok = _point_stencil(basep, p, tapk, t, offset, n, ch, p0, size,
                                                instr, coff, cw, dcw, il, ih, lo_in, hi_in, wl,
                                                wh, zero, one)
                            if not ok:
                                continue
                            mv = mask[n, h * ntap + t, p0 + p] if has_mask else one
                            # unsigned indices, no slices: both cost more than the sweeps
                            dbase = np.uint64(p * rows + t * cg + c_lo - g * cg)
                            nch = np.uint64(c_hi - c_lo)
                            for k in range(ncorner):
                                base = np.uint64(coff[k] * nc + c_lo)
                                wk_ = mv * cw[k]
                                acc = zero
                                for c in range(nch):
                                    dv = dcol[dbase + c]
                                    acc += dv * xv[base + c]
                                    gxv[base + c] += wk_ * dv
                                s[k] = acc
                            if has_mask:
                                gm = zero
                                for k in range(ncorner):
                                    gm += cw[k] * s[k]
                                gmask[n, h * ntap + t, p0 + p] += gm
                            for a in range(d):
                                go = zero
                                for k in range(ncorner):
                                    go += dcw[a, k] * s[k]
                                goff[n, ch + a, p0 + p] += mv * go


@njit(**HELPER)
def _point_stencil(basep, p, tapk, t, offset, n, ch, p0, size, instr, coff, cw, dcw, il, ih,
                   lo_in, hi_in, wl, wh, zero, one):
    """The interpolation stencil of one sample point; False when it contributes nothing.

    Writes the flat input offsets of its corners (``coff``, clamped into the
    input), their weights (``cw``, zero outside) and the weights' derivatives
    along each axis (``dcw[a]``).
    """
    d = tapk.shape[1]
    for a in range(d):
        v = basep[a, p] + tapk[t, a] + offset[n, ch + a, p0 + p]
        if not (v > -one and v < size[a]):  # also false for NaN
            return False
        f = np.floor(v)
        low = int(f)
        fr = v - f
        lo_in[a] = low >= 0
        hi_in[a] = low < size[a] - 1
        wl[a] = one - fr
        wh[a] = fr
        il[a] = (low if lo_in[a] else low + 1) * instr[a]
        ih[a] = (low + 1 if hi_in[a] else low) * instr[a]
    for k in range(1 << d):
        off = 0
        w = one
        inside = True
        for a in range(d):
            if (k >> (d - 1 - a)) & 1:
                off += ih[a]
                w *= wh[a]
                inside = inside and hi_in[a] != 0
            else:
                off += il[a]
                w *= wl[a]
                inside = inside and lo_in[a] != 0
        coff[k] = off
        cw[k] = w if inside else zero
        for a in range(d):
            up = (k >> (d - 1 - a)) & 1
            dv = one if up else -one
            for b in range(d):
                if b != a:
                    dv *= wh[b] if (k >> (d - 1 - b)) & 1 else wl[b]
            dcw[a, k] = dv if inside else zero
    return True
