"""The GEMM micro-kernel of the tile-GEMM reduce, written with explicit vectors.

Numba's loop vectoriser uses 256-bit vectors even on AVX-512 machines (LLVM
prefers them for these CPUs) and vectorises a dot product along ``k``, which
ends in horizontal sums: about 105 GFLOP/s per core here, against 167 for
numpy's sgemm. :func:`panel_block` is the classic outer-product micro-kernel
instead, written in LLVM IR through ``numba.extending.intrinsic``: ``MR`` rows
of ``a`` (output positions) times a *panel* of ``NR`` output channels, with
the ``MR x NR`` sums held in ``MR * NV`` vector registers; each step of ``k``
loads ``NV`` vectors of the panel and broadcasts one element of each row.
Explicit vector types are lowered at their full width, so on AVX-512 this is
8 x 2 zmm registers (170 GFLOP/s per core measured in isolation, float32).

The panel layout is ``wp[panel, k, j]`` = weight of output channel
``panel * NR + j`` at reduction index ``k``, zero past the last channel:
:func:`pack_panels` builds it once per call.
"""

from __future__ import annotations

from typing import NamedTuple

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.extending import intrinsic


def _vector_shape() -> tuple[int, int]:
    """(vector bytes, rows per block) for the CPU Numba compiles for."""
    if config.CPU_NAME and config.CPU_NAME != "host":  # e.g. generic, for portable caches
        feats = config.CPU_FEATURES or ""
    else:
        feats = config.CPU_FEATURES or llvm.get_host_cpu_features().flatten()
    if "+avx512f" in feats:
        return 64, 8  # 16 accumulators of the 32 zmm registers
    if "+avx" in feats:
        return 32, 6  # 12 accumulators of the 16 ymm registers
    return 16, 6


#: bytes per vector register, and output positions (rows of ``a``) per block
VECTOR_BYTES, MR = _vector_shape()
#: the widest panel of the in-place micro-kernels (:func:`tap_block3`), in vectors: with
#: AVX-512's 32 registers, 8 x 3 accumulators (with AVX2's 16, 6 x 2)
TAP_VECTORS = 3 if VECTOR_BYTES == 64 else 2
#: rows of :func:`vector_block_narrow`, 4 x 3 accumulators on AVX2 (0: none elsewhere): for
#: row counts that blocks of ``MR`` rows would cut short (32 output channels: 36 rows' work
#: for 32; NOTES 100), and wherever it does no more rows' work (NOTES 137)
NARROW_ROWS = 4 if VECTOR_BYTES == 32 else 0
#: the most vectors a block of :func:`vector_block` or :func:`vector_block_narrow` places
BLOCK_VECTORS = 3


def lanes(dtype: np.dtype) -> int:
    """Elements of ``dtype`` per vector register."""
    return VECTOR_BYTES // np.dtype(dtype).itemsize


def _splat(builder, value, vty):
    """A vector of type ``vty`` with ``value`` in every lane."""
    first = builder.insert_element(ir.Constant(vty, ir.Undefined), value,
                                   ir.Constant(ir.IntType(32), 0))
    return builder.shuffle_vector(first, ir.Constant(vty, ir.Undefined),
                                  ir.Constant(ir.VectorType(ir.IntType(32), vty.count),
                                              [0] * vty.count))


def counted_loop(builder, n, step, body, name):
    """Emit ``for j in range(0, n, step): body(j)`` (``n`` an ``i64`` value, nothing done when
    it is not positive); the builder ends after the loop. ``body`` may add blocks."""
    i64 = ir.IntType(64)
    entry = builder.basic_block
    loop = builder.append_basic_block(name + ".loop")
    done = builder.append_basic_block(name + ".done")
    builder.cbranch(builder.icmp_signed(">", n, ir.Constant(i64, 0)), loop, done)
    builder.position_at_end(loop)
    j = builder.phi(i64)
    j.add_incoming(ir.Constant(i64, 0), entry)
    body(j)
    j1 = builder.add(j, ir.Constant(i64, step))
    j.add_incoming(j1, builder.basic_block)
    builder.cbranch(builder.icmp_signed("<", j1, n), loop, done)
    builder.position_at_end(done)


def _fma_types(context, builder, dtype):
    """``(fty, size, vl, vty, suffix, fmuladd)`` of a Numba float ``dtype``: its LLVM type and
    bytes, the full-width vector (``vl`` lanes, intrinsic suffix ``v16f32``...) and
    ``llvm.fmuladd`` on it."""
    fty = context.get_value_type(dtype)
    size = context.get_abi_sizeof(fty)
    vl = VECTOR_BYTES // size
    vty = ir.VectorType(fty, vl)
    suffix = ("v%df32" if size == 4 else "v%df64") % vl
    fmuladd = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(vty, [vty] * 3), "llvm.fmuladd." + suffix)
    return fty, size, vl, vty, suffix, fmuladd


