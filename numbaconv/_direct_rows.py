"""The direct schedule for windows that keep the row width: flat sweeps, masked columns.

When every stride is 1 and the last axis is zero-padded to its own width
(``'same'`` on that axis, the usual depthwise layer), the output rows are as
wide as the input rows, so the output plane is laid out like the input
plane and a job (one image, one output channel) needs neither a padded
virtual plane nor a write-out:

* the taps are summed over whole runs of output rows (chunks) in one flat
  loop, straight into the output, each tap a shifted stream of input rows.
  A tap that reaches across the left or right edge lands on the neighbouring
  row's sample; each kernel column has a mask of the positions where it is
  inside the row, and its samples are loaded with it (masked-off lanes read
  0.0, like the zero padding they stand for: an inf or NaN next door cannot
  leak in, and an inf weight still gives NaN there, as on explicit zeros);
* a chunk whose rows (and one more on each side) are all rows of the input
  reads the input itself. The chunks near a padded leading edge read the
  *row plane* instead: the virtual plane without the last axis's padding,
  rows of the input's own width, the leading axes padded through their maps
  as everywhere else (``virtual_row_table``). Only the rows those chunks read
  are copied; a worker's padding rows are zeroed once. Planes of fewer than
  1024 outputs are copied whole and swept in one chunk: that costs less than
  the extra sweeps at their edges;
* the sweeps (:func:`sweep_block`) are explicit full-width vectors, blocks of
  up to 4 kernel rows by 3 columns, and fetch a later job's input plane into
  the cache as they go (the hardware prefetcher does not cross from one plane
  to the next in time: 0.47 ms against 0.38 on depthwise (8,256,28,28)).

The loops are hundreds of elements long, where the virtual plane's 28-wide
rows ran LLVM's scalar remainder. Depthwise 3x3 (8,256,28,28): 0.72-0.94 ms
on :func:`numbaconv._core.window_direct`, 0.33-0.36 here (NOTES 56).
"""

from __future__ import annotations

import functools

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._activations import activate_run
from ._config import CALLED, HELPER, PARALLEL
from ._core import next_row, virtual_row_table, worker_rows
from ._geometry import (
    G_DIL,
    G_ID0,
    G_IDN,
    G_IDSRC,
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
    VECTOR_BYTES,
    _masked_load,
    _masked_store,
    _splat,
    copy_row,
    masked_vectors,
    vector_loop,
)

#: output rows are swept in chunks of about this many positions (with their masks, the
#: chunk's streams stay in L1 across the sweeps of one job)
_CHUNK = 4096
#: the sweeps ask the cache for the input plane of the job this many jobs ahead (measured
#: on depthwise (8,256,28,28): kernel 0.47 ms with none, 0.38 with 1 or 2, 0.39 with 4)
_AHEAD = 2
#: planes of fewer output positions are read from the row plane whole, in one chunk: the
#: copy costs less than the extra sweeps of the chunks at their padded edges (depthwise
#: (8,256,14,14): 0.125 -> 0.105 ms on Zen 4; on Zen 3 (8,256,28,28) is 5% faster copied
#: whole, and (8,64,56,56) 8% slower, NOTES 109)
_IN_PLACE_MIN = 1024


@functools.lru_cache(maxsize=64)
def usable(tab: Tables) -> bool:
    """Every stride 1, the last axis zero-padded (or not at all) and as wide out as in."""
    geom, maps = tab.geom, tab.maps
    last = geom.shape[1] - 1
    if (geom[G_STRIDE] != 1).any():
        return False
    width = geom[G_OUT, last]
    if geom[G_IDN, last] != width or geom[G_IDSRC, last] != 0:
        return False
    m = maps[geom[G_MAPOFF, last]:geom[G_MAPOFF, last] + geom[G_VLEN, last]]
    id0 = geom[G_ID0, last]
    return bool((m[:id0] == -1).all() and (m[id0 + width:] == -1).all())


