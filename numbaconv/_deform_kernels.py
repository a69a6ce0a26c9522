"""Deformable convolution on the core: a gather at learned, interpolated positions.

The kernel is :func:`numbaconv._core.window_gemm` with another gather. Each
job is one image, one weight group and one tile of output positions. The image
is first made a channels-last plane (by the core's plane builder, through the
tables of the identity window), followed by one row of zeros. For each
(offset group, tap) the job computes the interpolation stencils of all its
sample points at once -- per axis, then per corner, in loops over positions
that vectorise -- and then blends, per point, its ``2**d`` corners, each a
contiguous run of channels, into the rows of the tile matrix
``colT[p, t*C_g + c]``. The reduce and the epilogue are the core's
:func:`~numbaconv._core.tile_gemm` (the explicit-vector micro-kernel). No
column buffer grows with the batch: a worker holds one tile.

Safety: a point is sampled only when every coordinate ``v`` satisfies
``-1 < v < size`` (false for NaN and +-inf); otherwise all its corners read
the zero row with weight zero, so it contributes exactly zero whatever its
mask. A corner outside the input is clamped onto its inside neighbour with
weight zero. No offset value can read out of bounds.
"""

from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.extending import intrinsic

from ._config import HELPER, PARALLEL
from ._core import (
    ZERO,
    next_row,
    padded,
    tile_gemm,
    tile_rows,
    virtual_cols_cl,
    virtual_row_table,
    worker_rows,
)
from ._geometry import G_VLEN
from ._jobs import job_counters, next_job
from ._microkernel import VECTOR_BYTES, _fma_types, _splat, masked_vectors, vector_loop


@njit(**HELPER)
def axis_stencils(basep, tk, src, fsize, hi_max, st, ok, ilo, ihi, wlo, whi, zero, one):
    """One axis of the sample points of a tile: ``v = basep + tk + src`` per position.

    Per position writes the flat offsets along this axis (times the stride
    ``st``) of the lower and upper interpolation corners, clamped into the
    input, and their weights (zero for a corner outside); clears ``ok`` where
    ``v`` is outside ``(-1, size)`` or not finite. Vectorised over positions.

    Axes of at most 2**24 samples (whole numbers exact in float32) compare and convert the
    corners as floats, through int32 (AVX2 converts floats to int32 in vectors, to int64
    only one at a time): 2.56 -> 1.79 ns a point in L1, the same results (NOTES 118).
    """
    if hi_max < 1 << 24:
        fh = fsize - one  # hi_max as a float (exact)
        for p in range(src.shape[0]):
            v = basep[p] + tk + src[p]
            inside = (v > -one) & (v < fsize)  # also false for NaN
            vs = v if inside else zero
            f = np.floor(vs)  # in [-1, size - 1]
            fr = vs - f
            lo_in = f >= zero
            hi_in = f < fh
            ok[p] = ok[p] & inside
            wlo[p] = one - fr if lo_in else zero
            whi[p] = fr if hi_in else zero
            ilo[p] = np.int64(np.int32(f if lo_in else f + one)) * st
            ihi[p] = np.int64(np.int32(f + one if hi_in else f)) * st
        return
    for p in range(src.shape[0]):
        v = basep[p] + tk + src[p]
        inside = v > -one and v < fsize  # also false for NaN
        vs = v if inside else zero
        f = np.floor(vs)
        low = int(f)  # in [-1, size - 1]
        fr = vs - f
        lo_in = low >= 0
        hi_in = low < hi_max
        ok[p] = ok[p] and inside
        wlo[p] = one - fr if lo_in else zero
        whi[p] = fr if hi_in else zero
        ilo[p] = (low if lo_in else low + 1) * st
        ihi[p] = (low + 1 if hi_in else low) * st