def _block_rows(builder, ap, ld_v, nrow_v, mr):
    """The pointers to the ``mr`` rows of a block of ``a`` (``ap`` its first row's, rows
    ``ld_v`` elements apart): rows at or past ``nrow_v`` point at the first row.

    So a block cut short reads only the rows it stores (its other sums are
    computed and dropped), and the rows' array needs no padding to whole
    blocks: the weights of 512 output channels, not a multiple of 6, used to
    be copied on every call to add the rows a last block read (9.4 MB for a
    late layer's 3x3, NOTES 104). A compare and a select a row: the first
    row rather than the last below ``nrow`` keeps the rows' offsets the
    constant multiples of ``ld_v`` they were.
    """
    i64 = ir.IntType(64)
    rows = []
    for i in range(mr):
        row = builder.gep(ap, [builder.mul(ld_v, ir.Constant(i64, i))])
        if i:
            row = builder.select(builder.icmp_signed("<", ir.Constant(i64, i), nrow_v), row, ap)
        rows.append(row)
    return rows


def _reduction(builder, kk_v, rows, nv, fty, vty, fmuladd, panel, name):
    """The micro-kernel's loop: ``acc[i][v] += rows[i][k] * panel(k)[v]`` for ``k < kk``.

    ``rows`` are the ``MR`` row pointers of ``a``, ``panel(k)`` emits the
    loads of step ``k``'s ``nv`` vectors. Returns the sums (zeros when ``kk <=
    0``), with the builder after the loop.
    """
    zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * vty.count)
    entry = builder.basic_block
    step = {}

    def body(k):
        acc = [[builder.phi(vty) for _ in range(nv)] for _ in rows]  # after k's phi
        bv = panel(k)
        new = []
        for i, row in enumerate(rows):
            s = _splat(builder, builder.load(builder.gep(row, [k])), vty)
            new.append([builder.call(fmuladd, [s, bv[v], acc[i][v]]) for v in range(nv)])
        step.update(acc=acc, new=new, latch=builder.basic_block)

    counted_loop(builder, kk_v, 1, body, name)
    res = [[builder.phi(vty) for _ in range(nv)] for _ in rows]
    for i in range(len(rows)):
        for v in range(nv):
            step["acc"][i][v].add_incoming(zero, entry)
            step["acc"][i][v].add_incoming(step["new"][i][v], step["latch"])
            res[i][v].add_incoming(zero, entry)
            res[i][v].add_incoming(step["new"][i][v], step["latch"])
    return res


def _block_codegen(nv: int, rows_out: bool, offsets: bool = False):
    """LLVM IR of the micro-kernel with panels ``nv`` vectors wide.

    The arguments are ``(a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow,
    ncol)``. The loop is the same for both layouts; the epilogue writes the
    sums of row ``i`` and panel column ``j`` to ``out[o_off + j*ldo + i]``
    plus ``bias[j]`` (columns are channels: :func:`panel_block1`), or with
    ``rows_out`` to ``out[o_off + i*ldo + j]`` plus ``bias[i]`` (rows are
    channels, columns positions: :func:`row_block1`). With ``offsets`` an
    int64 array ``koff`` follows ``b``, and step ``k`` reads its ``NR``
    columns from ``b[koff[k]:]`` instead of row ``k`` of a packed panel
    (:func:`tap_block1`).
    """
    ix = (0, 1, 2, 3, 5, 6, 7, 8, 9, 10, 11) if offsets else tuple(range(11))

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        aty, bty, biasty, outty = (sig.args[ix[i]] for i in (0, 3, 5, 6))
        a_v, b_v, bias_v, out_v = (args[ix[i]] for i in (0, 3, 5, 6))
        off_v, ld_v, kk_v, o_off_v, ldo_v, nrow_v, ncol_v = (
            context.cast(builder, args[ix[i]], sig.args[ix[i]], types.int64)
            for i in (1, 2, 4, 7, 8, 9, 10))
        koffp = context.make_array(sig.args[4])(context, builder, args[4]).data if offsets else None
        fty, size, vl, vty, suffix, fmuladd = _fma_types(context, builder, aty.dtype)
        nr = nv * vl
        vptr = vty.as_pointer()
        ap = builder.gep(context.make_array(aty)(context, builder, a_v).data, [off_v])
        bp = context.make_array(bty)(context, builder, b_v).data
        biasp = context.make_array(biasty)(context, builder, bias_v).data
        outp = context.make_array(outty)(context, builder, out_v).data
        rows = _block_rows(builder, ap, ld_v, nrow_v, MR)

        def panel(k):  # step k's vectors: b[koff[k]:], or row k of a packed panel
            if offsets:
                bk = builder.gep(bp, [builder.load(builder.gep(koffp, [k]))])
            else:
                bk = builder.gep(bp, [builder.mul(k, ir.Constant(i64, nr))])
            return [builder.load(builder.bitcast(builder.gep(bk, [ir.Constant(i64, v * vl)]),
                                                 vptr), align=size) for v in range(nv)]

        res = _reduction(builder, kk_v, rows, nv, fty, vty, fmuladd, panel, "panel")
        (_rows_epilogue if rows_out else _cols_epilogue)(
            builder, res, biasp, outp, o_off_v, ldo_v, nrow_v, ncol_v, fty, vl, nv, size, suffix)
        return context.get_dummy_value()

    return codegen


