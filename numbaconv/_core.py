"""The compiled half of the sliding-window core: gather -> reduce -> epilogue.

Arrays reach these kernels in one canonical form, whatever the rank: the
input ``x`` as ``(N, C, L_in)`` and the output as ``(N, C_out, L_out)`` with
the spatial axes flattened, and the window described by the ``int64`` tables
of :mod:`numbaconv._geometry`. So each kernel is compiled once per dtype
(float32, float64) and serves 1-D, 2-D, 3-D and 7-D alike.

**Gather.** Both schedules first materialise the *virtual plane* the window
slides over -- the padded input, built through the per-axis padding maps, so
every padding mode is the same code -- for a few images or one channel at a
time, never for the whole batch. In the virtual plane every window is the
same pattern of flat offsets (``voff``), with no bounds checks.

* :func:`window_gemm` -- *tile GEMM*. The virtual planes are channels-last, so
  each tap of a window is a contiguous run of channels. A job is one image,
  one group and one tile of output positions: the gather copies the tile's
  windows into the rows of a per-worker matrix ``colT[p, t*C_g + c]``, the
  reduce multiplies it by the weights (``(C_out, T*C_g)``, tap-major, packed
  into panels) with the explicit-vector micro-kernel of
  :mod:`numbaconv._microkernel` (:func:`tile_gemm`), and the epilogue adds the
  bias, applies the activation and writes the output. Given a depthwise
  filter bank ``dw``, the gather instead computes the tile's depthwise
  convolution into ``colT``: that is the fused depthwise-separable
  convolution.
* :func:`window_direct` -- *direct*. A job is one output channel of one image,
  with the virtual plane of one input channel at a time; each tap adds the
  weighted, shifted plane to an accumulator in one long contiguous loop. It
  suits few output channels per group (depthwise), where a GEMM would have
  nothing to block over.

Rules followed (``shared/GUIDE.md`` section 3): one ``prange`` per parallel
step over worker slots (``workers``: ``numba.get_num_threads()`` of the
caller), each worker with a contiguous block of jobs, its own scratch and
disjoint output tiles; small helpers are inlined ``@njit``, larger ones
(a row, a tile) compiled on their own (``_config.CALLED``); float32 stays
float32 in the hot loops.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._activations import activate_run
from ._config import CALLED, HELPER, PARALLEL, plain_calls
from ._geometry import (
    G_DIL,
    G_ID0,
    G_IDN,
    G_IDSRC,
    G_INSTR,
    G_K,
    G_MAPOFF,
    G_OUT,
    G_STRIDE,
    G_VLEN,
    G_VSTR,
    Tables,
)
from ._jobs import job_counters, next_job
from ._microkernel import (
    MR,
    VECTOR_BYTES,
    add_row,
    copy_row,
    panel_block1,
    panel_block2,
    transpose_block,
)

#: per-worker scratch rows are padded by this many elements (128 bytes or more)
#: and rounded up to it, so that two workers never write to one cache line
_PAD = 32

#: 0 as an ``int64`` value rather than a literal: a literal argument would give the callee
#: a compiled specialisation of its own (one more compile)
ZERO = np.int64(0)


@njit(**HELPER)
def padded(n):
    """``n`` rounded up to a multiple of ``_PAD``, plus ``_PAD`` (per-worker row length)."""
    return (n + 2 * _PAD - 1) // _PAD * _PAD


@plain_calls
@njit(**CALLED)
def worker_rows(nw, n, dtype, zero):
    """``(nw, padded(n))`` per-worker scratch of ``dtype``, every row 64-byte aligned.

    Numba's arrays are only 32-byte aligned, so half the time every full-width
    (64-byte) vector load from a scratch row would straddle two cache lines and
    count twice (separable (8,128,56,56) -> 128: 3.16 against 2.88 ms, NOTES 70).
    The rows are a whole number of 128 bytes, so aligning the first aligns all.
    Zero-filled when ``zero``. Compiled on its own, not inlined into each kernel (the
    convolution family's cold compile: 31.1 -> 29.3-30.0 s), once a dtype: callers pass
    ``x.dtype``, not the array, and their constants as plain values (:func:`plain_calls`).
    """
    ld = padded(n)
    buf = np.empty(nw * ld + 64, dtype=dtype)  # room to align to 64 bytes at any itemsize
    off = np.int64((64 - buf.ctypes.data % 64) % 64) // buf.itemsize
    if zero:
        buf[:] = 0
    return buf[off:off + nw * ld].reshape((nw, ld))


# ---------------------------------------------------------------------------
# gather: virtual planes and windows
# ---------------------------------------------------------------------------


@njit(**HELPER)
def next_row(lens, row, a0):
    """Advance the coordinates ``row`` over the axes before ``a0`` (row-major, odometer)."""
    a = a0 - 1
    while a >= 0:
        row[a] += 1
        if row[a] < lens[a]:
            return
        row[a] = 0
        a -= 1


@njit(**HELPER)
def row_source(geom, maps, row):
    """Flat input offset of the virtual row with outer coordinates ``row``; -1: zeros."""
    src = 0
    for a in range(geom.shape[1] - 1):
        m = maps[geom[G_MAPOFF, a] + row[a]]
        if m < 0:
            return -1
        src += m * geom[G_INSTR, a]
    return src


@njit(**CALLED)
def virtual_row_table(geom, maps):
    """Per row of the virtual plane (last axis excluded): its flat input offset, -1 for zeros."""
    last = geom.shape[1] - 1
    nrow = geom[G_VSTR, 0] * geom[G_VLEN, 0] // geom[G_VLEN, last]
    table = np.empty(nrow, dtype=np.int64)
    row = np.zeros(last + 1, dtype=np.int64)
    for r in range(nrow):
        table[r] = row_source(geom, maps, row)
        next_row(geom[G_VLEN], row, last)
    return table


@njit(**CALLED)
def output_row_table(geom):
    """Per output row (last axis excluded): the virtual offset of its first window."""
    last = geom.shape[1] - 1
    nrow = 1
    for a in range(last):
        nrow *= geom[G_OUT, a]
    table = np.empty(nrow, dtype=np.int64)
    row = np.zeros(last + 1, dtype=np.int64)
    for r in range(nrow):
        table[r] = row_origin(geom, row)
        next_row(geom[G_OUT], row, last)
    return table


@njit(**HELPER)
def row_origin(geom, row):
    """Virtual offset of the first window of the output row with outer coordinates ``row``."""
    vo = 0
    for a in range(geom.shape[1] - 1):
        vo += row[a] * geom[G_STRIDE, a] * geom[G_VSTR, a]
    return vo


@njit(**CALLED)
def virtual_cols_cl(xn, rowsrc, geom, maps, c0, ncx, j_lo, j_hi, dst, zero):
    """Channels-last columns ``[j_lo, j_hi)`` of one virtual row, channels ``[c0, c0 + ncx)``.

    ``xn`` is one image ``(C, L_in)``, ``rowsrc`` the row's entry of
    :func:`virtual_row_table`; writes ``dst[(j - j_lo)*ncx + c]``. The run that
    is the input itself is transposed in square blocks in registers
    (:func:`numbaconv._microkernel.transpose_block`) when ``ncx`` is a
    multiple of their size, else in chunks (contiguous reads, writes that stay
    in L1); the padding goes through the map.
    """
    last = geom.shape[1] - 1
    ml = geom[G_MAPOFF, last]
    id0 = geom[G_ID0, last]
    idn = geom[G_IDN, last]
    idsrc = geom[G_IDSRC, last]
    if rowsrc < 0:
        for j in range((j_hi - j_lo) * ncx):
            dst[j] = zero
        return
    a0 = min(max(j_lo, id0), j_hi)  # the input run within [j_lo, j_hi): [a0, a1)
    a1 = max(min(j_hi, id0 + idn), a0)
    for k in range((a0 - j_lo) + (j_hi - a1)):  # the padding, through the map
        j = j_lo + k if j_lo + k < a0 else a1 + (k - (a0 - j_lo))
        m = maps[ml + j]
        out = dst[(j - j_lo) * ncx:(j - j_lo + 1) * ncx]
        if m < 0:
            for c in range(ncx):
                out[c] = zero
        else:
            src = xn[c0:c0 + ncx, rowsrc + m]
            for c in range(ncx):
                out[c] = src[c]
    nb = VECTOR_BYTES // xn.itemsize
    if ncx % nb == 0 and a1 - a0 >= nb:  # square blocks transposed in registers
        s0 = rowsrc + idsrc - id0
        lin = xn.shape[1]
        for c in range(0, ncx, nb):
            j = a0
            while j < a1:
                j = min(j, a1 - nb)  # the last block overlaps the one before
                transpose_block(xn, (c0 + c) * lin + s0 + j, lin, dst, (j - j_lo) * ncx + c,
                                ncx)
                j += nb
        return
    for j0 in range(a0, a1, 128):
        nj = min(128, a1 - j0)
        blk = dst[(j0 - j_lo) * ncx:(j0 - j_lo + nj) * ncx]
        s0 = rowsrc + idsrc + j0 - id0
        for c in range(ncx):
            src = xn[c0 + c, s0:s0 + nj]
            for j in range(nj):
                blk[j * ncx + c] = src[j]


@njit(**CALLED)
def virtual_plane(xc, geom, maps, vrows, vp, zero):
    """Virtual plane of one input channel ``xc`` (flat), written to ``vp``.

    ``vrows`` is :func:`virtual_row_table`.
    """
    last = geom.shape[1] - 1
    vl = geom[G_VLEN, last]
    ml = geom[G_MAPOFF, last]
    id0 = geom[G_ID0, last]
    idn = geom[G_IDN, last]
    for r in range(vrows.shape[0]):
        rowsrc = vrows[r]
        dst = vp[r * vl:(r + 1) * vl]
        if rowsrc < 0:
            for j in range(vl):
                dst[j] = zero
            continue
        for j in range(id0):
            m = maps[ml + j]
            dst[j] = xc[rowsrc + m] if m >= 0 else zero
        for j in range(id0 + idn, vl):
            m = maps[ml + j]
            dst[j] = xc[rowsrc + m] if m >= 0 else zero
        copy_row(xc, rowsrc + geom[G_IDSRC, last], vp, r * vl + id0, idn)


@njit(**HELPER)
def next_position(geom, o, vo):
    """Advance output coordinates ``o`` by one (row-major); return the new virtual origin."""
    a = geom.shape[1] - 1
    while a >= 0:
        step = geom[G_STRIDE, a] * geom[G_VSTR, a]
        if o[a] + 1 < geom[G_OUT, a]:
            o[a] += 1
            return vo + step
        vo -= o[a] * step
        o[a] = 0
        a -= 1
    return vo


@njit(**HELPER)
def first_position(geom, q, o):
    """Set ``o`` to the coordinates of flat output index ``q``; return its virtual origin."""
    vo = 0
    for a in range(geom.shape[1] - 1, -1, -1):
        o[a] = q % geom[G_OUT, a]
        q //= geom[G_OUT, a]
        vo += o[a] * geom[G_STRIDE, a] * geom[G_VSTR, a]
    return vo


@njit(**CALLED)
def gather_windows(xv, vbase, nc, c0, cg, run, geom, voff, p0, npos, colT, o):
    """``colT[p, t*cg + c]`` = channel ``c0 + c`` at tap ``t`` of the window of output ``p0 + p``.

    ``xv`` is a channels-last virtual plane with ``nc`` channels, holding the
    virtual samples from offset ``vbase`` on; ``run`` taps in a row are adjacent (copied as one
    contiguous run when ``cg == nc``).
    """
    ntap = voff.shape[0]
    width = run * cg
    vo = first_position(geom, p0, o)
    for p in range(npos):
        row = colT[p]
        for t in range(0, ntap, run):
            # sliced views keep the indices provably non-negative: a plain copy loop
            src = xv[(vo - vbase + voff[t]) * nc + c0:]
            dst = row[t * cg:t * cg + width]
            for c in range(width):
                dst[c] = src[c]
        vo = next_position(geom, o, vo)


@njit(**CALLED)
def gather_depthwise(xv, vbase, nc, dwT, mult, geom, voff, p0, npos, colT, o, zero):
    """``colT[p, j]`` = depthwise convolution of the window of output ``p0 + p``.

    Filter ``dwT[:, j]`` (tap-major) on input channel ``j // mult`` of the
    channels-last virtual plane ``xv``.
    """
    ntap = voff.shape[0]
    cdw = dwT.shape[1]
    vo = first_position(geom, p0, o)
    for p in range(npos):
        row = colT[p]
        if ntap == 9 and mult == 1:  # 3x3: the nine taps summed in registers, one store
            b = (vo - vbase) * nc
            s0 = xv[b + voff[0] * nc:]
            s1 = xv[b + voff[1] * nc:]
            s2 = xv[b + voff[2] * nc:]
            s3 = xv[b + voff[3] * nc:]
            s4 = xv[b + voff[4] * nc:]
            s5 = xv[b + voff[5] * nc:]
            s6 = xv[b + voff[6] * nc:]
            s7 = xv[b + voff[7] * nc:]
            s8 = xv[b + voff[8] * nc:]
            w0, w1, w2, w3, w4 = dwT[0], dwT[1], dwT[2], dwT[3], dwT[4]
            w5, w6, w7, w8 = dwT[5], dwT[6], dwT[7], dwT[8]
            for j in range(cdw):
                row[j] = (w0[j] * s0[j] + w1[j] * s1[j] + w2[j] * s2[j] + w3[j] * s3[j]
                          + w4[j] * s4[j] + w5[j] * s5[j] + w6[j] * s6[j] + w7[j] * s7[j]
                          + w8[j] * s8[j])
            vo = next_position(geom, o, vo)
            continue
        for j in range(cdw):
            row[j] = zero
        for t in range(ntap):
            src = xv[(vo - vbase + voff[t]) * nc:]
            wt = dwT[t]
            if mult == 1:
                for j in range(cdw):
                    row[j] += wt[j] * src[j]
            else:
                for j in range(cdw):
                    row[j] += wt[j] * src[j // mult]
        vo = next_position(geom, o, vo)


# ---------------------------------------------------------------------------
# reduce + epilogue
# ---------------------------------------------------------------------------


@njit(**HELPER)
def dot_rows(w, r, nr, xa, zero):
    """``sum_k w[r + i, k] * xa[k]`` for the ``nr <= 4`` rows from ``r``, as a 4-tuple."""
    kk = xa.shape[0]
    s0 = zero
    s1 = zero
    s2 = zero
    s3 = zero
    w0 = w[r]
    if nr == 4:
        w1 = w[r + 1]
        w2 = w[r + 2]
        w3 = w[r + 3]
        for k in range(kk):
            a = xa[k]
            s0 += w0[k] * a
            s1 += w1[k] * a
            s2 += w2[k] * a
            s3 += w3[k] * a
    else:
        for k in range(kk):
            s0 += w0[k] * xa[k]
    return s0, s1, s2, s3


@njit(**HELPER)
def gemm_epilogue(w, r0, m, colT, npos, out, n, p0, bias, act, zero):
    """``out[n, r0+i, p0+p] = act(bias[r0+i] + sum_k w[r0+i, k] * colT[p, k])``.

    Blocked 4 rows x 4 positions with 16 scalar accumulators, so that every
    loaded element feeds four FMAs and the k loop vectorises; the leftovers go
    4 x 1 and 1 x 1.
    """
    kk = w.shape[1]
    i = 0
    while i < m:
        nr = 4 if i + 4 <= m else 1
        r = r0 + i
        p = 0
        if nr == 4:
            w0 = w[r]
            w1 = w[r + 1]
            w2 = w[r + 2]
            w3 = w[r + 3]
            b0 = bias[r]
            b1 = bias[r + 1]
            b2 = bias[r + 2]
            b3 = bias[r + 3]
            while p + 4 <= npos:
                xa = colT[p]
                xb = colT[p + 1]
                xc = colT[p + 2]
                xd = colT[p + 3]
                s00 = zero
                s01 = zero
                s02 = zero
                s03 = zero
                s10 = zero
                s11 = zero
                s12 = zero
                s13 = zero
                s20 = zero
                s21 = zero
                s22 = zero
                s23 = zero
                s30 = zero
                s31 = zero
                s32 = zero
                s33 = zero
                for k in range(kk):
                    a = xa[k]
                    b = xb[k]
                    c = xc[k]
                    d = xd[k]
                    u = w0[k]
                    s00 += u * a
                    s01 += u * b
                    s02 += u * c
                    s03 += u * d
                    u = w1[k]
                    s10 += u * a
                    s11 += u * b
                    s12 += u * c
                    s13 += u * d
                    u = w2[k]
                    s20 += u * a
                    s21 += u * b
                    s22 += u * c
                    s23 += u * d
                    u = w3[k]
                    s30 += u * a
                    s31 += u * b
                    s32 += u * c
                    s33 += u * d
                q = p0 + p
                o0 = out[n, r]
                o1 = out[n, r + 1]
                o2 = out[n, r + 2]
                o3 = out[n, r + 3]
                o0[q] = s00 + b0
                o0[q + 1] = s01 + b0
                o0[q + 2] = s02 + b0
                o0[q + 3] = s03 + b0
                o1[q] = s10 + b1
                o1[q + 1] = s11 + b1
                o1[q + 2] = s12 + b1
                o1[q + 3] = s13 + b1
                o2[q] = s20 + b2
                o2[q + 1] = s21 + b2
                o2[q + 2] = s22 + b2
                o2[q + 3] = s23 + b2
                o3[q] = s30 + b3
                o3[q + 1] = s31 + b3
                o3[q + 2] = s32 + b3
                o3[q + 3] = s33 + b3
                p += 4
        while p < npos:
            s = dot_rows(w, r, nr, colT[p], zero)
            for j in range(nr):
                out[n, r + j, p0 + p] = s[j] + bias[r + j]
            p += 1
        i += nr
    if act != 0:  # on the tile just written (still in cache)
        for r in range(r0, r0 + m):
            activate_run(out[n, r, p0:p0 + npos], act)


@njit(**HELPER)
def panel_gemm(wp, bp, g, m, a, kk, npos, out, n, p0, act):
    """``out[n, g*m + r, p0+p] = act(bias[g*m + r] + sum_k w[g*m + r, k] * a[p*kk + k])``.

    The product of :func:`gemm_epilogue` by the explicit-vector micro-kernel:
    ``MR`` positions at a time against each of group ``g``'s weight and bias
    panels ``wp``, ``bp`` (:func:`numbaconv._microkernel.pack_panels`), which
    writes the sums plus bias; then the activation in place. ``a`` needs whole
    blocks: rows up to ``npos`` rounded up to ``MR``.
    """
    nr = wp.shape[2]
    npan = (m + nr - 1) // nr
    wide = nr * a.itemsize > VECTOR_BYTES
    lout = out.shape[2]
    for pb in range(0, npos, MR):
        nrow = min(MR, npos - pb)
        for pl in range(npan):
            q = g * npan + pl
            o_off = (n * out.shape[1] + g * m + pl * nr) * lout + p0 + pb
            ncol = min(nr, m - pl * nr)
            if wide:
                panel_block2(a, pb * kk, kk, wp[q], kk, bp[q], out, o_off, lout, nrow, ncol)
            else:
                panel_block1(a, pb * kk, kk, wp[q], kk, bp[q], out, o_off, lout, nrow, ncol)
    if act != 0:
        for r in range(g * m, (g + 1) * m):
            activate_run(out[n, r, p0:p0 + npos], act)


@njit(**CALLED)
def tile_gemm(w, wp, bp, g, m, colT, npos, out, n, p0, bias, act, zero):
    """The reduce + epilogue of one tile: :func:`panel_gemm` when ``wp`` has panels.

    ``colT`` is the worker's flat tile ``(rows, kk)`` with ``kk = w.shape[1]``
    and rows a multiple of ``MR``; without panels (few rows per group),
    :func:`gemm_epilogue` on ``w``.
    """
    kk = w.shape[1]
    if wp.shape[0] > 0:
        panel_gemm(wp, bp, g, m, colT, kk, npos, out, n, p0, act)
    else:
        gemm_epilogue(w, g * m, m, colT[:npos * kk].reshape((npos, kk)), npos, out, n, p0,
                      bias, act, zero)


@njit(**HELPER)
def tile_rows(tile):
    """Rows of a worker's tile: ``tile`` rounded up to whole micro-kernel blocks."""
    return (tile + MR - 1) // MR * MR


# ---------------------------------------------------------------------------
# parallel kernels
# ---------------------------------------------------------------------------


def gemm_segments(x3: np.ndarray, tab: Tables, tile: int, nchan: int,
                  workers: int) -> np.ndarray | None:
    """In 1-D, :func:`window_gemm`'s segments: a row a worker for the ``nchan`` channels of the
    virtual signal a tile of ``tile`` outputs reads; ``None`` beyond 1-D."""
    if tab.geom.shape[1] != 1:
        return None
    seglen = (tile - 1) * int(tab.geom[G_STRIDE, 0]) + int(tab.voff[-1]) + 1
    return worker_rows(max(workers, 1), seglen * nchan, x3.dtype, False)


@njit(**PARALLEL)
def window_gemm(x, w, wp, bp, bias, out, groups, geom, maps, voff, dwT, mult, act, tile, chunk,
                segs, zero, workers):
    """Tile-GEMM convolution (see the module docstring).

    x (N, C_in, L_in); w (C_out, T * C_in/groups), tap-major, with ``dwT``
    None, or for the separable form w (C_out, C_dw) with ``dwT`` (T, C_dw) and
    ``groups == 1``: each form is its own specialisation, so the plain one
    never compiles the depthwise gather (2.6 s of cold compile; NOTES 67);
    ``wp``, ``bp`` weights and bias as panels, or empty (see :func:`tile_gemm`;
    with panels only the shape of ``w`` is read);
    out (N, C_out, L_out) is written whole. ``chunk`` images have their
    virtual planes built at a time; in 1-D, ``segs`` (:func:`gemm_segments`) instead holds
    the segment each job builds of the signal, and beyond 1-D it is None: each form is its
    own specialisation too, so neither compiles the other's code (NOTES 126).
    """
    nimg, nc, _ = x.shape
    cout, kk = w.shape
    m = cout // groups
    cg = nc // groups
    last = geom.shape[1] - 1
    d = last + 1
    vl = geom[G_VLEN, last]
    lv = geom[G_VSTR, 0] * geom[G_VLEN, 0]
    nvrow = lv // vl
    lout = out.shape[2]
    ntile = (lout + tile - 1) // tile
    nw = max(min(workers, nimg * groups * ntile), 1)
    vrows = virtual_row_table(geom, maps)
    # 1-D: each job builds just the virtual segment its tile reads (it stays in
    # L2), instead of whole (long) planes per image
    reach = voff[voff.shape[0] - 1]
    segc = cg if dwT is None else nc
    if segs is not None:
        chunk = nimg
    xv_all = np.empty((min(chunk, nimg), padded(lv * nc)) if segs is None else (1, 1),
                      dtype=x.dtype)
    colT_all = worker_rows(nw, tile_rows(tile) * kk, x.dtype, True)
    o_all = np.zeros((nw, padded(d)), dtype=np.int64)
    for n0 in range(0, nimg, chunk):
        nb = min(chunk, nimg - n0)
        if segs is None:
            for r in prange(nb * nvrow):
                vr = r % nvrow
                virtual_cols_cl(x[n0 + r // nvrow], vrows[vr], geom, maps, ZERO, nc, ZERO, vl,
                                xv_all[r // nvrow, vr * vl * nc:(vr + 1) * vl * nc], zero)
        njobs = nb * groups * ntile
        counts = job_counters(nw)
        for wk in prange(nw):
            colT = colT_all[wk, :tile * kk].reshape((tile, kk))
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
                if segs is None:
                    plane = xv_all[nn]
                    vbase, ncp, cbase = 0, nc, g * cg
                else:
                    v0 = p0 * geom[G_STRIDE, 0]
                    v1 = (p0 + npos - 1) * geom[G_STRIDE, 0] + reach + 1
                    c0 = g * cg if dwT is None else 0
                    plane = segs[wk]
                    virtual_cols_cl(x[n0 + nn], vrows[0], geom, maps, c0, segc, v0, v1, plane,
                                    zero)
                    vbase, ncp, cbase = v0, segc, 0
                if dwT is None:  # pruned at compile time: a plain form never types the other
                    run = geom[G_K, last] if cg == ncp and geom[G_DIL, last] == 1 else 1
                    gather_windows(plane, vbase, ncp, cbase, cg, run, geom, voff, p0, npos, colT,
                                   o)
                else:
                    gather_depthwise(plane, vbase, ncp, dwT, mult, geom, voff, p0, npos, colT, o,
                                     zero)
                tile_gemm(w, wp, bp, g, m, colT_all[wk], npos, out, n0 + nn, p0, bias, act,
                          zero)


@njit(**CALLED)
def add_taps(acc, q0, vp, wt, voff, n, assign):
    """``acc[q0 + q] (+)= sum_t wt[t] * vp[q0 + voff[t] + q]`` for ``0 <= q < n``.

    Four taps per sweep, so the accumulator is read and written a quarter as
    often as tap by tap; with ``assign`` the first sweep overwrites it.
    """
    ntap = voff.shape[0]
    dst = acc[q0:q0 + n]
    if ntap == 9:  # 3x3 (and 9x1, ...): one sweep, the accumulator touched once
        s0 = vp[q0 + voff[0]:q0 + voff[0] + n]
        s1 = vp[q0 + voff[1]:q0 + voff[1] + n]
        s2 = vp[q0 + voff[2]:q0 + voff[2] + n]
        s3 = vp[q0 + voff[3]:q0 + voff[3] + n]
        s4 = vp[q0 + voff[4]:q0 + voff[4] + n]
        s5 = vp[q0 + voff[5]:q0 + voff[5] + n]
        s6 = vp[q0 + voff[6]:q0 + voff[6] + n]
        s7 = vp[q0 + voff[7]:q0 + voff[7] + n]
        s8 = vp[q0 + voff[8]:q0 + voff[8] + n]
        w0, w1, w2, w3, w4 = wt[0], wt[1], wt[2], wt[3], wt[4]
        w5, w6, w7, w8 = wt[5], wt[6], wt[7], wt[8]
        if assign:
            for q in range(n):
                dst[q] = (w0 * s0[q] + w1 * s1[q] + w2 * s2[q] + w3 * s3[q] + w4 * s4[q]
                          + w5 * s5[q] + w6 * s6[q] + w7 * s7[q] + w8 * s8[q])
        else:
            for q in range(n):
                dst[q] += (w0 * s0[q] + w1 * s1[q] + w2 * s2[q] + w3 * s3[q] + w4 * s4[q]
                           + w5 * s5[q] + w6 * s6[q] + w7 * s7[q] + w8 * s8[q])
        return
    t = 0
    if assign:
        if ntap >= 4:
            a = vp[q0 + voff[0]:q0 + voff[0] + n]
            b = vp[q0 + voff[1]:q0 + voff[1] + n]
            c = vp[q0 + voff[2]:q0 + voff[2] + n]
            e = vp[q0 + voff[3]:q0 + voff[3] + n]
            w0 = wt[0]
            w1 = wt[1]
            w2 = wt[2]
            w3 = wt[3]
            for q in range(n):
                dst[q] = w0 * a[q] + w1 * b[q] + w2 * c[q] + w3 * e[q]
            t = 4
        else:
            a = vp[q0 + voff[0]:q0 + voff[0] + n]
            w0 = wt[0]
            for q in range(n):
                dst[q] = w0 * a[q]
            t = 1
    while t + 4 <= ntap:
        a = vp[q0 + voff[t]:q0 + voff[t] + n]
        b = vp[q0 + voff[t + 1]:q0 + voff[t + 1] + n]
        c = vp[q0 + voff[t + 2]:q0 + voff[t + 2] + n]
        e = vp[q0 + voff[t + 3]:q0 + voff[t + 3] + n]
        w0 = wt[t]
        w1 = wt[t + 1]
        w2 = wt[t + 2]
        w3 = wt[t + 3]
        for q in range(n):
            dst[q] += w0 * a[q] + w1 * b[q] + w2 * c[q] + w3 * e[q]
        t += 4
    while t < ntap:
        a = vp[q0 + voff[t]:q0 + voff[t] + n]
        w0 = wt[t]
        for q in range(n):
            dst[q] += w0 * a[q]
        t += 1


@njit(**PARALLEL)
def window_direct(x, w, bias, out, groups, geom, maps, voff, act, zero, nband, workers):
    """Direct convolution, one job per (image, output channel, band of output rows).

    ``nband`` bands a plane (:func:`numbaconv.convolution._bands`: more than one
    when the planes are too few for the workers). For each input channel of
    its group a job builds the virtual rows its band reads of that channel,
    then adds ``w[t] * rows`` shifted by each tap into an accumulator laid out
    like them: one long contiguous loop per tap when every stride is 1, one
    per output row otherwise.
    """
    nimg, nc, _ = x.shape
    cout = w.shape[0]
    m = cout // groups
    cg = nc // groups
    ntap = voff.shape[0]
    d = geom.shape[1]
    last = d - 1
    lv = geom[G_VSTR, 0] * geom[G_VLEN, 0]
    olast = geom[G_OUT, last]
    lout = out.shape[2]
    nrow = lout // olast
    s_l = geom[G_STRIDE, last]
    span = (olast - 1) * s_l + 1
    unit = True
    for a in range(d):
        if geom[G_STRIDE, a] != 1:
            unit = False
    njobs = nimg * cout * nband
    nw = max(min(workers, njobs), 1)
    vrows = virtual_row_table(geom, maps)
    orows = output_row_table(geom)
    vl = geom[G_VLEN, last]
    tap_reach = voff[ntap - 1]  # the farthest tap from a window's origin (the offsets ascend)
    acc_all = worker_rows(nw, lv, x.dtype, False)
    vp_all = worker_rows(nw, lv, x.dtype, False)
    counts = job_counters(nw)
    for wk in prange(nw):
        acc = acc_all[wk]
        vp = vp_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            n = job // (cout * nband)
            co = (job // nband) % cout
            bd = job % nband
            g = co // m
            r0 = bd * nrow // nband  # the band's output rows, and the virtual rows they read
            r1 = (bd + 1) * nrow // nband
            vr0 = orows[r0] // vl
            vr1 = (orows[r1 - 1] + span - 1 + tap_reach) // vl + 1
            base = vr0 * vl  # the band's virtual rows sit at vp[0:], acc likewise
            q0 = orows[r0] - base
            for c in range(cg):
                virtual_plane(x[n, g * cg + c], geom, maps, vrows[vr0:vr1], vp, zero)
                wc = w[co, c * ntap:(c + 1) * ntap]
                if unit:
                    add_taps(acc, q0, vp, wc, voff, orows[r1 - 1] + span - orows[r0], c == 0)
                else:
                    for r in range(r0, r1):
                        add_taps(acc, orows[r] - base, vp, wc, voff, span, c == 0)
            b = bias[co]
            orow = out[n, co]
            for r in range(r0, r1):
                rb = orows[r] - base
                if s_l == 1:
                    add_row(acc, rb, orow, r * olast, olast, b)
                else:
                    dst = orow[r * olast:(r + 1) * olast]
                    for j in range(olast):
                        dst[j] = acc[rb + j * s_l] + b
                if act != 0:
                    activate_run(orow[r * olast:(r + 1) * olast], act)


@njit(**PARALLEL)
def place_planes(src, dst, pos, workers):
    """``dst[n, c, pos[j]] = src[n, c, j]``: put a strided part of the output in place."""
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
            d = dst[job // nc, job % nc]
            for j in range(m):
                d[pos[j]] = s[j]
