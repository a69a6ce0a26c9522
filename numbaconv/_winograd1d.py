"""Winograd's minimal filtering F(4, 3) along one axis: 1-D, 3 taps, stride 1.

In 1-D the F(2, 3) of :mod:`numbaconv._winograd` saves only a third of the
multiplications; F(4, 3) computes 4 outputs of a 3-tap window from 6 samples
with 6 multiplications instead of 12. With many channels they are 6 matrix
products per tile of outputs, ``V_xi (tiles, C_in) @ U_xi (C_in, C_out)``, on
the micro-kernel: half the direct method's FLOPs. Below 128 input channels
they run with the output channels as the micro-kernel's rows
(:func:`products_rows`, untransposed stores), else with the tiles as its
rows (:func:`numbaconv._winograd.point_products`, a transposing store).

Dilation ``dl`` spaces a tile's samples and outputs ``dl`` apart. The output
axis is cut into *blocks* of ``4 dl`` outputs, ``dl`` tiles each (tile ``r``
of a block owns its outputs ``r, r + dl, r + 2 dl, r + 3 dl``); where the axis
has a leftover, each phase ``r`` gets one more tile stepped back to end at
the phase's last output, owning only the outputs no block has
(:func:`axis_tiles`). A job is a run of tiles of one image: it builds the
virtual (padded) columns it reads through the padding maps (so every padding
mode is the same code), transforms them (``B^T``), runs the 6 products and
writes each output channel's runs through ``A^T``, with the bias and the
activation. Below 128 input channels the columns are built channel by
channel and transformed a vector of tiles at a time (:func:`job_inputs_cf`),
else channels-last and a tile at a time (:func:`job_inputs`). Both transforms
are explicit vectors (LLVM left their Numba loops scalar). A job whose outputs
are not all finite is redone by direct sums (:func:`job_direct`): the
transforms mix a tile's 6 samples, and would spread an inf or a NaN to outputs
whose window misses it.

The transforms (points 0, +-1, +-2 and infinity; Lavin and Gray, 2016)::

    B^T = [[4, 0, -5, 0, 1, 0], [0, -4, -4, 1, 1, 0], [0, 4, -4, -1, 1, 0],
           [0, -2, -1, 2, 1, 0], [0, 2, -1, -2, 1, 0], [0, 4, 0, -5, 0, 1]]
    G   = [[1/4, 0, 0], [-1/6, -1/6, -1/6], [-1/6, 1/6, -1/6],
           [1/24, 1/12, 1/6], [1/24, -1/12, 1/6], [0, 0, 1]]
    A^T = [[1, 1, 1, 1, 1, 0], [0, 1, -1, 2, -2, 0], [0, 1, 1, 4, 4, 0],
           [0, 1, -1, 8, -8, 1]]

``G`` is applied in float64 and rounded once; ``B^T`` and ``A^T`` are exact
small integers, so the error over the direct sum comes from the wider range
of the transformed values (a few times the direct method's in float32).
"""

from __future__ import annotations

import functools
from typing import NamedTuple

import numpy as np
from llvmlite import ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic

from ._activations import activate_run
from ._config import CALLED, HELPER, PARALLEL
from ._core import virtual_cols_cl, virtual_row_table, worker_rows
from ._geometry import G_DIL, G_K, G_OUT, G_STRIDE, Tables
from ._implicit import phase_segment
from ._jobs import job_counters, next_job
from ._microkernel import (
    MR,
    VECTOR_BYTES,
    _splat,
    counted_loop,
    lanes,
    masked_vectors,
    tap_block1,
    tap_block2,
    transpose_block,
    vector_loop,
)
from ._winograd import point_products, transformed_panels

#: bytes of a job's transformed inputs and products together (they stay in L2; 384 KB
#: made 16-tile jobs of 512 channels, 15% slower)
_JOB_BYTES = 1024 * 1024

#: tiles per job at most (longer jobs gain nothing and leave workers idle)
_MAX_TILES = 128
#: with fewer input channels the products run with the output channels as rows
#: (:func:`point_products_rows`): (16,64,16000) k3 dil 4 18.0 against 19.4-19.8 ms; at 128
#: channels both forms took the same, at 256 the transposes cost more (8.7-9.0 against
#: 7.4-8.2 ms for (4,256,2000) -> 256; NOTES 72)
_ROWS_FORM_BELOW = 128

_G = np.array([[1 / 4, 0, 0], [-1 / 6, -1 / 6, -1 / 6], [-1 / 6, 1 / 6, -1 / 6],
               [1 / 24, 1 / 12, 1 / 6], [1 / 24, -1 / 12, 1 / 6], [0, 0, 1]])