def _masked_store(builder, n, fty, suffix):
    """The ``llvm.masked.store`` of ``n`` elements of ``fty``."""
    cty = ir.VectorType(fty, n)
    return cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(ir.VoidType(), [cty, cty.as_pointer(), ir.IntType(32),
                                        ir.VectorType(ir.IntType(1), n)]),
        f"llvm.masked.store.v{n}{suffix[suffix.index('f'):]}.p0")


def _lanes_below(builder, j, n, count):
    """The mask of lanes ``j + l < n`` of a vector of ``count`` lanes (``i64`` values)."""
    ity = ir.VectorType(ir.IntType(64), count)
    return builder.icmp_signed("<", builder.add(_splat(builder, j, ity),
                                                ir.Constant(ity, list(range(count)))),
                               _splat(builder, n, ity))


def _plain_or_masked(builder, whole, plain, masked):
    """Emit ``plain()`` where the ``i1`` value ``whole`` holds, else ``masked()``: one branch.

    The micro-kernels store a whole block with plain stores and keep masked
    stores for blocks cut short. A masked store whose mask is known only at run
    time is ``vmaskmovps`` on AVX2, microcoded on AMD's Zen 3: a row copy took
    7.3 ns a vector with it against 1.7 with plain stores (NOTES 94). (AVX-512's
    masked stores cost what plain ones do.) One branch a block rather than one a
    store, each with its partial form: less code in every kernel that inlines a
    micro-kernel (NOTES 101).
    """
    with builder.if_else(whole) as (then, other):
        with then:
            plain()
        with other:
            masked()


def _cols_epilogue(builder, res, biasp, outp, o_off_v, ldo_v, nrow_v, ncol_v, fty, vl, nv,
                   size, suffix):
    """``out[o_off + j*ldo + i] = res[i][j] + bias[j]`` for ``i < nrow``, ``j < ncol``.

    The sums' lanes are channels, so each channel's ``MR`` positions are
    collected into a vector (LLVM turns the lane moves into a transpose) and
    written with one store: plain in a whole block, else masked
    (:func:`_plain_or_masked`).
    """
    i64 = ir.IntType(64)
    mr = len(res)
    vptr = ir.VectorType(fty, vl).as_pointer()
    cty = ir.VectorType(fty, mr)
    mty = ir.VectorType(ir.IntType(1), mr)
    store = _masked_store(builder, mr, fty, suffix)
    align = ir.Constant(ir.IntType(32), size)
    orow = builder.gep(outp, [o_off_v])
    cols = []  # (channel, its positions' vector)
    for v in range(nv):
        bias_vec = builder.load(builder.bitcast(
            builder.gep(biasp, [ir.Constant(i64, v * vl)]), vptr), align=size)
        sums = [builder.fadd(res[i][v], bias_vec) for i in range(mr)]
        for lane in range(vl):
            col = ir.Constant(cty, ir.Undefined)
            for i in range(mr):
                x = builder.extract_element(sums[i], ir.Constant(ir.IntType(32), lane))
                col = builder.insert_element(col, x, ir.Constant(ir.IntType(32), i))
            cols.append((v * vl + lane, col))

    def dst(j):
        return builder.bitcast(builder.gep(orow, [builder.mul(ldo_v, ir.Constant(i64, j))]),
                               cty.as_pointer())

    def plain():
        for j, col in cols:
            builder.store(col, dst(j), align=size)

    def masked():
        rows_ok = _lanes_below(builder, ir.Constant(i64, 0), nrow_v, mr)
        for j, col in cols:
            ok = builder.select(builder.icmp_signed("<", ir.Constant(i64, j), ncol_v), rows_ok,
                                ir.Constant(mty, [0] * mr))
            builder.call(store, [col, dst(j), align, ok])

    whole = builder.and_(builder.icmp_signed(">=", nrow_v, ir.Constant(i64, mr)),
                         builder.icmp_signed(">=", ncol_v, ir.Constant(i64, nv * vl)))
    _plain_or_masked(builder, whole, plain, masked)


def _rows_epilogue(builder, res, biasp, outp, o_off_v, ldo_v, nrow_v, ncol_v, fty, vl, nv,
                   size, suffix):
    """``out[o_off + i*ldo + j] = res[i][j] + bias[i]`` for ``i < nrow``, ``j < ncol``.

    Each row's sums are stored as they are, one store per vector:
    no transposes (:func:`_store_rows`, vector ``v`` at ``o_off + v*vl``).
    """
    i64 = ir.IntType(64)
    outs = [builder.gep(outp, [builder.add(o_off_v, ir.Constant(i64, v * vl))]) for v in range(nv)]
    ncols = [builder.sub(ncol_v, ir.Constant(i64, v * vl)) for v in range(nv)]
    _store_rows(builder, res, biasp, outs, ldo_v, nrow_v, ncols, fty, vl)