@njit(**HELPER)
def corner_stencils(k, d, ilo, ihi, wlo, whi, scale, ok, zrow, coff, cwt, zero):
    """Corner ``k`` (bit ``d-1-a`` picks axis ``a``'s upper corner) of every point of a tile.

    ``coff[p]``: its flat input offset, ``cwt[p]``: its weight times
    ``scale[p]``; a point that is not ``ok`` reads the zero row ``zrow`` with
    weight zero, whatever its scale.
    """
    n = coff.shape[0]
    if d == 2 or d == 3:  # one pass over the points (five for 3-D below: NOTES 111)
        u0 = (k >> (d - 1)) & 1
        u1 = (k >> (d - 2)) & 1
        i0, w0 = (ihi[0], whi[0]) if u0 else (ilo[0], wlo[0])
        i1, w1 = (ihi[1], whi[1]) if u1 else (ilo[1], wlo[1])
        if d == 2:
            for p in range(n):
                coff[p] = i0[p] + i1[p] if ok[p] else zrow
                cwt[p] = scale[p] * w0[p] * w1[p] if ok[p] else zero
            return
        i2, w2 = (ihi[2], whi[2]) if k & 1 else (ilo[2], wlo[2])
        for p in range(n):
            coff[p] = i0[p] + i1[p] + i2[p] if ok[p] else zrow
            cwt[p] = scale[p] * w0[p] * w1[p] * w2[p] if ok[p] else zero
        return
    for p in range(n):
        coff[p] = 0
        cwt[p] = scale[p]
    for a in range(d):
        up = (k >> (d - 1 - a)) & 1
        iv = ihi[a] if up else ilo[a]
        wv = whi[a] if up else wlo[a]
        for p in range(n):
            coff[p] += iv[p]
            cwt[p] *= wv[p]
    for p in range(n):
        if not ok[p]:
            coff[p] = zrow
            cwt[p] = zero


@njit(**HELPER)
def blend(row, j, n, xv, nc, c0, coff, cwt, p):
    """``row[j + c] = sum_k cwt[k, p] * xv[coff[k, p]*nc + c0 + c]`` for ``c < n``.

    Four corners per sweep. Unsigned indices rather than slices: a slice per
    corner costs more than the sweep itself, and the loops still vectorise.
    """
    ncorner = coff.shape[0]
    n = np.uint64(n)
    j = np.uint64(j)
    o0 = np.uint64(coff[0, p] * nc + c0)
    o1 = np.uint64(coff[1, p] * nc + c0)
    wa = cwt[0, p]
    wb = cwt[1, p]
    if ncorner == 2:  # 1-D
        for c in range(n):
            row[j + c] = wa * xv[o0 + c] + wb * xv[o1 + c]
        return
    o2 = np.uint64(coff[2, p] * nc + c0)
    o3 = np.uint64(coff[3, p] * nc + c0)
    we = cwt[2, p]
    wf = cwt[3, p]
    for c in range(n):
        row[j + c] = wa * xv[o0 + c] + wb * xv[o1 + c] + we * xv[o2 + c] + wf * xv[o3 + c]
    for k in range(4, ncorner, 4):  # 3-D and up
        o0 = np.uint64(coff[k, p] * nc + c0)
        o1 = np.uint64(coff[k + 1, p] * nc + c0)
        o2 = np.uint64(coff[k + 2, p] * nc + c0)
        o3 = np.uint64(coff[k + 3, p] * nc + c0)
        wa = cwt[k, p]
        wb = cwt[k + 1, p]
        we = cwt[k + 2, p]
        wf = cwt[k + 3, p]
        for c in range(n):
            row[j + c] += wa * xv[o0 + c] + wb * xv[o1 + c] + we * xv[o2 + c] + wf * xv[o3 + c]


