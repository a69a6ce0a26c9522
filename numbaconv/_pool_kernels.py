"""Pooling on the sliding-window core: the same virtual planes, other reduce steps.

A job is one (image, channel) plane, as in :func:`numbaconv._core.window_direct`:
the plane's virtual plane (padding filled with ``fill``: ``-inf`` for max, 0
for sums) is reduced over the window's taps into an accumulator laid out like
the virtual plane, and the epilogue writes each output (scaled, for averages).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._config import HELPER, PARALLEL
from ._core import next_row, output_row_table, padded, virtual_plane, virtual_row_table, worker_rows
from ._geometry import G_OUT, G_STRIDE, G_VLEN, G_VSTR

#: reduce codes
MAX, MAX_INDEX, SUM, POWER_SUM = 0, 1, 2, 3


@njit(**HELPER)
def _spans(geom, orows, unit, reach, span, r):
    """(start, length) of the accumulator range output row ``r`` needs (all rows if ``unit``)."""
    if unit:
        return 0, reach + 1
    return orows[r], span


@njit(**HELPER)
def leading_scale(scale, scale_off, o, last):
    """``prod_a scale[scale_off[a] + o[a]]`` over the axes before ``last``: a row's scale."""
    base = 1.0
    for a in range(last):
        base *= scale[scale_off[a] + o[a]]
    return base


@njit(**HELPER)
def max_row(vp, q0, voff, step, dst, ninf):
    """``dst[j] = max_t vp[q0 + voff[t] + j * step]`` (NaN wins): one output row of max pooling.

    The windows ``step`` apart are read as such (a constant 2 where it is 2,
    which LLVM loads as pairs of vectors), not all the positions between.
    """
    m = dst.shape[0]
    for j in range(m):
        dst[j] = ninf
    for t in range(voff.shape[0]):
        src = vp[q0 + voff[t]:q0 + voff[t] + (m - 1) * step + 1]
        if step == 2:
            for j in range(m):
                v = src[2 * j]
                if v > dst[j] or v != v:
                    dst[j] = v
        else:
            for j in range(m):
                v = src[j * step]
                if v > dst[j] or v != v:
                    dst[j] = v


@njit(**HELPER)
def sum_row(vp, q0, voff, step, dst):
    """``dst[j] = sum_t vp[q0 + voff[t] + j * step]``: a row of a sum pool, as :func:`max_row`."""
    m = dst.shape[0]
    for j in range(m):
        dst[j] = 0
    for t in range(voff.shape[0]):
        src = vp[q0 + voff[t]:q0 + voff[t] + (m - 1) * step + 1]
        if step == 2:
            for j in range(m):
                dst[j] += src[2 * j]
        else:
            for j in range(m):
                dst[j] += src[j * step]