def _store_rows(builder, res, biasp, outs, ldo_v, nrow_v, ncols, fty, vl, acc=None):
    """``outs[v][i*ldo + j] = res[i][v][j] + bias[i]`` for ``i < nrow`` and ``j < ncols[v]``.

    ``outs[v]`` is vector ``v``'s element pointer, ``ncols[v]`` an ``i64``
    (lanes at or past it are not stored; none when it is not positive); one
    store per row and vector, plain for the vectors whose every row and column
    is stored, else masked (:func:`_plain_or_masked`). ``bias`` is read for the
    rows below ``nrow`` only. With ``acc`` (an ``i1``) true, ``res`` is added to
    what ``outs`` hold instead of to the bias (a later part of a split reduction).
    """
    i64 = ir.IntType(64)
    size = 4 if isinstance(fty, ir.FloatType) else 8
    vty = ir.VectorType(fty, vl)
    suffix = "f32" if size == 4 else "f64"
    store = _masked_store(builder, vl, fty, suffix)
    load = _masked_load(builder, vl, fty, suffix)
    align = ir.Constant(ir.IntType(32), size)
    no_cols = ir.Constant(ir.VectorType(ir.IntType(1), vl), [0] * vl)
    zero = ir.Constant(vty, [ir.Constant(fty, 0.0)] * vl)
    rows = []  # per row: its row-in flag, its bias vector, and (no acc) its vectors plus it
    for i in range(len(res)):
        row_in = builder.icmp_signed("<", ir.Constant(i64, i), nrow_v)
        # the bias of a row past nrow is not read: its index is clamped to row 0
        b = builder.load(builder.gep(biasp, [builder.select(row_in, ir.Constant(i64, i),
                                                            ir.Constant(i64, 0))]))
        bvec = _splat(builder, b, vty)
        # (without ``acc``, the sums formed before the branch, as before ``acc`` was added:
        # the other micro-kernels' code stays as it was)
        rows.append((row_in, bvec, None if acc is not None else
                     [builder.fadd(r, bvec) for r in res[i]]))
    all_rows = builder.icmp_signed(">=", nrow_v, ir.Constant(i64, len(res)))
    for v, out in enumerate(outs):
        def dst(i, out=out):
            return builder.bitcast(builder.gep(out, [builder.mul(ldo_v, ir.Constant(i64, i))]),
                                   vty.as_pointer())

        def total(i, v, bvec, sums, held):  # row i's vector v plus the bias or what is held
            if sums is not None:
                return sums[v]
            return builder.fadd(res[i][v], builder.select(acc, held(), bvec))

        def plain(v=v, dst=dst):
            for i, (_, bvec, sums) in enumerate(rows):
                val = total(i, v, bvec, sums, lambda i=i: builder.load(dst(i), align=size))
                builder.store(val, dst(i), align=size)

        def masked(v=v, dst=dst):
            col_ok = _lanes_below(builder, ir.Constant(i64, 0), ncols[v], vl)
            for i, (row_in, bvec, sums) in enumerate(rows):
                lanes_ = builder.select(row_in, col_ok, no_cols)
                val = total(i, v, bvec, sums, lambda i=i, lanes_=lanes_: builder.call(
                    load, [dst(i), align, lanes_, zero]))
                builder.call(store, [val, dst(i), align, lanes_])

        whole = builder.and_(all_rows, builder.icmp_signed(">=", ncols[v], ir.Constant(i64, vl)))
        _plain_or_masked(builder, whole, plain, masked)


_COLS_DOC = """``out[o_off + j*ldo + i] = bias[j] + sum_k a[a_off + i*lda + k] * b[k, j]``.

For ``i < nrow <= MR`` and ``j < ncol <= NR``, ``NR`` = {nv} vector(s) of the
dtype, ``k < kk``. ``a`` needs ``nrow`` rows from ``a_off`` (a block's other rows
repeat its first: computed and not stored), ``b`` is one panel ``(kk, NR)`` and ``bias`` one
bias panel ``(NR,)``, both C-contiguous; ``out`` is C-contiguous.
"""

_ROWS_DOC = """``out[o_off + i*ldo + j] = bias[i] + sum_k a[a_off + i*lda + k] * b[k, j]``.

:func:`panel_block{nv}` with the output the other way round: for ``i < nrow <=
MR`` and ``j < ncol <= NR`` (``NR`` = {nv} vector(s) of the dtype), each row's
sums stored as they are, without transposes, so the rows of ``a`` are output
channels and ``b`` is a panel of positions; ``bias`` holds at least ``nrow``
elements.
"""


_TAPS_DOC = """``out[o_off + i*ldo + j] = bias[i] + sum_k a[a_off + i*lda + k] * b[koff[k] + j]``.

:func:`row_block{nv}` with the panel read in place: step ``k`` of the
reduction reads its ``NR`` columns (``NR`` = {nv} vector(s) of the dtype) from
``b[koff[k]:]``, any offset, so ``b`` can be a plane of input rows and
``koff`` the offsets of the window's taps (an implicit GEMM: no packing).
``koff`` is int64, ``kk`` long; ``b`` holds ``NR`` elements from every offset.
"""