def _block_codegen(rows: int, cols: int):
    """LLVM IR of :func:`sweep_block` for a block of ``rows x cols`` taps."""

    def codegen(context, builder, sig, args):
        i8, i32, i64 = ir.IntType(8), ir.IntType(32), ir.IntType(64)
        fty = context.get_value_type(sig.args[0].dtype)
        size = context.get_abi_sizeof(fty)
        vl = VECTOR_BYTES // size
        vty = ir.VectorType(fty, vl)
        mty = ir.VectorType(i8, vl)
        ivty = ir.VectorType(ir.IntType(8 * size), vl)  # the lanes as integers
        bits = ir.VectorType(ir.IntType(1), vl)
        suffix = ("v%df32" if size == 4 else "v%df64") % vl

        def arr(k):
            return context.make_array(sig.args[k])(context, builder, args[k])

        def int_arg(k):
            return context.cast(builder, args[k], sig.args[k], types.int64)

        dp, vpp, offp, wtp = arr(0).data, arr(1).data, arr(3).data, arr(4).data
        base, t0, kl, j0, n = (int_arg(k) for k in (2, 5, 6, 8, 9))
        masks = arr(7)
        mrow = cgutils.unpack_tuple(builder, masks.strides)[0]
        mps = [builder.gep(masks.data, [builder.mul(builder.add(j0, ir.Constant(i64, c)), mrow)])
               for c in range(cols)]
        assign = context.cast(builder, args[10], sig.args[10], types.boolean)
        bvec = _splat(builder, context.cast(builder, args[11], sig.args[11], sig.args[0].dtype),
                      vty)
        pfp = builder.bitcast(builder.gep(arr(12).data, [int_arg(13)]), i8.as_pointer())
        pf_end = builder.mul(int_arg(14), ir.Constant(i64, size))
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [i8.as_pointer(), i32, i32, i32]),
            "llvm.prefetch.p0i8")
        fmuladd = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vty, [vty] * 3), "llvm.fmuladd." + suffix)
        load_f = _masked_load(builder, vl, fty, suffix)
        store_f = _masked_store(builder, vl, fty, suffix)
        load_m = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(mty, [mty.as_pointer(), i32, bits, mty]),
            f"llvm.masked.load.v{vl}i8.p0")
        align = ir.Constant(i32, size)
        fzero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * vl)
        mzero = ir.Constant(mty, [ir.Constant(i8, 0)] * vl)
        srcs, wts = {}, {}  # per (row, column) of the block
        for r in range(rows):
            for c in range(cols):
                t = builder.add(builder.add(t0, builder.mul(kl, ir.Constant(i64, r))),
                                ir.Constant(i64, c))
                srcs[r, c] = builder.gep(vpp, [builder.add(base, builder.load(
                    builder.gep(offp, [t])))])
                wts[r, c] = _splat(builder, builder.load(builder.gep(wtp, [t])), vty)

        def body(j, ok):
            def ptr(p, ty):
                return builder.bitcast(builder.gep(p, [j]), ty.as_pointer())

            def ld(p, lanes):  # the lanes not in ``lanes`` read as 0.0 (all, for None)
                if lanes is None:
                    return builder.load(ptr(p, vty), align=size)
                if ok is None:  # a whole vector, all in the array: a plain load, ANDed
                    # with the column's mask of all-ones and all-zeros lanes
                    v = builder.bitcast(builder.load(ptr(p, vty), align=size), ivty)
                    return builder.bitcast(builder.and_(v, lanes), vty)
                return builder.call(load_f, [ptr(p, vty), align, lanes, fzero])

            cols_sum = []  # one chain per column, summed as a tree
            for c in range(cols):
                if ok is None:  # the mask's bytes (0 or -1) widened to the lanes'
                    lanes = builder.sext(builder.load(ptr(mps[c], mty), align=1), ivty)
                else:
                    mask = builder.call(load_m, [ptr(mps[c], mty), ir.Constant(i32, 1), ok,
                                                 mzero])
                    lanes = builder.icmp_unsigned("!=", mask, mzero)
                col = builder.fmul(wts[0, c], ld(srcs[0, c], lanes))
                for r in range(1, rows):
                    col = builder.call(fmuladd, [wts[r, c], ld(srcs[r, c], lanes), col])
                cols_sum.append(col)
            while len(cols_sum) > 1:
                cols_sum = [builder.fadd(cols_sum[i], cols_sum[i + 1]) if i + 1 < len(cols_sum)
                            else cols_sum[i] for i in range(0, len(cols_sum), 2)]
            t = builder.fadd(builder.select(assign, bvec, ld(dp, ok)), cols_sum[0])
            if ok is None:
                builder.store(t, ptr(dp, vty), align=size)
            else:
                builder.call(store_f, [t, ptr(dp, vty), align, ok])

        def vector(j, ok):  # whole vectors also fetch a line of a later plane
            body(j, ok)
            if ok is None:
                pf_at = builder.mul(j, ir.Constant(i64, size))
                with builder.if_then(builder.icmp_signed("<", pf_at, pf_end)):
                    builder.call(prefetch, [builder.gep(pfp, [pf_at]), ir.Constant(i32, 0),
                                            ir.Constant(i32, 3), ir.Constant(i32, 1)])

        vector_loop(builder, masked_vectors(context, builder, sig.args[0].dtype), n, vector,
                    "sweep")
        return context.get_dummy_value()

    return codegen