@intrinsic
def blend_vectors(typingctx, row, j, xv, nc, c0, coff, cwt, p, n, ncorner):
    """:func:`blend` in explicit vectors, for ``n`` a whole number of vectors: ``row[j + c] =
    sum_k cwt[k, p] * xv[coff[k, p]*nc + c0 + c]``, ``k < ncorner`` (a literal: 2, 4 or 8).

    LLVM's loop vectoriser runs the loops of :func:`blend` 32 channels at a time (8 lanes,
    interleaved 4 times), so the 16 channels a group of a 3-D layer often has went to its
    scalar remainder (NOTES 110). ``coff`` and ``cwt`` are C-contiguous ``(ncorner, tile)``.
    """
    if not isinstance(ncorner, types.IntegerLiteral):
        return None
    nk = ncorner.literal_value
    sig = types.none(row, j, xv, nc, c0, coff, cwt, p, n, ncorner)

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        j_v, nc_v, c0_v, p_v, n_v = (context.cast(builder, args[i], sig.args[i], types.int64)
                                     for i in (1, 3, 4, 7, 8))
        fty, size, vl, vty, _, fmuladd = _fma_types(context, builder, sig.args[0].dtype)
        mv = masked_vectors(context, builder, sig.args[0].dtype)

        def arr(i):
            return context.make_array(sig.args[i])(context, builder, args[i])

        rowp = builder.gep(arr(0).data, [j_v])
        xvp = arr(2).data
        coffa, cwta = arr(5), arr(6)
        ldc = builder.extract_value(coffa.shape, 1)
        ldw = builder.extract_value(cwta.shape, 1)
        bases, wts = [], []
        for k in range(nk):
            kc = ir.Constant(i64, k)
            off = builder.load(builder.gep(coffa.data, [builder.add(builder.mul(kc, ldc), p_v)]))
            bases.append(builder.gep(xvp, [builder.add(builder.mul(off, nc_v), c0_v)]))
            wts.append(_splat(builder, builder.load(builder.gep(
                cwta.data, [builder.add(builder.mul(kc, ldw), p_v)])), vty))

        def body(jv, ok):
            acc = builder.fmul(wts[0], mv.read(builder, mv.pointer(builder, bases[0], jv), ok))
            for k in range(1, nk):
                x = mv.read(builder, mv.pointer(builder, bases[k], jv), ok)
                acc = builder.call(fmuladd, [wts[k], x, acc])
            mv.write(builder, acc, mv.pointer(builder, rowp, jv), ok)

        vector_loop(builder, mv, n_v, body, "blend")
        return context.get_dummy_value()

    return sig, codegen


@njit(**HELPER)
def stencil_scratch(nw, tile, d, dtype):
    """Per-worker scratch of the stencils: ``(int64 rows, float rows, ok flags)``."""
    ncorner = 1 << d
    nint = (2 * d + ncorner) * tile + d  # ilo, ihi, coff, output coordinates
    nflt = (3 * d + ncorner + 1) * tile  # basep, wlo, whi, cwt, unit scale
    return (np.empty((nw, padded(nint)), dtype=np.int64), np.empty((nw, padded(nflt)), dtype=dtype),
            np.empty((nw, padded(tile)), dtype=np.bool_))


@njit(**HELPER)
def stencil_views(iw, fw, d, tile, one):
    """One worker's scratch as ``(ilo, ihi, coff, o, basep, wlo, whi, cwt, unit)``."""
    ncorner = 1 << d
    nint = (2 * d + ncorner) * tile
    nflt = (3 * d + ncorner + 1) * tile
    unit = fw[(3 * d + ncorner) * tile:nflt]
    for p in range(tile):
        unit[p] = one
    return (iw[:d * tile].reshape((d, tile)), iw[d * tile:2 * d * tile].reshape((d, tile)),
            iw[2 * d * tile:nint].reshape((ncorner, tile)), iw[nint:nint + d],
            fw[:d * tile].reshape((d, tile)), fw[d * tile:2 * d * tile].reshape((d, tile)),
            fw[2 * d * tile:3 * d * tile].reshape((d, tile)),
            fw[3 * d * tile:(3 * d + ncorner) * tile].reshape((ncorner, tile)), unit)


@njit(**HELPER)
def window_starts(outlen, ostart, p0, npos, o, basep):
    """``basep[a, p]``: input coordinate on axis ``a`` of output ``p0 + p``'s window start."""
    d = outlen.shape[0]
    q = p0
    for a in range(d - 1, -1, -1):
        o[a] = q % outlen[a]
        q //= outlen[a]
    for p in range(npos):
        for a in range(d):
            basep[a, p] = ostart[a, o[a]]
        next_row(outlen, o, d)