@njit(**PARALLEL)
def window_pool(x, out, idx, geom, maps, voff, vidx, op, power, scale, scale_off, fill,
                workers):
    """Pool every (image, channel) plane of ``x`` (N, C, L_in) into ``out`` (N, C, L_out).

    ``op``: MAX, MAX_INDEX (also writes the flat input index of each maximum
    to ``idx``, PyTorch's rule: the first valid tap, then any larger value or
    any NaN), SUM or POWER_SUM (sum of ``x ** power``). Sums are multiplied by
    ``prod_a scale[scale_off[a] + o_a]`` per output ``o``. ``vidx`` maps each
    virtual-plane position to its flat input index (-1 in the padding).
    """
    nimg, nc, lin = x.shape
    d = geom.shape[1]
    last = d - 1
    # The same sweep plan as window_direct's, written out again on purpose: a shared
    # helper returning it as a tuple made the direct kernel 12% slower (measured).
    lv = geom[G_VSTR, 0] * geom[G_VLEN, 0]
    olast = geom[G_OUT, last]
    lout = out.shape[2]
    nrow = lout // olast
    s_l = geom[G_STRIDE, last]
    span = (olast - 1) * s_l + 1
    unit = True
    reach = 0
    for a in range(d):
        if geom[G_STRIDE, a] != 1:
            unit = False
        reach += (geom[G_OUT, a] - 1) * geom[G_STRIDE, a] * geom[G_VSTR, a]
    njobs = nimg * nc
    nw = max(min(workers, njobs), 1)
    vrows = virtual_row_table(geom, maps)
    orows = output_row_table(geom)
    ntap = voff.shape[0]
    acc_all = worker_rows(nw, lv, x, False)
    vp_all = worker_rows(nw, lv, x, False)
    arg_all = np.empty((nw, padded(lv)), dtype=np.int64)
    coord_all = np.zeros((nw, padded(d)), dtype=np.int64)
    ninf = x.dtype.type(-np.inf)
    for wk in prange(nw):
        acc = acc_all[wk]
        vp = vp_all[wk]
        arg = arg_all[wk]
        o = coord_all[wk]
        for job in range((wk * njobs) // nw, ((wk + 1) * njobs) // nw):
            n = job // nc
            c = job % nc
            virtual_plane(x[n, c], geom, maps, vrows, vp, fill)
            if op == POWER_SUM:
                for j in range(lv):
                    vp[j] = vp[j] ** power
            if (op == MAX or op == SUM or op == POWER_SUM) and not unit:
                # straight into the output, row by row: only the strided windows
                orow = out[n, c]
                for a in range(d):
                    o[a] = 0
                for r in range(nrow):
                    dst = orow[r * olast:(r + 1) * olast]
                    if op == MAX:
                        max_row(vp, orows[r], voff, s_l, dst, ninf)
                        continue
                    sum_row(vp, orows[r], voff, s_l, dst)
                    base = leading_scale(scale, scale_off, o, last)
                    sc = scale[scale_off[last]:scale_off[last] + olast]
                    for j in range(olast):
                        dst[j] *= base * sc[j]
                    next_row(geom[G_OUT], o, last)
                continue
            nruns = 1 if unit else nrow
            for r in range(nruns):
                q0, m = _spans(geom, orows, unit, reach, span, r)
                dst = acc[q0:q0 + m]
                if op == MAX or op == MAX_INDEX:
                    for q in range(m):
                        dst[q] = ninf
                    if op == MAX_INDEX:
                        ag = arg[q0:q0 + m]
                        for q in range(m):
                            ag[q] = -1
                else:
                    for q in range(m):
                        dst[q] = 0
                for t in range(ntap):
                    src = vp[q0 + voff[t]:q0 + voff[t] + m]
                    if op == MAX:
                        for q in range(m):
                            v = src[q]
                            if v > dst[q] or v != v:
                                dst[q] = v
                    elif op == MAX_INDEX:
                        ag = arg[q0:q0 + m]
                        vi = vidx[q0 + voff[t]:q0 + voff[t] + m]
                        for q in range(m):
                            v = src[q]
                            if vi[q] >= 0 and (ag[q] < 0 or v > dst[q] or v != v):
                                dst[q] = v
                                ag[q] = vi[q]
                    else:
                        for q in range(m):
                            dst[q] += src[q]
            # epilogue, output row by output row
            orow = out[n, c]
            for a in range(d):
                o[a] = 0
            for r in range(nrow):
                rb = orows[r]
                base = leading_scale(scale, scale_off, o, last)
                for j in range(olast):
                    q = rb + j * s_l
                    if op == MAX:
                        orow[r * olast + j] = acc[q]
                    elif op == MAX_INDEX:
                        orow[r * olast + j] = acc[q]
                        idx[n, c, r * olast + j] = arg[q]
                    else:
                        orow[r * olast + j] = acc[q] * (base * scale[scale_off[last] + j])
                next_row(geom[G_OUT], o, last)


@njit(**PARALLEL)
def adaptive_pool(x, out, idx, bounds, in_shape, out_shape, op, workers):
    """Adaptive pooling: output ``o`` of each plane reduces the box ``[lo_a, hi_a)`` per axis.

    ``bounds[a, 0, o_a]`` and ``bounds[a, 1, o_a]`` are the box of output index
    ``o_a`` along axis ``a``; ``op`` is MAX, MAX_INDEX or SUM (a mean here).
    """
    nimg, nc, lin = x.shape
    d = in_shape.shape[0]
    lout = out.shape[2]
    njobs = nimg * nc
    nw = max(min(workers, njobs), 1)
    instr = np.ones(d, dtype=np.int64)
    for a in range(d - 2, -1, -1):
        instr[a] = instr[a + 1] * in_shape[a + 1]
    coord_all = np.zeros((nw, padded(3 * d)), dtype=np.int64)
    ninf = x.dtype.type(-np.inf)
    for wk in prange(nw):
        o = coord_all[wk, :d]
        c = coord_all[wk, d:2 * d]
        for job in range((wk * njobs) // nw, ((wk + 1) * njobs) // nw):
            n = job // nc
            ch = job % nc
            plane = x[n, ch]
            for a in range(d):
                o[a] = 0
            for q in range(lout):
                count = 1
                for a in range(d):
                    c[a] = bounds[a, 0, o[a]]
                    count *= bounds[a, 1, o[a]] - bounds[a, 0, o[a]]
                best = ninf
                besti = -1
                total = 0.0
                for _ in range(count):
                    f = 0
                    for a in range(d):
                        f += c[a] * instr[a]
                    v = plane[f]
                    if op == SUM:
                        total += v
                    elif besti < 0 or v > best or v != v:
                        best = v
                        besti = f
                    a = d - 1  # next box position (odometer)
                    while a >= 0:
                        c[a] += 1
                        if c[a] < bounds[a, 1, o[a]]:
                            break
                        c[a] = bounds[a, 0, o[a]]
                        a -= 1
                if op == SUM:
                    out[n, ch, q] = total / count
                else:
                    out[n, ch, q] = best
                    if op == MAX_INDEX:
                        idx[n, ch, q] = besti
                a = d - 1  # next output (odometer)
                while a >= 0:
                    o[a] += 1
                    if o[a] < out_shape[a]:
                        break
                    o[a] = 0
                    a -= 1


@njit(**PARALLEL)
def unpool(x, idx, out, workers):
    """``out[n, c, idx[n, c, j]] = x[n, c, j]`` on zeros, one plane per job."""
    nimg, nc, lin = x.shape
    njobs = nimg * nc
    nw = max(min(workers, njobs), 1)
    for wk in prange(nw):
        for job in range((wk * njobs) // nw, ((wk + 1) * njobs) // nw):
            n = job // nc
            ch = job % nc
            dst = out[n, ch]
            for j in range(dst.shape[0]):
                dst[j] = 0
            src = x[n, ch]
            ind = idx[n, ch]
            for j in range(lin):
                dst[ind[j]] = src[j]