@intrinsic
def sweep_block(typingctx, dst, vp, base, offs, wt, t0, kl, masks, j0, n, assign, b, pf,
                pf_off, pf_n, rows, cols):
    """A block of ``rows x cols`` taps over ``n`` positions, in one sweep.

    The taps are ``t0 + r * kl + c`` (``kl`` taps per kernel row), their
    samples ``vp[base + offs[t] + q]``, read as 0 where column ``c``'s mask
    ``masks[j0 + c, q]`` (int8) is 0 rather than -1 (the padding they stand
    for, so an inf weight gives NaN there as it does on explicit zeros). Then
    ``dst[q] = (b if assign else dst[q]) + the weighted sum``. Meanwhile one
    cache line of ``pf[pf_off:pf_off + pf_n]`` per vector is prefetched (a
    later job's input). ``rows`` and ``cols`` are literal ints; explicit
    full-width vectors (LLVM's loop vectoriser keeps to 256 bits here), the
    last one masked; all arrays C-contiguous.

    A whole vector's samples are plain loads ANDed with the mask's bytes
    widened to the lanes (all bits set or none): as masked loads
    (``vmaskmovps``), with the byte compares that made their masks, a 3 x 3
    sweep took ~14 cycles a vector on Zen 3, and ~10 this way (NOTES 105).
    """
    if not (isinstance(rows, types.IntegerLiteral) and isinstance(cols, types.IntegerLiteral)):
        return None
    sig = types.none(dst, vp, base, offs, wt, t0, kl, masks, j0, n, assign, b, pf, pf_off, pf_n,
                     rows, cols)
    return sig, _block_codegen(rows.literal_value, cols.literal_value)


@njit(**HELPER)
def add_channel(dst, vp, base, offs, wt, kl, masks, n, assign, b, pf, pf_off, pf_n):
    """All taps of one input channel over ``n`` positions: blocks of up to 4 rows x 3 columns.

    (:func:`sweep_block` takes its block shape as literals, hence the dispatch.)
    """
    nrows = offs.shape[0] // kl
    for i in range(0, nrows, 4):
        for j in range(0, kl, 3):
            t = i * kl + j
            first = assign and i + j == 0
            shape = min(4, nrows - i) * 3 + min(3, kl - j) - 1  # 3 * rows + cols - 1
            if shape == 14:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 4, 3)
            elif shape == 13:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 4, 2)
            elif shape == 12:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 4, 1)
            elif shape == 11:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 3, 3)
            elif shape == 10:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 3, 2)
            elif shape == 9:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 3, 1)
            elif shape == 8:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 2, 3)
            elif shape == 7:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 2, 2)
            elif shape == 6:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 2, 1)
            elif shape == 5:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 1, 3)
            elif shape == 4:
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 1, 2)
            else:  # 1 x 1
                sweep_block(dst, vp, base, offs, wt, t, kl, masks, j, n, first, b, pf, pf_off,
                            pf_n, 1, 1)