def _block_intrinsic(nv: int, rows_out: bool = False):
    """The micro-kernel with panels ``nv`` vectors wide."""

    @intrinsic
    def block(typingctx, a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol):
        sig = types.none(a, a_off, lda, b, kk, bias, out, o_off, ldo, nrow, ncol)
        return sig, _block_codegen(nv, rows_out)

    block.__doc__ = (_ROWS_DOC if rows_out else _COLS_DOC).format(nv=nv)
    return block


def _taps_intrinsic(nv: int):
    """The rows-out micro-kernel reading its panel through a table of offsets."""

    @intrinsic
    def block(typingctx, a, a_off, lda, b, koff, kk, bias, out, o_off, ldo, nrow, ncol):
        sig = types.none(a, a_off, lda, b, koff, kk, bias, out, o_off, ldo, nrow, ncol)
        return sig, _block_codegen(nv, True, offsets=True)

    block.__doc__ = _TAPS_DOC.format(nv=nv)
    return block


panel_block1 = _block_intrinsic(1)
panel_block2 = _block_intrinsic(2)
row_block1 = _block_intrinsic(1, rows_out=True)
row_block2 = _block_intrinsic(2, rows_out=True)
tap_block1 = _taps_intrinsic(1)
tap_block2 = _taps_intrinsic(2)
tap_block3 = _taps_intrinsic(3)


@intrinsic
def transpose_block(typingctx, src, s_off, lds, dst, d_off, ldd):
    """``dst[d_off + j*ldd + i] = src[s_off + i*lds + j]`` for ``i, j < lanes``.

    One square block of ``lanes(dtype)`` (a vector register's elements),
    loaded as rows, transposed in registers by ``log2(lanes)`` rounds of
    shuffles that swap the off-diagonal sub-blocks, and stored as rows. Both
    arrays must be C-contiguous; the offsets are in elements.
    """
    sig = types.none(src, s_off, lds, dst, d_off, ldd)

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        sty, dty = sig.args[0], sig.args[3]
        s_off_v, lds_v, d_off_v, ldd_v = (context.cast(builder, args[i], sig.args[i], types.int64)
                                          for i in (1, 2, 4, 5))
        fty = context.get_value_type(sty.dtype)
        size = context.get_abi_sizeof(fty)
        n = VECTOR_BYTES // size
        vty = ir.VectorType(fty, n)
        sp = builder.gep(context.make_array(sty)(context, builder, args[0]).data, [s_off_v])
        dp = builder.gep(context.make_array(dty)(context, builder, args[3]).data, [d_off_v])
        rows = [builder.load(builder.bitcast(
            builder.gep(sp, [builder.mul(lds_v, ir.Constant(i64, i))]), vty.as_pointer()),
            align=size) for i in range(n)]
        b = n // 2
        while b >= 1:  # swap the off-diagonal b x b blocks of every 2b x 2b block
            lo = [c if c & b == 0 else n + c - b for c in range(n)]
            hi = [c + b if c & b == 0 else n + c for c in range(n)]
            new = list(rows)
            for i in range(n):
                if i & b == 0:
                    pair = (rows[i], rows[i + b])
                    new[i] = builder.shuffle_vector(*pair, ir.Constant(
                        ir.VectorType(ir.IntType(32), n), lo))
                    new[i + b] = builder.shuffle_vector(*pair, ir.Constant(
                        ir.VectorType(ir.IntType(32), n), hi))
            rows = new
            b //= 2
        for i in range(n):
            builder.store(rows[i], builder.bitcast(
                builder.gep(dp, [builder.mul(ldd_v, ir.Constant(i64, i))]), vty.as_pointer()),
                align=size)
        return context.get_dummy_value()

    return sig, codegen


