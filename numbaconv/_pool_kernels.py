"""Pooling on the sliding-window core: the same virtual planes, other reduce steps.

A job is one (image, channel) plane, as in :func:`numbaconv._core.window_direct`:
the plane's virtual plane (padding filled with ``fill``: ``-inf`` for max, 0
for sums) is reduced over the window's taps into an accumulator laid out like
the virtual plane, and the epilogue writes each output (scaled, for averages).
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._config import HELPER, PARALLEL
from ._core import next_row, output_row_table, padded, virtual_plane, virtual_row_table, worker_rows
from ._geometry import G_OUT, G_STRIDE, G_VLEN, G_VSTR
from ._jobs import job_counters, next_job
from ._microkernel import counted_loop, masked_vectors, vector_loop

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


def _row_codegen(step: int, largest: bool):
    """LLVM IR of the ``*_row{step}`` intrinsics: explicit vectors of outputs, the taps' values
    combined in a register, one store a vector (:func:`numbaconv._microkernel.vector_loop`)."""

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        vpty, _, offty, dty, _ = sig.args
        q0, n = (context.cast(builder, args[i], sig.args[i], types.int64) for i in (1, 4))
        mv = masked_vectors(context, builder, vpty.dtype)
        vl = mv.vl
        vp = builder.gep(context.make_array(vpty)(context, builder, args[0]).data, [q0])
        offs = context.make_array(offty)(context, builder, args[2])
        ntap = cgutils.unpack_tuple(builder, offs.shape)[0]
        dp = context.make_array(dty)(context, builder, args[3]).data
        fty = mv.vty.element
        first = ir.Constant(mv.vty, [ir.Constant(fty, float("-inf") if largest else 0.0)] * vl)
        # samples 0, 2, ... of a vector and 1, 3, ... of the one that starts vl - 1 later: the
        # even samples up to the last one needed, and nothing past it
        evens = ir.Constant(ir.VectorType(ir.IntType(32), vl),
                            list(range(0, vl, 2)) + list(range(vl + 1, 2 * vl, 2)))
        acc = cgutils.alloca_once(builder, mv.vty)

        def body(j, ok):
            builder.store(first, acc)
            j0 = builder.mul(j, ir.Constant(i64, step))
            if ok is not None and step == 2:  # the samples of the lanes below n: < 2n - 1
                end = builder.sub(builder.mul(n, ir.Constant(i64, 2)), ir.Constant(i64, 1))
                oks = [mv.lanes_below(builder, builder.add(j0, ir.Constant(i64, h * (vl - 1))),
                                      end) for h in range(2)]

            def tap(t):
                at = builder.add(j0, builder.load(builder.gep(offs.data, [t])))
                if step == 1:
                    v = mv.read(builder, mv.pointer(builder, vp, at), ok)
                else:  # two vectors of samples (the second from vl - 1 on), the even ones
                    lo, hi = (mv.read(builder, mv.pointer(builder, vp, builder.add(
                        at, ir.Constant(i64, h * (vl - 1)))), None if ok is None else oks[h])
                        for h in range(2))
                    v = builder.shuffle_vector(lo, hi, evens)
                a = builder.load(acc)
                if largest:  # NaN wins: v replaces a where v > a or v is NaN
                    take = builder.or_(builder.fcmp_ordered(">", v, a),
                                       builder.fcmp_unordered("!=", v, v))
                    builder.store(builder.select(take, v, a), acc)
                else:
                    builder.store(builder.fadd(a, v), acc)

            counted_loop(builder, ntap, 1, tap, "taps")
            mv.write(builder, builder.load(acc), mv.pointer(builder, dp, j), ok)

        vector_loop(builder, mv, n, body, "pool_row")
        return context.get_dummy_value()

    return codegen


def _row_intrinsic(step: int, largest: bool):
    @intrinsic
    def row(typingctx, vp, q0, voff, dst, n):
        return types.none(vp, q0, voff, dst, n), _row_codegen(step, largest)

    what = "max_t (NaN wins)" if largest else "sum_t"
    row.__doc__ = (f"``dst[j] = {what} vp[q0 + voff[t] + {step} * j]`` for ``j < n``: one "
                   "run of outputs of a pool, in explicit vectors. ``vp`` and ``dst`` of one float "
                   "dtype, C-contiguous; ``voff`` int64.")
    return row


max_row1 = _row_intrinsic(1, True)
max_row2 = _row_intrinsic(2, True)
sum_row1 = _row_intrinsic(1, False)
sum_row2 = _row_intrinsic(2, False)


@njit(**HELPER)
def pool_row(vp, q0, voff, step, dst, largest):
    """``dst[j] = max_t vp[q0 + voff[t] + j * step]`` (NaN wins) with ``largest``, else the
    sum: one output row of a pool, or with ``step`` 1 one run of windows.

    Steps 1 and 2 run in explicit vectors (the compare-and-store form LLVM made of the loop
    below is masked stores on AVX2, ~20 cycles each on Zen 3: max_pool2d 3x3 s2 took 0.9 ns a
    tap, NOTES 95); other steps read the windows ``step`` apart as such.
    """
    m = dst.shape[0]
    if step == 1 or step == 2:
        if largest:
            if step == 1:
                max_row1(vp, q0, voff, dst, m)
            else:
                max_row2(vp, q0, voff, dst, m)
        elif step == 1:
            sum_row1(vp, q0, voff, dst, m)
        else:
            sum_row2(vp, q0, voff, dst, m)
        return
    for j in range(m):
        dst[j] = -np.inf if largest else 0
    for t in range(voff.shape[0]):
        src = vp[q0 + voff[t]:q0 + voff[t] + (m - 1) * step + 1]
        for j in range(m):
            v = src[j * step]
            if largest:
                if v > dst[j] or v != v:
                    dst[j] = v
            else:
                dst[j] += v


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
    acc_all = worker_rows(nw, lv, x.dtype, False)
    vp_all = worker_rows(nw, lv, x.dtype, False)
    arg_all = np.empty((nw, padded(lv)), dtype=np.int64)
    coord_all = np.zeros((nw, padded(d)), dtype=np.int64)
    ninf = x.dtype.type(-np.inf)
    counts = job_counters(nw)
    for wk in prange(nw):
        acc = acc_all[wk]
        vp = vp_all[wk]
        arg = arg_all[wk]
        o = coord_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
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
                    pool_row(vp, orows[r], voff, s_l, dst, op == MAX)
                    if op == MAX:
                        continue
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
                if op != MAX_INDEX:  # the windows at every position of the run
                    pool_row(vp, q0, voff, 1, dst, op == MAX)
                    continue
                ag = arg[q0:q0 + m]
                for q in range(m):
                    dst[q] = ninf
                    ag[q] = -1
                for t in range(ntap):
                    src = vp[q0 + voff[t]:q0 + voff[t] + m]
                    vi = vidx[q0 + voff[t]:q0 + voff[t] + m]
                    for q in range(m):
                        v = src[q]
                        if vi[q] >= 0 and (ag[q] < 0 or v > dst[q] or v != v):
                            dst[q] = v
                            ag[q] = vi[q]
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
    counts = job_counters(nw)
    for wk in prange(nw):
        o = coord_all[wk, :d]
        c = coord_all[wk, d:2 * d]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
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
    counts = job_counters(nw)
    for wk in prange(nw):
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            n = job // nc
            ch = job % nc
            dst = out[n, ch]
            for j in range(dst.shape[0]):
                dst[j] = 0
            src = x[n, ch]
            ind = idx[n, ch]
            for j in range(lin):
                dst[ind[j]] = src[j]