@njit(**CALLED)
def row_plan(geom, maps, chunk):
    """The job-independent tables of :func:`window_rows`, chunks of about ``chunk`` outputs.

    Returns ``(copies, offs, chunks, masks, head, plane_len)``:

    * ``copies`` -- the row plane's copies ``(destination row, source offset,
      rows)``: only the rows that chunks read from the plane;
    * ``offs`` -- the taps' flat offsets from a position's origin (``head``
      elements of zeros begin the plane, so none is negative there);
    * ``chunks`` -- runs of output rows ``(first output row, first origin row,
      rows, x)``. ``x >= 0`` (in planes of ``_IN_PLACE_MIN`` outputs or more):
      every row the chunk's taps read, and one more on
      each side, is a row of the input itself, consecutive; the sweeps then
      read the input straight, at offset ``x`` for the chunk's origin, and no
      copy is needed. ``x == -1``: they read the row plane;
    * ``masks`` -- per kernel column, which positions of a chunk it may add to
      (int8: -1, all bits set, where it may, else 0);
    * ``plane_len`` -- the row plane's length.
    """
    d = geom.shape[1]
    last = d - 1
    width = geom[G_OUT, last]
    head = geom[G_ID0, last]
    tail = geom[G_VLEN, last] - head - width
    # rows of the plane per unit of each leading axis; the taps' reach in rows
    rstep = np.empty(d, dtype=np.int64)
    reach = 0
    for a in range(d):
        rstep[a] = geom[G_VSTR, a] // geom[G_VLEN, last]
        if a < last:
            reach += (geom[G_K, a] - 1) * geom[G_DIL, a] * rstep[a]
    nvrow = geom[G_VSTR, 0] * geom[G_VLEN, 0] // geom[G_VLEN, last]
    vrows = virtual_row_table(geom, maps)
    # linked[r]: plane rows r and r + 1 are consecutive input rows
    linked = np.zeros(nvrow + 1, dtype=np.bool_)
    for r in range(nvrow - 1):
        linked[r] = vrows[r] >= 0 and vrows[r + 1] == vrows[r] + width
    inside = np.zeros(nvrow + 1, dtype=np.int64)  # prefix sums of linked
    for r in range(nvrow):
        inside[r + 1] = inside[r] + linked[r]
    kl = geom[G_K, last]
    ntap = 1
    for a in range(d):
        ntap *= geom[G_K, a]
    offs = np.empty(ntap, dtype=np.int64)
    k = np.zeros(d, dtype=np.int64)
    for t in range(ntap):
        o = k[last] * geom[G_DIL, last] - head
        for a in range(last):
            o += k[a] * geom[G_DIL, a] * rstep[a] * width
        offs[t] = o
        next_row(geom[G_K], k, d)
    per = max(1, chunk // width)
    nrow = 1
    for a in range(last):
        nrow *= geom[G_OUT, a]
    chunks = np.empty((nrow, 4), dtype=np.int64)
    need = np.zeros(nvrow, dtype=np.bool_)
    nchunk = 0
    row = np.zeros(d, dtype=np.int64)
    for r in range(nrow):
        vr = 0
        for a in range(last):
            vr += row[a] * rstep[a]
        # rows vr - 1 .. vr + reach + 1 all consecutive input rows (the margin rows hold
        # the reads of the left and right overhang)
        lo = vr - 1
        hi = vr + reach + 1
        direct = nrow * width >= _IN_PLACE_MIN and head <= width and tail <= width and \
            lo >= 0 and hi < nvrow and inside[hi] - inside[lo] == hi - lo
        if nchunk > 0 and chunks[nchunk - 1, 2] < per and \
                chunks[nchunk - 1, 0] + chunks[nchunk - 1, 2] == r and \
                chunks[nchunk - 1, 1] + chunks[nchunk - 1, 2] == vr and \
                (chunks[nchunk - 1, 3] >= 0) == direct:
            chunks[nchunk - 1, 2] += 1
        else:
            chunks[nchunk, 0] = r
            chunks[nchunk, 1] = vr
            chunks[nchunk, 2] = 1
            chunks[nchunk, 3] = vrows[vr] if direct else -1
            nchunk += 1
        if not direct:
            for q in range(vr, min(vr + reach + 1, nvrow)):
                need[q] = True
        next_row(geom[G_OUT], row, last)
    copies = np.empty((nvrow, 3), dtype=np.int64)
    ncopy = 0
    for r in range(nvrow):
        src = vrows[r]
        if src < 0 or not need[r]:
            continue
        if ncopy > 0 and copies[ncopy - 1, 0] + copies[ncopy - 1, 2] == r and \
                copies[ncopy - 1, 1] + copies[ncopy - 1, 2] * width == src:
            copies[ncopy - 1, 2] += 1
        else:
            copies[ncopy, 0] = r
            copies[ncopy, 1] = src
            copies[ncopy, 2] = 1
            ncopy += 1
    npos = min(per, nrow) * width
    masks = np.zeros((kl, npos), dtype=np.int8)
    for j in range(kl):
        shift = j * geom[G_DIL, last] - head
        for q in range(npos):
            c = q % width + shift
            if 0 <= c < width:
                masks[j, q] = -1
    plane_len = head + nvrow * width + tail
    return copies[:ncopy], offs, chunks[:nchunk], masks, head, plane_len


def window_rows(x: np.ndarray, w: np.ndarray, bias: np.ndarray, out: np.ndarray, groups: int,
                tab: Tables, act: int, zero: np.floating, nband: int, workers: int) -> None:
    """Direct convolution for windows that keep the row width, one job per (image, channel out,
    band of chunks).

    ``x`` is ``(N, C_in, L_in)``, ``w`` ``(C_out, C_in / groups * taps)``
    channel-major, ``out`` ``(N, C_out, L_out)``; the tables are
    :func:`numbaconv._geometry.kernel_tables`' and must pass :func:`usable`.
    ``nband`` bands of the plan's chunks a plane (more than one when the
    planes are too few for the workers).
    """
    copies, offs, chunks, masks, head, plane_len = _plan(tab)
    _window_rows(x, w, bias, out, groups, tab.geom, copies, offs, chunks, masks, head, plane_len,
                 act, zero, nband, workers)


@functools.lru_cache(maxsize=64)
def _plan(tab: Tables) -> tuple:
    """:func:`row_plan` of chunks of ``_CHUNK`` outputs, cached: made in each call, it took
    ~9 us of a small call's ~80 (depthwise (1,16,28,28)). Its arrays stay writeable, the type
    :mod:`numbaconv._separable_rows` gives :func:`add_channel` too (one compiled
    specialisation); nothing writes to them."""
    return row_plan(tab.geom, tab.maps, _CHUNK)


@njit(**PARALLEL)
def _window_rows(x, w, bias, out, groups, geom, copies, offs, chunks, masks, head, plane_len,
                 act, zero, nband, workers):
    """:func:`window_rows`' kernel, given the plan (:func:`row_plan`)."""
    nimg, nc, _ = x.shape
    cout = w.shape[0]
    m = cout // groups
    cg = nc // groups
    last = geom.shape[1] - 1
    width = geom[G_OUT, last]
    kl = geom[G_K, last]
    ntap = offs.shape[0]
    nchunk = chunks.shape[0]
    njobs = nimg * cout * nband
    nw = max(min(workers, njobs), 1)
    vp_all = worker_rows(nw, plane_len, x.dtype, True)  # padding rows stay zero
    counts = job_counters(nw)
    for wk in prange(nw):
        vp = vp_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            n = job // (cout * nband)
            co = (job // nband) % cout
            bd = job % nband
            i0 = bd * nchunk // nband
            i1 = (bd + 1) * nchunk // nband
            g = co // m
            orow = out[n, co]
            b = bias[co]
            for c in range(cg):
                xc = x[n, g * cg + c]
                for i in range(copies.shape[0]):
                    copy_row(xc, copies[i, 1], vp, head + copies[i, 0] * width,
                             copies[i, 2] * width)
                wc = w[co, c * ntap:(c + 1) * ntap]
                if c + 1 < cg:  # the next plane's input, fetched during the sweeps
                    pf = x[n, g * cg + c + 1]
                else:
                    nxt = min(job + _AHEAD, njobs - 1) // nband  # its plane
                    pf = x[nxt // cout, (nxt % cout) // m * cg]
                for i in range(i0, i1):
                    p0 = chunks[i, 0] * width
                    npos = chunks[i, 2] * width
                    if chunks[i, 3] >= 0:  # straight from the input
                        src = xc
                        base = chunks[i, 3]
                    else:
                        src = vp
                        base = head + chunks[i, 1] * width
                    add_channel(orow[p0:p0 + npos], src, base, offs, wc, kl, masks, npos, c == 0,
                                b, pf, p0, npos)
            if act != 0 and i1 > i0:
                activate_run(orow[chunks[i0, 0] * width:(chunks[i1 - 1, 0] + chunks[i1 - 1, 2])
                                  * width], act)