def pack_panels(w: np.ndarray, bias: np.ndarray,
                groups: int) -> tuple[np.ndarray, np.ndarray]:
    """The weights and bias as micro-kernel panels, in one copy.

    ``w`` is ``(C_out, *kdims)`` with any strides (a transposed or strided
    view is read directly), flattened to ``K = prod(kdims)`` in C order;
    ``bias`` is ``(C_out,)``. Each group's ``m = C_out / groups`` rows are cut
    into panels of ``NR`` channels (one vector if ``m`` fits in one, else
    two), the last padded with zeros: ``wp[g * npan + q, k, j] = w[g * m + q * NR
    + j, k]`` and ``bp[g * npan + q, j] = bias[g * m + q * NR + j]``. Returns
    empty ``(0, 1, 1)`` and ``(0, 1)`` arrays when ``m`` is under three
    quarters of a vector: the padding would waste more than the dot-product
    kernel loses.
    """
    cout, kdims = w.shape[0], w.shape[1:]
    kk = int(np.prod(kdims))
    m = cout // groups
    vl = lanes(w.dtype)
    if 4 * m < 3 * vl:
        return np.empty((0, 1, 1), w.dtype), np.empty((0, 1), w.dtype)
    nr = vl if m <= vl else 2 * vl
    npan = -(-m // nr)
    src = w.reshape((groups, m) + kdims)  # splitting the first axis is always a view
    bp = np.zeros((groups, npan * nr), w.dtype)
    bp[:, :m] = bias.reshape(groups, m)
    if npan * nr != m:
        padded = np.zeros((groups, npan * nr) + kdims, w.dtype)
        padded[:, :m] = src
        src = padded
    src = src.reshape((groups, npan, nr) + kdims)
    wp = src.transpose((0, 1) + tuple(range(3, 3 + len(kdims))) + (2,))
    return (np.ascontiguousarray(wp).reshape(groups * npan, kk, nr),
            bp.reshape(groups * npan, nr))


def gemm_weights(wt: np.ndarray, bias: np.ndarray,
                 groups: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The tile GEMM's weight operands ``(w, wp, bp)`` from ``wt`` ``(C_out, *kdims)``.

    ``wt`` is in the compute dtype, in any strides. With panels
    (:func:`pack_panels`), ``w`` is an unfilled ``(C_out, K)`` array of which
    the kernels read only the shape; otherwise it is ``wt`` as a C-contiguous
    ``(C_out, K)`` array for the dot-product kernel. Either way the weights are
    copied once.
    """
    cout = wt.shape[0]
    wp, bp = pack_panels(wt, bias, groups)
    shape = (cout, wt.size // max(cout, 1))
    if wp.shape[0]:
        return np.empty(shape, wt.dtype), wp, bp
    return np.ascontiguousarray(wt).reshape(shape), wp, bp


def _masked_load(builder, n, fty, suffix):
    """The ``llvm.masked.load`` of ``n`` elements of ``fty``."""
    cty = ir.VectorType(fty, n)
    return cgutils.get_or_insert_function(
        builder.module,
        ir.FunctionType(cty, [cty.as_pointer(), ir.IntType(32), ir.VectorType(ir.IntType(1), n),
                              cty]),
        f"llvm.masked.load.v{n}{suffix[suffix.index('f'):]}.p0")


class MaskedVectors(NamedTuple):
    """An element type's explicit vector and its masked loads and stores, for intrinsics."""

    vl: int  # lanes
    vty: ir.VectorType
    load: ir.Function  # llvm.masked.load(pointer, align, mask, passthru)
    store: ir.Function  # llvm.masked.store(value, pointer, align, mask)
    align: ir.Constant  # the element's alignment
    zero: ir.Constant  # the vector of zeros (the masked-off lanes' value)

    def pointer(self, builder, base, off):
        """``base + off`` (an element pointer and an ``i64`` offset) as a vector pointer."""
        return builder.bitcast(builder.gep(base, [off]), self.vty.as_pointer())

    def lanes_below(self, builder, j, n):
        """The mask of lanes ``j + l < n`` (``i64`` values)."""
        return _lanes_below(builder, j, n, self.vl)

    def read(self, builder, ptr, ok=None):
        """The vector at the vector pointer ``ptr``; with a lane mask ``ok``, a masked load
        (lanes off read as 0.0, and nothing past them is touched)."""
        if ok is None:
            return builder.load(ptr, align=self.align.constant)
        return builder.call(self.load, [ptr, self.align, ok, self.zero])

    def write(self, builder, value, ptr, ok=None):
        """Store ``value`` at the vector pointer ``ptr``; with a lane mask ``ok``, masked."""
        if ok is None:
            builder.store(value, ptr, align=self.align.constant)
        else:
            builder.call(self.store, [value, ptr, self.align, ok])


def opaque(builder, value):
    """``value`` behind ``llvm.arithmetic.fence`` on AVX(2) targets, as it is elsewhere.

    LLVM turns ``store(select(c, y, load p), p)`` (a value written back over
    itself where ``c`` is false: relu in place) into a masked store of ``y``,
    even from explicit vectors, and on AVX2 that is ``vmaskmovps`` (see
    :func:`_plain_or_masked`): relu over 1.6 M floats in place took 0.86 ms against
    0.14 ms stored plainly (NOTES 96). Selecting against the fenced load hides
    the identity; the fence itself emits nothing. Only on AVX(2): AVX-512's
    masked stores are fast, and other targets have no masked store to make.
    """
    if VECTOR_BYTES != 32:
        return value
    fty = value.type.element
    name = (f"llvm.arithmetic.fence.v{value.type.count}"
            f"{'f32' if isinstance(fty, ir.FloatType) else 'f64'}")
    fence = cgutils.get_or_insert_function(builder.module,
                                           ir.FunctionType(value.type, [value.type]), name)
    return builder.call(fence, [value])


def vector_loop(builder, mv: MaskedVectors, n, body, name) -> None:
    """Emit ``body(j, ok)`` for ``j = 0, vl, 2 vl, ...`` below ``n`` (an ``i64``; nothing when
    it is not positive): ``ok`` is ``None`` for the whole vectors, and the lane mask of the
    last vector when it is partial. Bodies load and store through :meth:`MaskedVectors.read`
    and :meth:`~MaskedVectors.write`, so that only that last vector is masked
    (:func:`_plain_or_masked` says why)."""
    i64 = ir.IntType(64)
    n = builder.select(builder.icmp_signed(">", n, ir.Constant(i64, 0)), n, ir.Constant(i64, 0))
    nmain = builder.and_(n, ir.Constant(i64, -mv.vl))
    counted_loop(builder, nmain, mv.vl, lambda j: body(j, None), name)
    with builder.if_then(builder.icmp_signed("<", nmain, n)):
        body(nmain, mv.lanes_below(builder, nmain, n))


def masked_vectors(context, builder, dtype) -> MaskedVectors:
    """:class:`MaskedVectors` of a Numba float ``dtype`` at the full vector width."""
    fty = context.get_value_type(dtype)
    size = context.get_abi_sizeof(fty)
    vl = VECTOR_BYTES // size
    vty = ir.VectorType(fty, vl)
    suffix = ("v%df32" if size == 4 else "v%df64") % vl
    return MaskedVectors(vl, vty, _masked_load(builder, vl, fty, suffix),
                         _masked_store(builder, vl, fty, suffix),
                         ir.Constant(ir.IntType(32), size),
                         ir.Constant(vty, [ir.Constant(fty, 0.0)] * vl))


def _row_codegen(add: bool):
    """LLVM IR of :func:`copy_row` (``add``: of :func:`add_row`)."""

    def codegen(context, builder, sig, args):
        sty, dty = sig.args[0], sig.args[2]
        s_off_v, d_off_v, n_v = (context.cast(builder, args[i], sig.args[i], types.int64)
                                 for i in (1, 3, 4))
        mv = masked_vectors(context, builder, sty.dtype)
        sp = builder.gep(context.make_array(sty)(context, builder, args[0]).data, [s_off_v])
        dp = builder.gep(context.make_array(dty)(context, builder, args[2]).data, [d_off_v])
        if add:
            bvec = _splat(builder, context.cast(builder, args[5], sig.args[5], sty.dtype), mv.vty)

        def body(j, ok):
            v = mv.read(builder, mv.pointer(builder, sp, j), ok)
            mv.write(builder, builder.fadd(v, bvec) if add else v, mv.pointer(builder, dp, j), ok)

        vector_loop(builder, mv, n_v, body, "row")
        return context.get_dummy_value()

    return codegen


@intrinsic
def copy_row(typingctx, src, s_off, dst, d_off, n):
    """``dst[d_off + j] = src[s_off + j]`` for ``j < n``, in whole vectors.

    Numba's loops of a few dozen iterations (a 28-wide image row) run
    LLVM's scalar remainder: its vector loop needs a multiple of the vector
    width times the interleave. This loops over vectors instead
    (:func:`vector_loop`), the last one masked (nothing past ``n`` is read or
    written). Both arrays C-contiguous,
    offsets in elements.
    """
    return types.none(src, s_off, dst, d_off, n), _row_codegen(False)


@intrinsic
def add_row(typingctx, src, s_off, dst, d_off, n, b):
    """``dst[d_off + j] = src[s_off + j] + b`` for ``j < n``: :func:`copy_row` plus ``b``."""
    return types.none(src, s_off, dst, d_off, n, b), _row_codegen(True)


def _vectors_codegen(nv: int, mr: int = MR):
    """LLVM IR of :func:`vector_block`: the in-place micro-kernel whose ``nv`` vectors each
    have their own panel and output offsets and column count, ``mr`` rows."""

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        aty = sig.args[0]

        def data(i):
            return context.make_array(sig.args[i])(context, builder, args[i]).data

        off_v, ld_v, kk_v, ldo_v, nrow_v = (
            context.cast(builder, args[i], sig.args[i], types.int64) for i in (1, 2, 5, 10, 11))
        fty, size, vl, vty, suffix, fmuladd = _fma_types(context, builder, aty.dtype)
        vptr = vty.as_pointer()
        ap = builder.gep(data(0), [off_v])
        bp, koffp, boffp, biasp, outp, ooffp, ncp = (data(i) for i in (3, 4, 6, 7, 8, 9, 12))
        rows = _block_rows(builder, ap, ld_v, nrow_v, mr)
        vec = [ir.Constant(i64, v) for v in range(nv)]
        bases = [builder.gep(bp, [builder.load(builder.gep(boffp, [vec[v]]))]) for v in range(nv)]

        def panel(k):  # step k's vectors: each from its own base, at koff[k]
            kof = builder.load(builder.gep(koffp, [k]))
            return [builder.load(builder.bitcast(builder.gep(bases[v], [kof]), vptr), align=size)
                    for v in range(nv)]

        res = _reduction(builder, kk_v, rows, nv, fty, vty, fmuladd, panel, "vectors")
        outs = [builder.gep(outp, [builder.load(builder.gep(ooffp, [vec[v]]))]) for v in range(nv)]
        ncols = [builder.load(builder.gep(ncp, [vec[v]])) for v in range(nv)]
        _store_rows(builder, res, biasp, outs, ldo_v, nrow_v, ncols, fty, vl,
                    context.cast(builder, args[13], sig.args[13], types.boolean))
        return context.get_dummy_value()

    return codegen


@intrinsic
def vector_block(typingctx, a, a_off, lda, b, koff, kk, boff, bias, out, ooff, ldo, nrow, ncols,
                 acc):
    """``out[ooff[v] + i*ldo + j] = bias[i] + sum_k a[a_off + i*lda + k] * b[bv + koff[k] + j]``.

    With ``bv = boff[v]``: the in-place micro-kernel of :data:`TAP_VECTORS`
    vectors (:func:`tap_block3` on AVX-512) with each vector ``v`` placed on
    its own: its panel from ``b[boff[v]:]``, its sums to ``out[ooff[v]:]``,
    for ``j < ncols[v] <= lanes`` and ``i < nrow <= MR``, so that one block
    can hold pieces of several rows of outputs (a vector with ``ncols[v] =
    0`` stores nothing; its loads still read ``b[boff[v] + koff[k]:]``).
    ``boff``, ``ooff``, ``ncols``: int64, at least :data:`TAP_VECTORS` each.
    With ``acc`` true, ``out[...] + sum`` instead of ``bias[i] + sum``: the
    reduction split in parts, each part added to the one before.
    """
    sig = types.none(a, a_off, lda, b, koff, kk, boff, bias, out, ooff, ldo, nrow, ncols, acc)
    return sig, _vectors_codegen(TAP_VECTORS)


@intrinsic
def vector_block_narrow(typingctx, a, a_off, lda, b, koff, kk, boff, bias, out, ooff, ldo, nrow,
                        ncols, acc):
    """:func:`vector_block` with blocks of :data:`NARROW_ROWS` rows and three vectors (AVX2).

    For ``i < nrow <= NARROW_ROWS``; ``boff``, ``ooff``, ``ncols`` hold at
    least three each. On Zen 3 its 4 x 3 block runs at least at the 6 x 2
    block's rate per multiply-add: conv3d (2,16,32,32,32) -> 32 about 10%
    faster (NOTES 100), and with the row jobs' longer runs (NOTES 136) the 7x7
    stem of 64 channels 5-10% faster, of 48, 96 and 128 channels 1-5%, and
    conv3d (2,16,32,32,32) -> 64 7% (NOTES 137).
    """
    sig = types.none(a, a_off, lda, b, koff, kk, boff, bias, out, ooff, ldo, nrow, ncols, acc)
    return sig, _vectors_codegen(BLOCK_VECTORS, NARROW_ROWS or MR)


@intrinsic
def vector_combination(typingctx, t, t_off, ks, cs, z0, nz, dst, d_off):
    """``dst[d_off + l] = sum_z cs[z0 + z] * t[t_off + ks[z0 + z] * lanes + l]``, ``l < lanes``.

    One vector (``lanes`` elements of the dtype): a weighted sum of ``nz``
    vectors of ``t``, picked by ``ks`` (int64), in the order given, with
    fused multiply-adds from zero; stored unaligned. ``t``, ``cs`` and
    ``dst`` of one float dtype, C-contiguous.
    """
    sig = types.none(t, t_off, ks, cs, z0, nz, dst, d_off)

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        tty, ksty, csty, dty = sig.args[0], sig.args[2], sig.args[3], sig.args[6]
        t_v, z0_v, nz_v, d_v = (context.cast(builder, args[i], sig.args[i], types.int64)
                                for i in (1, 4, 5, 7))
        fty, size, vl, vty, _, fmuladd = _fma_types(context, builder, tty.dtype)

        def data(i, ty, off):
            return builder.gep(context.make_array(ty)(context, builder, args[i]).data, [off])

        tp, ksp, csp = data(0, tty, t_v), data(2, ksty, z0_v), data(3, csty, z0_v)
        dp = data(6, dty, d_v)
        acc = cgutils.alloca_once_value(builder, ir.Constant(vty, [ir.Constant(fty, 0.0)] * vl))

        def body(z):
            row = builder.mul(builder.load(builder.gep(ksp, [z])), ir.Constant(i64, vl))
            v = builder.load(builder.bitcast(builder.gep(tp, [row]), vty.as_pointer()), align=size)
            c = _splat(builder, builder.load(builder.gep(csp, [z])), vty)
            builder.store(builder.call(fmuladd, [c, v, builder.load(acc)]), acc)

        counted_loop(builder, nz_v, 1, body, "combination")
        builder.store(builder.load(acc), builder.bitcast(dp, vty.as_pointer()), align=size)
        return context.get_dummy_value()

    return sig, codegen