@njit(**HELPER)
def deform_tile(xv, nc, lin, offset, mask, n, p0, npos, c0, cw, size, fsize, instr, tapk, ok,
                st, colT, zero, one):
    """``colT[p, t*cw + c - c0]``: input channel ``c`` (``c0 <= c < c0 + cw``) sampled at
    tap ``t`` of output ``p0 + p``, times its mask.

    ``xv`` is the image's channels-last plane plus a zero row; ``st`` the
    worker's :func:`stencil_views`, with the window starts in place.
    """
    ilo, ihi, coff, _, basep, wlo, whi, cwt, unit = st
    ntap, d = tapk.shape
    ncorner = 1 << d
    vl = VECTOR_BYTES // xv.itemsize
    cpo = nc // (offset.shape[1] // (ntap * d))  # channels per offset group
    has_mask = mask.shape[0] > 0
    for h in range(c0 // cpo, (c0 + cw - 1) // cpo + 1):  # the offset groups that meet [c0, c0+cw)
        c_lo = max(h * cpo, c0)
        c_hi = min((h + 1) * cpo, c0 + cw)
        for t in range(ntap):
            ch = (h * ntap + t) * d
            for p in range(npos):
                ok[p] = True
            for a in range(d):
                axis_stencils(basep[a, :npos], tapk[t, a], offset[n, ch + a, p0:p0 + npos],
                              fsize[a], size[a] - 1, instr[a], ok, ilo[a], ihi[a], wlo[a], whi[a],
                              zero, one)
            scale = mask[n, h * ntap + t, p0:p0 + npos] if has_mask else unit
            for k in range(ncorner):
                corner_stencils(k, d, ilo, ihi, wlo, whi, scale[:npos], ok, lin,
                                coff[k, :npos], cwt[k, :npos], zero)
            j = t * cw + c_lo - c0
            nb = c_hi - c_lo
            if nb % vl == 0 and ncorner == 8:  # whole vectors (NOTES 110)
                for p in range(npos):
                    blend_vectors(colT[p], j, xv, nc, c_lo, coff, cwt, p, nb, 8)
            elif nb % vl == 0 and ncorner == 4:
                for p in range(npos):
                    blend_vectors(colT[p], j, xv, nc, c_lo, coff, cwt, p, nb, 4)
            else:
                for p in range(npos):
                    blend(colT[p], j, nb, xv, nc, c_lo, coff, cwt, p)


@njit(**HELPER)
def cl_planes(x, n0, nb, geom, maps, vrows, xv_all, zero):
    """Channels-last planes of images ``[n0, n0 + nb)``, each followed by a row of zeros
    (parallel over rows: call it outside any ``prange``)."""
    nc, lin = x.shape[1], x.shape[2]
    vl = geom[G_VLEN, geom.shape[1] - 1]
    nvrow = lin // vl
    for r in prange(nb * nvrow):
        vr = r % nvrow
        plane = xv_all[r // nvrow]
        virtual_cols_cl(x[n0 + r // nvrow], vrows[vr], geom, maps, ZERO, nc, ZERO, vl,
                        plane[vr * vl * nc:(vr + 1) * vl * nc], zero)
        if vr == 0:
            for c in range(lin * nc, (lin + 1) * nc):
                plane[c] = zero


@njit(**PARALLEL)
def window_deform(x, offset, mask, w, wp, bp, bias, out, groups, geom, maps, outlen, size, instr,
                  ostart, tapk, act, tile, chunk, zero, one, workers):
    """Deformable convolution (see the module docstring).

    x (N, C_in, L_in); offset (N, G_o * T * d, L_out) holding the ``d``
    coordinates of each (offset group, tap); mask (N, G_o * T, L_out), or
    empty for none; w (C_out, T * C_in/groups), tap-major, and ``wp``, ``bp``
    weights and bias as panels or empty (see :func:`~numbaconv._core.tile_gemm`);
    out (N, C_out, L_out), written whole. ``geom``/``maps``: the identity window's tables
    (channels-last planes); ``outlen``/``size``/``instr``: per-axis output
    sizes, input sizes and flat input strides; ``ostart[a, o]`` the input
    coordinate of output ``o``'s window start on axis ``a``; ``tapk[t, a]``
    tap ``t``'s offset in the window.
    """
    nimg, nc, lin = x.shape
    cout, kk = w.shape
    m = cout // groups
    cg = nc // groups
    d = tapk.shape[1]
    lout = out.shape[2]
    ntile = (lout + tile - 1) // tile
    nw = max(min(workers, nimg * groups * ntile), 1)
    vrows = virtual_row_table(geom, maps)
    xv_all = np.empty((min(chunk, nimg), padded((lin + 1) * nc)), dtype=x.dtype)
    colT_all = worker_rows(nw, tile_rows(tile) * kk, x.dtype, True)
    int_all, flt_all, ok_all = stencil_scratch(nw, tile, d, x.dtype)
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
                tile_gemm(w, wp, bp, g, m, colT_all[wk], npos, out, n0 + nn, p0, bias, act,
                          zero)