def axis_tiles(n_out: int, dl: int) -> tuple[np.ndarray, np.ndarray, int]:
    """Tiles of an axis of ``n_out >= 4 * dl`` outputs: ``(starts, masks, blocks)``.

    The first ``blocks * dl`` tiles are the whole blocks, in order (tile ``t``
    starts at ``4 dl (t // dl) + t % dl``, ``masks`` 15); then one tile per
    phase with a leftover, stepped back by ``k dl`` so that its last output is
    the phase's last, bit ``i`` of its mask saying whether it writes output
    ``i``: every output is written by exactly one tile.
    """
    blocks = n_out // (4 * dl)
    t = np.arange(blocks * dl)
    starts = [4 * dl * (t // dl) + t % dl]
    masks = [np.full(blocks * dl, 15)]
    for r in range(dl):
        first = 4 * dl * blocks + r  # the phase's first output past the blocks
        left = len(range(first, n_out, dl))  # 0 to 3
        if left:
            starts.append(np.array([first - (4 - left) * dl]))
            masks.append(np.array([(15 << (4 - left)) & 15]))
    return (np.concatenate(starts).astype(np.int64), np.concatenate(masks).astype(np.int64),
            blocks)


class TilePlan(NamedTuple):
    """How :func:`winograd1d_conv` cuts an output axis into tiles and jobs."""

    starts: np.ndarray  # first output of each tile
    masks: np.ndarray  # which of its 4 outputs each tile writes (bits)
    nfull: int  # tiles in whole blocks (the first ones)
    seg: int  # tiles per job
    width: int  # columns of a job's slab, at most
    compact: bool  # whether the slab holds each tile's samples as runs (a wide dilation)


#: plans of axes up to this many outputs are cached (their tables take 4 bytes an output:
#: longer signals' would stay alive in the cache)
_CACHED_OUTPUTS = 1 << 20


def tile_plan(n_out: int, dl: int, cin: int, cout: int, itemsize: int) -> TilePlan:
    """:func:`_tile_plan`, cached for axes of up to ``_CACHED_OUTPUTS`` outputs."""
    if n_out <= _CACHED_OUTPUTS:
        return _cached_plan(n_out, dl, cin, cout, itemsize)
    return _tile_plan(n_out, dl, cin, cout, itemsize)


def _tile_plan(n_out: int, dl: int, cin: int, cout: int, itemsize: int) -> TilePlan:
    """The tiles of :func:`axis_tiles` and jobs of whole blocks (``dl`` tiles) where they fit.

    A job's slab holds its virtual columns from the first sample to the last,
    or with a dilation wide against the job only the ``6 * seg`` columns its
    tiles read (:func:`job_inputs`): the working memory stays ``O(seg * C_in)``
    whatever the dilation.
    """
    starts, masks, blocks = axis_tiles(n_out, dl)
    fit = max(MR, min(_MAX_TILES, _JOB_BYTES // (6 * (cin + cout) * itemsize)))
    seg = max(1, fit // dl) * dl if dl <= fit else fit
    seg = min(seg, len(starts))
    cuts = np.arange(0, len(starts), seg)
    span = np.maximum.reduceat(starts, cuts) - np.minimum.reduceat(starts, cuts)
    width = int(span.max()) + 5 * dl + 1  # from a job's first sample to its last
    compact = 6 * seg < width
    return TilePlan(starts, masks, blocks * dl, seg, 6 * seg if compact else width, compact)


_cached_plan = functools.lru_cache(maxsize=64)(_tile_plan)


def transformed_weights(w: np.ndarray) -> np.ndarray:
    """``U_xi = G g`` as micro-kernel panels, ``(6 * npan, C_in, NR)``, panel ``xi * npan + q``.

    ``w`` is ``(C_out, C_in, 3)`` in any strides; the products are formed in
    float64 and rounded once to ``w``'s dtype.
    """
    vl = lanes(w.dtype)
    nr = vl if w.shape[0] <= vl else 2 * vl
    return transformed_panels(_G, w, nr).astype(w.dtype)


def transformed_rows(w: np.ndarray) -> np.ndarray:
    """``U_xi^T = (G g)^T`` as the rows of the products, ``(6 * C_out, C_in)``.

    Row ``xi * C_out + co`` is ``U_xi[:, co]``. ``w`` is ``(C_out, C_in,
    3)`` in any strides; the products are formed in float64 and rounded once
    to ``w``'s dtype.
    """
    cout, cin = w.shape[:2]
    ut = np.einsum("xk,ock->xoc", _G, w.astype(np.float64)).reshape(6 * cout, cin)
    return ut.astype(w.dtype)


def usable(tab: Tables, groups: int, cin: int, cout: int) -> bool:
    """Whether :func:`winograd1d_conv` takes this window.

    1-D, 3 taps at stride 1, one group, at least ``4 * dilation`` outputs,
    and at least 64 input and 32 output channels: with fewer, the products'
    reduction is too short and the implicit GEMM is as fast or faster
    (``(16, 48, 8000) -> 48``: 6.4 ms both; ``-> 16`` from 64 channels: 3.4
    against 3.1 ms; NOTES 66).
    """
    geom = tab.geom
    if not (geom.shape[1] == 1 and groups == 1 and cin >= 64 and cout >= 32):
        return False
    return (int(geom[G_K, 0]) == 3 and int(geom[G_STRIDE, 0]) == 1
            and int(geom[G_OUT, 0]) >= 4 * int(geom[G_DIL, 0]))


# ---------------------------------------------------------------------------
# compiled
# ---------------------------------------------------------------------------


def _const(vty, value):
    """A vector of type ``vty`` with the constant ``value`` in every lane."""
    return ir.Constant(vty, [ir.Constant(vty.element, value)] * vty.count)


def _input_transform(builder, a, const):
    """``B^T`` of the 6 sample vectors ``a``: the 6 transformed vectors (LLVM IR)."""
    p = builder.fsub(a[4], builder.fmul(a[2], const(4.0)))
    q = builder.fsub(a[3], builder.fmul(a[1], const(4.0)))
    u = builder.fsub(a[4], a[2])
    e = builder.fmul(builder.fsub(a[3], a[1]), const(2.0))
    return [builder.fadd(builder.fsub(builder.fmul(a[0], const(4.0)),
                                      builder.fmul(a[2], const(5.0))), a[4]),
            builder.fadd(p, q), builder.fsub(p, q), builder.fadd(u, e), builder.fsub(u, e),
            builder.fadd(builder.fsub(builder.fmul(a[1], const(4.0)),
                                      builder.fmul(a[3], const(5.0))), a[5])]


def _input_codegen(context, builder, sig, args):
    """LLVM IR of :func:`input_tile`: whole vectors, the last one masked."""
    i64 = ir.IntType(64)
    sty, dty = sig.args[0], sig.args[3]
    s0, ss, d0, ds, n_v = (context.cast(builder, args[i], sig.args[i], types.int64)
                           for i in (1, 2, 4, 5, 6))
    mv = masked_vectors(context, builder, sty.dtype)
    sp = builder.gep(context.make_array(sty)(context, builder, args[0]).data, [s0])
    dp = builder.gep(context.make_array(dty)(context, builder, args[3]).data, [d0])

    def const(c):
        return _const(mv.vty, c)

    def body(j, ok):
        a = [mv.read(builder, mv.pointer(builder, sp, builder.add(
            j, builder.mul(ss, ir.Constant(i64, k)))), ok) for k in range(6)]
        for i, o in enumerate(_input_transform(builder, a, const)):
            mv.write(builder, o, mv.pointer(builder, dp, builder.add(
                j, builder.mul(ds, ir.Constant(i64, i)))), ok)

    vector_loop(builder, mv, n_v, body, "wino_in")
    return context.get_dummy_value()


@intrinsic
def input_tile(typingctx, src, s0, ss, dst, d0, ds, n):
    """``B^T`` of one tile: 6 runs of ``n`` from ``src[s0 + j*ss]`` to ``dst[d0 + i*ds]``.

    In explicit vectors, the last one masked: as a Numba loop, its 12
    pointers were more than LLVM's runtime alias checks allow, and it ran
    scalar (3 ms of the 1-D benchmark case's 20).
    """
    return types.none(src, s0, ss, dst, d0, ds, n), _input_codegen


def _tiles_codegen(cs, blocks=0):
    """LLVM IR of :func:`input_tiles` with chunks of ``cs`` lanes (0: gathered), or with
    ``blocks`` (a dilation of 1 or 2) whole blocks' samples picked from 4 vectors."""
    return lambda context, builder, sig, args: _tiles_ir(context, builder, sig, args, cs, blocks)


def _tiles_ir(context, builder, sig, args, cs, blocks):
    i32, i64 = ir.IntType(32), ir.IntType(64)
    sty, oty, dty = sig.args[0], sig.args[2], sig.args[5]
    s0, t0, dl, d0, ds = (context.cast(builder, args[i], sig.args[i], types.int64)
                          for i in (1, 3, 4, 6, 7))
    mv = masked_vectors(context, builder, sty.dtype)
    cs = min(cs, mv.vl)  # (float64: 16 lanes' runs are whole vectors of 8)
    sp = builder.gep(context.make_array(sty)(context, builder, args[0]).data, [s0])
    op = builder.gep(context.make_array(oty)(context, builder, args[2]).data, [t0])
    dp = builder.gep(context.make_array(dty)(context, builder, args[5]).data, [d0])
    size = context.get_abi_sizeof(mv.vty.element)
    a = []
    if blocks:  # lane l's samples 4 dl (l // dl) + l % dl on from the first lane's
        first = builder.sext(builder.load(op), i64)
        pick = ir.Constant(ir.VectorType(i32, mv.vl), [4 * blocks * (lane // blocks) +
                                                        lane % blocks for lane in range(mv.vl)])
        join = ir.Constant(ir.VectorType(i32, 2 * mv.vl), list(range(2 * mv.vl)))
        for k in range(6):
            at = builder.add(first, builder.mul(dl, ir.Constant(i64, k)))
            v = [builder.load(mv.pointer(builder, sp, builder.add(at, ir.Constant(i64, q * mv.vl))),
                              align=size) for q in range(4)]
            a.append(builder.shuffle_vector(builder.shuffle_vector(v[0], v[1], join),
                                            builder.shuffle_vector(v[2], v[3], join), pick))
    elif cs:  # chunks of cs consecutive samples, each from its first lane's offset
        cty = ir.VectorType(mv.vty.element, cs)
        firsts = [builder.sext(builder.load(builder.gep(op, [ir.Constant(i64, g * cs)])), i64)
                  for g in range(mv.vl // cs)]
        for k in range(6):
            kd = builder.mul(dl, ir.Constant(i64, k))
            parts = [builder.load(builder.bitcast(builder.gep(sp, [builder.add(f, kd)]),
                                                  cty.as_pointer()), align=size) for f in firsts]
            while len(parts) > 1:  # concatenated pairwise
                n2 = parts[0].type.count * 2
                parts = [builder.shuffle_vector(parts[i], parts[i + 1], ir.Constant(
                    ir.VectorType(i32, n2), list(range(n2)))) for i in range(0, len(parts), 2)]
            a.append(parts[0])
    else:  # the lanes' sample addresses: base + (offs[t] + k * dl) * size, gathered
        ity, aty = ir.VectorType(i32, mv.vl), ir.VectorType(i64, mv.vl)
        pty = ir.VectorType(mv.vty.element.as_pointer(), mv.vl)
        gather = cgutils.get_or_insert_function(builder.module, ir.FunctionType(
            mv.vty, [pty, i32, ir.VectorType(ir.IntType(1), mv.vl), mv.vty]),
            f"llvm.masked.gather.v{mv.vl}{'f32' if size == 4 else 'f64'}.v{mv.vl}p0")
        every = ir.Constant(ir.VectorType(ir.IntType(1), mv.vl), [1] * mv.vl)
        offs = builder.sext(builder.load(builder.bitcast(op, ity.as_pointer()), align=4), aty)
        addr0 = builder.add(_splat(builder, builder.ptrtoint(sp, i64), aty),
                            builder.mul(offs, _splat(builder, ir.Constant(i64, size), aty)))
        step = builder.mul(dl, ir.Constant(i64, size))
        for k in range(6):
            addr = builder.add(addr0, _splat(builder, builder.mul(step, ir.Constant(i64, k)),
                                             aty))
            a.append(builder.call(gather, [builder.inttoptr(addr, pty), mv.align, every,
                                           mv.zero]))
    for i, o in enumerate(_input_transform(builder, a, lambda c: _const(mv.vty, c))):
        builder.store(o, mv.pointer(builder, dp, builder.mul(ds, ir.Constant(i64, i))),
                      align=size)
    return context.get_dummy_value()


_TILES_DOC = """``B^T`` of a vector of tiles of one channel, the points as vectors of tiles.

Lane ``l`` is tile ``t0 + l``, whose sample ``k < 6`` is ``src[s0 + offs[t0 +
l] + k * dl]`` ({how}); point ``i`` goes to ``dst[d0 + i*ds:]``, a whole
vector. ``offs`` (int32) must hold a vector of valid offsets from ``t0``.
"""


def _tiles_intrinsic(cs: int, blocks: int = 0):
    @intrinsic
    def input_tiles(typingctx, src, s0, offs, t0, dl, dst, d0, ds):
        return types.none(src, s0, offs, t0, dl, dst, d0, ds), _tiles_codegen(cs, blocks)

    if blocks:
        how = (f"whole blocks of a dilation of {blocks}: picked from the 4 vectors from lane "
               "0's offset, the others unread")
    else:
        how = f"runs of {cs} lanes with consecutive offsets, loaded whole" if cs else "gathered"
    input_tiles.__doc__ = _TILES_DOC.format(how=how)
    return input_tiles


input_tiles = _tiles_intrinsic(0)
input_tiles_dil1 = _tiles_intrinsic(0, 1)
input_tiles_dil2 = _tiles_intrinsic(0, 2)
input_tiles4 = _tiles_intrinsic(4)
input_tiles8 = _tiles_intrinsic(8)
input_tiles16 = _tiles_intrinsic(16)


@njit(**CALLED)
def job_inputs_cf(xn, geom, maps, st, j0, nj, nfull, slab, wr, offs, vt, rowst, ncp, zero):
    """``V_xi^T`` (``vt`` ``(6, ncp, rowst)``) of tiles ``j0 .. j0 + nj`` from channel-first
    virtual columns: no transposes (NOTES 73).

    ``slab`` gets each channel's virtual samples from the job's first to its
    last, ``wr`` a channel; ``offs`` (int32, ``nj`` rounded up to a vector)
    the tiles' first samples in it, the last repeated past ``nj``.
    """
    nc = xn.shape[0]
    dl = geom[G_DIL, 0]
    vl = VECTOR_BYTES // slab.itemsize
    col0 = st[j0]
    for j in range(j0, j0 + nj):
        col0 = min(col0, st[j])
    phase_segment(xn, 0, nc, geom, maps, col0, 1, wr, slab, zero)
    for t in range(nj):
        offs[t] = st[j0 + t] - col0
    for t in range(nj, (nj + vl - 1) // vl * vl):
        offs[t] = offs[nj - 1]
    # vectors of tiles in whole blocks (when the job starts a block: blocks of dl tiles from
    # its first) read their samples in runs of gcd(dl, vl) consecutive ones, loaded whole
    # when 4 or more, picked from 4 vectors at dilations 1 and 2, else gathered (NOTES 73)
    cs = vl
    while dl % cs:
        cs //= 2
    kind = dl if dl <= 2 else (cs if cs >= 4 else 0)
    if j0 % dl:  # (a job starting inside a block, whose runs could straddle two: the plans
        kind = 0  # give those jobs compact slabs, which this function does not take)
    whole = max(0, min(nj, nfull - j0)) // vl * vl  # tiles in vectors of whole blocks
    ds = ncp * rowst
    for c in range(nc):
        for t0 in range(0, nj, vl):
            s0 = c * wr
            d0 = c * rowst + t0
            if t0 >= whole or kind == 0:
                input_tiles(slab, s0, offs, t0, dl, vt, d0, ds)
            elif kind == 1:
                input_tiles_dil1(slab, s0, offs, t0, dl, vt, d0, ds)
            elif kind == 2:
                input_tiles_dil2(slab, s0, offs, t0, dl, vt, d0, ds)
            elif kind == 4:
                input_tiles4(slab, s0, offs, t0, dl, vt, d0, ds)
            elif kind == 8:
                input_tiles8(slab, s0, offs, t0, dl, vt, d0, ds)
            else:
                input_tiles16(slab, s0, offs, t0, dl, vt, d0, ds)


@njit(**CALLED)
def job_inputs(xn, vrow, geom, maps, st, j0, nj, compact, slab, cols, v, rows, zero):
    """``V[xi, t, :]`` (``v`` flat ``(6, rows, C_in)``) of tiles ``j0 .. j0 + nj``.

    The virtual columns they read are left in ``slab``, channels-last: tile
    ``t``'s samples at columns ``cols[t, 0] + j * cols[t, 1]``, ``j < 6``. One
    range of columns from the first sample to the last, or with ``compact``
    (a dilation wide against the job) 6 runs for each run of consecutive
    starts, so the slab holds ``6 * nj`` columns whatever the dilation.
    """
    nc = xn.shape[0]
    dl = geom[G_DIL, 0]
    if compact:
        base = 0
        t0 = 0
        while t0 < nj:
            n = 1
            while t0 + n < nj and st[j0 + t0 + n] == st[j0 + t0] + n:
                n += 1
            s = st[j0 + t0]
            for j in range(6):
                virtual_cols_cl(xn, vrow, geom, maps, np.int64(0), nc, s + j * dl, s + j * dl + n,
                                slab[(base + j * n) * nc:(base + (j + 1) * n) * nc], zero)
            for i in range(n):
                cols[t0 + i, 0] = base + i
                cols[t0 + i, 1] = n
            base += 6 * n
            t0 += n
    else:
        col0 = st[j0]
        col1 = st[j0]
        for j in range(j0, j0 + nj):
            col0 = min(col0, st[j])
            col1 = max(col1, st[j])
        virtual_cols_cl(xn, vrow, geom, maps, np.int64(0), nc, col0, col1 + 5 * dl + 1, slab,
                        zero)
        for t in range(nj):
            cols[t, 0] = st[j0 + t] - col0
            cols[t, 1] = dl
    for t in range(nj):
        input_tile(slab, cols[t, 0] * nc, cols[t, 1] * nc, v, t * nc, rows * nc, nc)


def _interleave_masks(vl: int, g: int) -> list[list[int]]:
    """Per output vector ``k < 4`` of a run of ``vl`` tiles, its lanes' sources in ``[y0, y1,
    y2, y3]`` (``i * vl + t``) when the tiles' outputs interleave by runs of ``g < vl``."""
    masks = []
    for k in range(4):
        lane = []
        for p in range(k * vl, (k + 1) * vl):
            rem = p % (4 * g)
            lane.append(rem // g * vl + p // (4 * g) * g + rem % g)
        masks.append(lane)
    return masks


def _outputs_codegen(g: int):
    """LLVM IR of the ``output_vectors`` intrinsics (``g`` 0: tiles inside one block)."""

    def codegen(context, builder, sig, args):
        i64 = ir.IntType(64)
        mty, dty = sig.args[0], sig.args[3]
        m_off, ms, d_off, n_v, dl, mask = (context.cast(builder, args[i], sig.args[i],
                                                        types.int64) for i in (1, 2, 4, 5, 6, 8))
        fty = context.get_value_type(mty.dtype)
        size = context.get_abi_sizeof(fty)
        vl = VECTOR_BYTES // size
        vty = ir.VectorType(fty, vl)
        mp = builder.gep(context.make_array(mty)(context, builder, args[0]).data, [m_off])
        dp = builder.gep(context.make_array(dty)(context, builder, args[3]).data, [d_off])
        bvec = _splat(builder, context.cast(builder, args[7], sig.args[7], mty.dtype), vty)

        def const(c):
            return _const(vty, c)

        def store(vec, off):
            builder.store(vec, builder.bitcast(builder.gep(dp, [off]), vty.as_pointer()),
                          align=size)

        zero = _const(vty, 0.0)
        acc = cgutils.alloca_once_value(builder, zero)  # t - t summed: NaN once non-finite

        def body(j):
            m = [builder.load(builder.bitcast(
                builder.gep(mp, [builder.add(j, builder.mul(ms, ir.Constant(i64, xi)))]),
                vty.as_pointer()), align=size) for xi in range(6)]
            s1 = builder.fadd(m[1], m[2])
            d1 = builder.fsub(m[1], m[2])
            s3 = builder.fadd(m[3], m[4])
            d3 = builder.fsub(m[3], m[4])
            y = [builder.fadd(builder.fadd(builder.fadd(m[0], s1), s3), bvec),
                 builder.fadd(builder.fadd(d1, builder.fmul(d3, const(2.0))), bvec),
                 builder.fadd(builder.fadd(s1, builder.fmul(s3, const(4.0))), bvec),
                 builder.fadd(builder.fadd(builder.fadd(d1, builder.fmul(d3, const(8.0))),
                                           m[5]), bvec)]
            t = builder.fadd(builder.fadd(y[0], y[1]), builder.fadd(y[2], y[3]))
            builder.store(builder.fadd(builder.load(acc), builder.fsub(t, t)), acc)
            if g:  # the chunk's 4 vl outputs are contiguous: permute, then 4 stores
                cat = ir.VectorType(ir.IntType(32), 2 * vl)
                y01 = builder.shuffle_vector(y[0], y[1], ir.Constant(cat, list(range(2 * vl))))
                y23 = builder.shuffle_vector(y[2], y[3], ir.Constant(cat, list(range(2 * vl))))
                base = builder.mul(j, ir.Constant(i64, 4))
                for k, lane in enumerate(_interleave_masks(vl, g)):
                    out = builder.shuffle_vector(
                        y01, y23, ir.Constant(ir.VectorType(ir.IntType(32), vl), lane))
                    store(out, builder.add(base, ir.Constant(i64, k * vl)))
            else:  # inside one block: 4 runs of vl, dl apart
                for i in range(4):  # only the outputs bit i of ``mask`` gives the tiles
                    own = builder.icmp_unsigned("!=", builder.and_(mask, ir.Constant(i64, 1 << i)),
                                                ir.Constant(i64, 0))
                    with builder.if_then(own):
                        store(y[i], builder.add(j, builder.mul(dl, ir.Constant(i64, i))))

        counted_loop(builder, n_v, vl, body, "wino_out")
        bad = builder.fcmp_unordered("!=", builder.load(acc), zero)
        return builder.icmp_unsigned("!=", builder.bitcast(bad, ir.IntType(vl)),
                                     ir.Constant(ir.IntType(vl), 0))

    return codegen


def _outputs_intrinsic(g: int):
    @intrinsic
    def output_vectors(typingctx, m, m_off, ms, dst, d_off, n, dl, b, mask):
        sig = types.boolean(m, m_off, ms, dst, d_off, n, dl, b, mask)
        return sig, _outputs_codegen(g)

    output_vectors.__doc__ = OUTPUT_VECTORS_DOC
    return output_vectors


OUTPUT_VECTORS_DOC = """``A^T`` of whole blocks in explicit vectors, plus ``b``; returns whether an
output is inf or NaN (or an overflow made one).

Tiles ``t < n`` (``n`` a multiple of the vector width ``vl``) with products
``m[m_off + xi*ms + t]``; tile ``t`` writes ``dst[d_off + 4 dl (t // dl) + t %
dl + i dl]``, ``i < 4``. A run of ``vl`` tiles is transformed as 6 vectors in,
4 out. The forms for ``dl`` = 1, 2, 4, 8 (below ``vl``) permute the 4 into
the run's ``4 vl`` contiguous outputs (``mask`` must be 15); the wide form,
for tiles inside one block (``n <= dl``), stores them as they are, ``dl``
apart, those of output ``i`` only where bit ``i`` of ``mask`` is set. The
check covers all 4 outputs of each tile.
"""

#: the output transform by runs of ``dl`` = 1, 2, 4, 8 outputs, and inside one block
output_vectors1 = _outputs_intrinsic(1)
output_vectors2 = _outputs_intrinsic(2)
output_vectors4 = _outputs_intrinsic(4)
output_vectors8 = _outputs_intrinsic(8)
output_vectors_wide = _outputs_intrinsic(0)


@njit(**HELPER)
def output_rest(m0, m1, m2, m3, m4, m5, t0, n, i, o, b):
    """Output ``i`` (``A^T``'s row ``i``) of tiles ``t0 .. t0 + n`` into ``o[:n]``, + ``b``: the
    scalar remainder of the vector forms."""
    for r in range(n):
        t = t0 + r
        if i == 0:
            o[r] = m0[t] + m1[t] + m2[t] + m3[t] + m4[t] + b
        elif i == 1:
            o[r] = m1[t] - m2[t] + 2 * (m3[t] - m4[t]) + b
        elif i == 2:
            o[r] = m1[t] + m2[t] + 4 * (m3[t] + m4[t]) + b
        else:
            o[r] = m1[t] - m2[t] + 8 * (m3[t] - m4[t]) + m5[t] + b


@njit(**HELPER)
def output_blocks(m0, m1, m2, m3, m4, m5, dst, nb, dl, b):
    """:func:`output_rest` of ``nb`` whole blocks of ``dl`` tiles into ``dst`` (``4 dl nb``
    outputs): tile ``t`` of block ``k`` writes ``dst[4 dl k + t + i dl]``."""
    for k in range(nb):
        for i in range(4):
            o0 = 4 * dl * k + i * dl
            output_rest(m0, m1, m2, m3, m4, m5, k * dl, dl, i, dst[o0:o0 + dl], b)


@njit(**HELPER)
def not_finite(run):
    """Whether ``run`` holds an inf or a NaN (a scalar loop: for the short runs)."""
    for v in run:
        if v - v != 0:  # NaN for an inf or a NaN
            return True
    return False


@njit(**CALLED)
def point_products_rows(v, vt, ut, koff, zb, mm, cnt, rows, rowst, ncp):
    """``mm[xi, co, t] = sum_c U_xi[c, co] V[xi, t, c]`` for the ``cnt`` tiles of a job.

    ``v`` is ``(6, rows, C_in)`` flat, as :func:`job_inputs` left it (and
    readable ``vl`` rows past its end); it is transposed into ``vt`` ``(6,
    ncp, rowst)`` (``ncp`` the channels to whole vectors, ``rowst`` the tiles
    to whole panels) in square register blocks, so that the products run with
    the output channels as the micro-kernel's rows (``ut`` from
    :func:`transformed_rows`) and the job's tiles as its panel, read in
    place (``koff[c] = c * rowst``), and store their sums untransposed into
    ``mm`` ``(6, C_out, rows)``: at 64 channels the transposing store of the
    other form took a quarter of each product (NOTES 72). ``zb`` is ``MR``
    zeros.
    """
    nc = koff.shape[0]
    vl = VECTOR_BYTES // v.itemsize
    for xi in range(6):
        for t0 in range(0, cnt, vl):
            for c0 in range(0, nc, vl):
                transpose_block(v, (xi * rows + t0) * nc + c0, nc, vt, (xi * ncp + c0) * rowst + t0,
                                rowst)
    products_rows(vt, ut, koff, zb, mm, cnt, rows, rowst, ncp)


@njit(**CALLED)
def products_rows(vt, ut, koff, zb, mm, cnt, rows, rowst, ncp):
    """The products of :func:`point_products_rows` from ``vt`` as it is."""
    nc = koff.shape[0]
    cout = ut.shape[0] // 6
    nr = 2 * (VECTOR_BYTES // vt.itemsize)
    for xi in range(6):
        for co in range(0, cout, MR):
            nrow = min(MR, cout - co)
            for q0 in range(0, cnt, nr):
                ncol = min(nr, cnt - q0)
                b = vt[xi * ncp * rowst + q0:]
                o_off = (xi * cout + co) * rows + q0
                if 2 * ncol > nr:
                    tap_block2(ut, (xi * cout + co) * nc, nc, b, koff, nc, zb, mm, o_off, rows,
                               nrow, ncol)
                else:  # a narrow last panel of one vector
                    tap_block1(ut, (xi * cout + co) * nc, nc, b, koff, nc, zb, mm, o_off, rows,
                               nrow, ncol)


@njit(**CALLED)
def job_outputs(mm, orow, bias, rows, st, mk, j0, nj, nfull, dl, act):
    """``A^T`` of the job's products (``mm`` flat ``(6, C_out, rows)``) into ``orow``
    ``(C_out, L_out)``, with the bias and the activation.

    The first ``nfull`` tiles own all their outputs. For dilations 1, 2, 4
    and 8 they are whole blocks from the first, permuted in vectors. The
    other tiles go by runs of consecutive starts and the same mask (a block or
    part of one, or stepped-back tiles), whose runs of outputs are stored in
    vectors where at least a vector long. Returns whether
    an output came out inf or NaN, at once: the transforms mix 6 samples, so a
    non-finite sample (or an overflow) spreads to outputs whose window does
    not hold it, and :func:`job_direct` must redo the job.
    """
    cout = orow.shape[0]
    rs = cout * rows
    vl = VECTOR_BYTES // mm.itemsize
    permuted = nfull % dl == 0 and dl < vl and vl % dl == 0
    for co in range(cout):
        r0 = co * rows
        m0 = mm[r0:r0 + nj]
        m1 = mm[r0 + rs:r0 + rs + nj]
        m2 = mm[r0 + 2 * rs:r0 + 2 * rs + nj]
        m3 = mm[r0 + 3 * rs:r0 + 3 * rs + nj]
        m4 = mm[r0 + 4 * rs:r0 + 4 * rs + nj]
        m5 = mm[r0 + 5 * rs:r0 + 5 * rs + nj]
        orc = orow[co]
        b = bias[co]
        if permuted and nfull > 0:
            dst = orc[st[j0]:st[j0] + 4 * nfull]
            nvec = nfull - nfull % vl  # tiles done in whole vectors
            if dl == 1:
                bad = output_vectors1(mm, r0, rs, dst, 0, nvec, dl, b, 15)
            elif dl == 2:
                bad = output_vectors2(mm, r0, rs, dst, 0, nvec, dl, b, 15)
            elif dl == 4:
                bad = output_vectors4(mm, r0, rs, dst, 0, nvec, dl, b, 15)
            else:
                bad = output_vectors8(mm, r0, rs, dst, 0, nvec, dl, b, 15)
            if bad:
                return True
            if nvec < nfull:
                rest = dst[4 * nvec:]
                output_blocks(m0[nvec:], m1[nvec:], m2[nvec:], m3[nvec:], m4[nvec:], m5[nvec:],
                              rest, (nfull - nvec) // dl, dl, b)
                if not_finite(rest):
                    return True
            if act != 0:
                activate_run(dst, act)
            t0 = nfull  # the rest are runs
        else:
            t0 = 0
        while t0 < nj:  # runs of consecutive starts with the same mask (inside one block)
            n = 1
            while (t0 + n < nj and st[j0 + t0 + n] == st[j0 + t0] + n
                   and mk[j0 + t0 + n] == mk[j0 + t0]):
                n += 1
            s = st[j0 + t0]
            m = mk[j0 + t0]
            nvec = n - n % vl  # (a run lies inside one block: n <= dl)
            if output_vectors_wide(mm, r0 + t0, rs, orc, s, nvec, dl, b, m):
                return True
            for i in range(4):
                if (m >> i) & 1:
                    if nvec < n:
                        output_rest(m0, m1, m2, m3, m4, m5, t0 + nvec, n - nvec, i,
                                    orc[s + i * dl + nvec:s + i * dl + n], b)
                        if not_finite(orc[s + i * dl + nvec:s + i * dl + n]):
                            return True
                    if act != 0:
                        activate_run(orc[s + i * dl:s + i * dl + n], act)
            t0 += n
    return False


@njit(**CALLED)
def job_direct(slab, cols, wd, bias, orow, st, mk, j0, nj, dl, act):
    """The job's outputs by direct summation from its virtual columns ``slab``.

    ``cols`` as :func:`job_inputs` left it, ``wd`` the weights ``(C_out, 3,
    C_in)``. For jobs whose transformed outputs were not all finite: the
    results, and where they are inf or NaN, are those of every other path.
    """
    cout, _, nc = wd.shape
    for t in range(nj):
        for i in range(4):
            if (mk[j0 + t] >> i) & 1:
                p = st[j0 + t] + i * dl
                for co in range(cout):
                    acc = bias[co]
                    for k in range(3):  # tap k reads the tile's sample i + k
                        c0 = (cols[t, 0] + (i + k) * cols[t, 1]) * nc
                        row = slab[c0:c0 + nc]
                        wk = wd[co, k]
                        for c in range(nc):
                            acc += wk[c] * row[c]
                    orow[co, p] = acc
                    if act != 0:
                        activate_run(orow[co, p:p + 1], act)


@njit(**PARALLEL)
def winograd1d_conv(x, up, bz, ut, wd, bias, out, geom, maps, starts, masks, nfull, seg, width,
                    compact, act, zero, workers):
    """Convolution of a 3-tap kernel at stride 1 in 1-D by F(4, 3).

    x (N, C_in, L_in); ``up`` the panels of :func:`transformed_weights` and
    ``bz`` a zero bias panel, or when ``up`` is empty ``ut`` the rows of
    :func:`transformed_rows`; ``wd`` the weights ``(C_out, 3, C_in)``; bias
    (C_out,); out (N, C_out, L_out) is written whole.
    ``starts`` to ``compact``: the :class:`TilePlan`. A job is ``seg`` tiles of
    one image.
    """
    nimg, nc, _ = x.shape
    cout = bias.shape[0]
    ntile = starts.shape[0]
    per_img = (ntile + seg - 1) // seg
    rows = (seg + MR - 1) // MR * MR
    njobs = nimg * per_img
    nw = max(min(workers, njobs), 1)
    vrow = virtual_row_table(geom, maps)[0]
    vl = VECTOR_BYTES // x.itemsize
    ncp = (nc + vl - 1) // vl * vl  # channels to whole vectors (the transposed blocks)
    rowst = (seg + 2 * vl - 1) // (2 * vl) * (2 * vl)  # tiles to whole panels
    wr = (width + vl - 1) // vl * vl  # a channel's samples in the channel-first slab
    cf = up.shape[0] == 0 and not compact  # channel-first inputs (NOTES 73)
    slab_all = worker_rows(nw, max(width, wr if cf else 0) * nc, x.dtype, False)
    offs_all = np.empty((nw, seg + vl), dtype=np.int32)
    # (the transposes read whole blocks: up to a vector of tiles past the job's, finite)
    v_all = worker_rows(nw, 6 * rows * nc + vl * nc, x.dtype, True)
    vt_all = worker_rows(nw, 6 * ncp * rowst + 2 * vl if up.shape[0] == 0 else 1, x.dtype, True)
    m_all = worker_rows(nw, 6 * cout * rows, x.dtype, False)
    cols_all = np.empty((nw, seg, 2), dtype=np.int64)
    koff = np.empty(nc, dtype=np.int64)
    for c in range(nc):
        koff[c] = c * rowst
    zb = np.zeros(MR, dtype=x.dtype)
    counts = job_counters(nw)
    for wk in prange(nw):
        slab = slab_all[wk]
        cols = cols_all[wk]
        v = v_all[wk]
        vt = vt_all[wk]
        mm = m_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            nn = job // per_img
            j0 = (job % per_img) * seg
            nj = min(seg, ntile - j0)
            if cf:
                job_inputs_cf(x[nn], geom, maps, starts, j0, nj, nfull, slab, wr, offs_all[wk],
                              vt, rowst, ncp, zero)
                products_rows(vt, ut, koff, zb, mm, nj, rows, rowst, ncp)
            else:
                job_inputs(x[nn], vrow, geom, maps, starts, j0, nj, compact, slab, cols, v, rows,
                           zero)
                if up.shape[0] == 0:
                    point_products_rows(v, vt, ut, koff, zb, mm, nj, rows, rowst, ncp)
                else:
                    point_products(v, up, bz, mm, nj, rows, nc, cout)
            if job_outputs(mm, out[nn], bias, rows, starts, masks, j0, nj,
                           max(0, min(nj, nfull - j0)), geom[G_DIL, 0], act):
                if cf:  # the channels-last columns that the direct sums read
                    job_inputs(x[nn], vrow, geom, maps, starts, j0, nj, compact, slab, cols, v,
                               rows, zero)
                job_direct(slab, cols, wd, bias, out[nn], starts, masks, j0, nj,
                           geom[G_DIL, 0], act)


def winograd1d(x3: np.ndarray, w: np.ndarray, bias: np.ndarray, out3: np.ndarray, tab: Tables,
               act: int, workers: int) -> None:
    """Run :func:`winograd1d_conv`: ``w`` is ``(C_out, C_in, 3)``, any strides.

    Arrays in the compute dtype, ``x3`` ``(N, C_in, L_in)`` and ``out3``
    ``(N, C_out, L_out)`` as in :mod:`numbaconv._core`.
    """
    cout, cin = w.shape[:2]
    if cin < _ROWS_FORM_BELOW:
        ut = transformed_rows(w)
        up = np.empty((0, 1, 1), x3.dtype)
    else:
        up = transformed_weights(w)
        ut = np.empty((0, 1), x3.dtype)
    bz = np.zeros(up.shape[2], x3.dtype)
    plan = tile_plan(int(tab.geom[G_OUT, 0]), int(tab.geom[G_DIL, 0]), cin, cout,
                     x3.dtype.itemsize)
    wd = np.ascontiguousarray(w.transpose(0, 2, 1))
    winograd1d_conv(x3, up, bz, ut, wd, bias, out3, tab.geom, tab.maps, *plan, act,
                    x3.dtype.type(0), workers)
