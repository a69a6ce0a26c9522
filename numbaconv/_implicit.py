"""Convolution as an implicit GEMM over a stride-phase plane (no gather, no packing).

Output ``(co, p)`` of image ``n`` is ``sum_k w[co, k] * X[k, p]`` with ``k =
(c, t)`` (input channel, tap) in the order PyTorch stores the weights. Along
the last axis the window of output ``j`` starts at ``j * s`` (``s`` the last
stride), so with each virtual row (padding included, through the maps) stored
as its ``s`` *stride phases* (``row[ph + i*s]`` at ``ph * vls + i``), the
samples that tap ``t`` reads for a run of outputs ``j0 ... j0 + NR - 1`` of
one output row are contiguous: ``plane[rowbase + koff[k] + j0 + j]``, with
``koff[(c, t)]`` the channel's plane, the tap's row, its phase and its shift.

So the micro-kernel reads its panel in place (rows = output channels
straight from the weights, untransposed stores into the NCHW output): no
im2col, no channels-last plane, no transposing epilogue. Its panels are
three vectors on AVX-512 (:func:`vector_block`), each placed on its own, so
that a row's last vector and the next row's first share a block: rows of 32
outputs fill whole blocks, not blocks of two vectors (NOTES 84). This is
the path for windows with many taps and few input channels: a 7x7 stride-2
stem on RGB images, where the tile GEMM's gather copies runs of a few
samples per position, or a 3x3x3 convolution of 16 channels, where
Winograd's products (a reduction of only 16) are bound by their epilogue;
and for the 1-D convolutions at stride 1 that :mod:`numbaconv._winograd1d`
does not take (it is tried first). In 1-D there are no planes: each
job builds the segment of the signal it reads (:func:`phase_segment`, in
L2), for a run of ``_RUN_1D`` blocks of vectors, whose long output rows
stream well.
"""

from __future__ import annotations

import functools

import numpy as np
from numba import njit, prange

from ._activations import activate_run
from ._config import CALLED, HELPER, PARALLEL
from ._core import output_row_table, padded, virtual_plane, virtual_row_table, worker_rows
from ._dtypes import to_kernel
from ._geometry import G_ID0, G_IDN, G_IDSRC, G_MAPOFF, G_OUT, G_STRIDE, G_VLEN, G_VSTR, Tables
from ._jobs import job_counters, next_job
from ._microkernel import (
    BLOCK_VECTORS,
    MR,
    NARROW_ROWS,
    TAP_VECTORS,
    VECTOR_BYTES,
    copy_row,
    lanes,
    tap_block1,
    tap_block2,
    vector_block,
    vector_block_narrow,
)

#: each worker builds the planes of images taking at most this many bytes at a time (at
#: least one image's), then runs their jobs while they are in its L2
_WORKER_PLANE_BYTES = 1024 * 1024
#: a job covers this many blocks of vectors (``TAP_VECTORS`` each) of an image's output rows,
#: one after the other, or up to ``_RUN_MAX`` (:func:`_job_shape`); in 1-D ``_RUN_1D`` of its
#: segment, whose long runs of output stream better
_RUN = 4
_RUN_MAX = 16
_RUN_1D = 16
#: a row job's reduction is split into parts of whole channels when the plane rows it reads
#: take more than this (an L1 data cache): each part's rows then stay in L1 across the blocks
#: of output channels (:func:`_channel_parts`)
_L1_BYTES = 32 * 1024
#: a group's weights of at least this many bytes run in flat mode (:func:`flat_blocks`)
_FLAT_WEIGHT_BYTES = 1024 * 1024
#: whether this CPU has the narrow block (a constant, so that elsewhere it is not compiled)
_NARROW = NARROW_ROWS > 0


def usable(tab: Tables, groups: int, cin: int, cout: int) -> bool:
    """Whether :func:`implicit_conv` takes this window (see the module docstring).

    At least 16 reduction steps, 16 output channels per group and 16 outputs
    along the last axis, and few input channels per group: at most 8, or at
    most 16 at stride 1 (where Winograd's products, with a reduction of only
    ``C_in``, and the tile GEMM's gather are slower; at a stride with 16
    channels the tile GEMM is as fast); in 1-D at stride 1, any number (where
    F(4, 3) does not take the window first).
    """
    geom = tab.geom
    cg, m = cin // groups, cout // groups
    if not (cg * len(tab.voff) >= 16 and m >= 16 and int(geom[G_OUT, -1]) >= 16):
        return False
    unit = bool((geom[G_STRIDE] == 1).all())
    return cg <= 8 or (cg <= 16 and unit) or (unit and geom.shape[1] == 1)


@functools.lru_cache(maxsize=16)
def _offsets(tab: Tables, cg: int) -> tuple[np.ndarray, int, int]:
    geom, voff = tab.geom, tab.voff
    s = int(geom[G_STRIDE, -1])
    vl = int(geom[G_VLEN, -1])
    vls = -(-vl // s)
    nvrow = int(geom[G_VSTR, 0] * geom[G_VLEN, 0]) // vl
    rl = s * vls
    plen = nvrow * rl
    rows, e = voff // vl, voff % vl  # each tap's virtual row and last-axis offset
    toff = rows * rl + (e % s) * vls + e // s
    koff = (np.arange(cg, dtype=np.int64)[:, None] * plen + toff[None, :]).ravel()
    koff.flags.writeable = False
    return koff, vls, plen


@functools.lru_cache(maxsize=16)
def _segment_offsets(tab: Tables, cg: int, vl: int, nvb: int) -> tuple[np.ndarray, int, int]:
    """1-D: ``(koff, svls, segl)`` for a job's segment of ``_RUN_1D`` blocks of ``nvb``
    vectors, stored as its stride phases (``svls`` samples each), the channels ``segl``
    apart."""
    geom, e = tab.geom, tab.voff  # (the taps' offsets along the one axis)
    s = int(geom[G_STRIDE, 0])
    svls = _RUN_1D * nvb * vl + int(e[-1]) // s + 1
    segl = s * svls
    koff = (np.arange(cg, dtype=np.int64)[:, None] * segl
            + ((e % s) * svls + e // s)[None, :]).ravel()
    koff.flags.writeable = False
    return koff, svls, segl


@functools.lru_cache(maxsize=16)
def _channel_parts(tab: Tables, cg: int, itemsize: int, nvb: int, run: int = _RUN) -> int:
    """The reduction steps of a part of a row job's reduction: whole channels, as few parts
    as keep the plane rows a part reads within ``_L1_BYTES``; all ``cg * T`` steps in one
    part when they fit.

    A job's ``run`` blocks of ``nvb`` vectors span ``R`` output rows; channel by channel it
    reads the rows its taps reach from those (consecutive virtual rows at stride 1). conv3d
    (2,16,32,32,32) -> 32: 16 channels of 18 rows of 34 samples, 39 KB: two parts of 8
    channels: 8-12% faster at one thread, no faster at two on Zen 3 (NOTES 116).
    """
    geom, voff = tab.geom, tab.voff
    vl = int(geom[G_VLEN, -1])
    rl = int(geom[G_STRIDE, -1]) * _offsets(tab, cg)[1]  # a virtual row's phases
    vlen = VECTOR_BYTES // itemsize
    nvr = -(-int(geom[G_OUT, -1]) // vlen)  # vectors an output row
    span = -(-run * nvb // nvr) + 1  # output rows a job touches, at most
    rows = np.unique((voff // vl)[:, None] + np.arange(span)[None, :]).size
    per = rows * rl * itemsize  # a channel's
    parts = -(-cg * per // _L1_BYTES)
    return -(-cg // parts) * len(voff)


@functools.lru_cache(maxsize=16)
def _job_shape(tab: Tables, cg: int, itemsize: int, nvb: int) -> tuple[int, int]:
    """``(run, part)`` of the row jobs: blocks of vectors a job, and reduction steps a part
    (:func:`_channel_parts`).

    The longest run, up to ``_RUN_MAX`` blocks, whose plane rows split the reduction in no
    more parts than ``_RUN`` blocks' do. A job reads each block of output channels' weights
    once for all its blocks of vectors, and writes its outputs' rows in longer runs: the 7x7
    stem (8,3,224,224) -> 64 takes 16 blocks, 4-11% faster than 4 at one and two threads;
    conv3d (2,16,32,32,32) -> 32 takes 8, since 16 would split its 16 channels in three
    parts, not two (NOTES 136).
    """
    base = _channel_parts(tab, cg, itemsize, nvb, _RUN)
    run = _RUN_MAX
    while run > _RUN and _channel_parts(tab, cg, itemsize, nvb, run) < base:
        run //= 2
    return run, _channel_parts(tab, cg, itemsize, nvb, run)


def implicit(x3: np.ndarray, w2: np.ndarray, bias: np.ndarray, out3: np.ndarray, groups: int,
             tab: Tables, act: int, workers: int) -> None:
    """Run :func:`implicit_conv`, or :func:`implicit_flat` in flat mode (:func:`flat_blocks`):
    ``w2`` is ``(C_out, C_in / groups * T)`` channel-major.

    Arrays in the compute dtype, ``x3`` and ``out3`` flat over space as in
    :mod:`numbaconv._core`.
    """
    cin = x3.shape[1]
    cg = cin // groups
    flat = flat_blocks(tab, x3.shape[0], groups, w2, workers)
    narrow = flat == 0 and narrow_blocks(w2.shape[0] // groups)
    nvb = BLOCK_VECTORS if narrow else TAP_VECTORS
    if tab.geom.shape[1] == 1:  # 1-D (never flat mode): each job builds the segment it reads,
        # in its worker's zeroed row (the reach past the segment is read)
        vlen = lanes(x3.dtype)
        koff, vls, plen = _segment_offsets(tab, cg, vlen, nvb)
        chunk, part, run = x3.shape[0], len(koff), _RUN_1D
        segs = worker_rows(max(workers, 1), cg * plen + BLOCK_VECTORS * vlen, x3.dtype, True)
    else:
        koff, vls, plen = _offsets(tab, cg)
        per = max(1, _WORKER_PLANE_BYTES // (cin * plen * x3.itemsize))
        chunk = min(x3.shape[0], per * max(workers, 1))
        run, part = (_RUN, len(koff)) if flat else _job_shape(tab, cg, x3.itemsize, nvb)
        segs = None
    w2, zero = to_kernel(w2, x3.dtype), x3.dtype.type(0)
    if flat:
        implicit_flat(x3, w2, bias, out3, groups, tab.geom, tab.maps, koff, vls, plen, chunk,
                      flat, act, zero, workers)
    else:
        implicit_conv(x3, w2, bias, out3, groups, tab.geom, tab.maps, koff, vls, plen, chunk,
                      narrow, part, run, segs, act, zero, workers)


def narrow_blocks(m: int) -> bool:
    """Whether the row jobs take :func:`numbaconv._microkernel.vector_block_narrow` for ``m``
    output channels a group: on AVX2, unless its blocks of ``NARROW_ROWS`` rows would do more
    rows' work than blocks of ``MR`` (18 channels: 20 rows against 18). Its rate per
    multiply-add is at least the wider block's (NOTES 137)."""
    return bool(NARROW_ROWS) and -(-m // NARROW_ROWS) * NARROW_ROWS <= -(-m // MR) * MR


def flat_blocks(tab: Tables, nimg: int, groups: int, w2: np.ndarray, workers: int) -> int:
    """Blocks of ``MR`` output channels per job in flat mode, or 0 for the row jobs.

    Flat mode is taken at stride 1 beyond 1-D when a group's weights ``(C_out /
    groups, K)`` take at least ``_FLAT_WEIGHT_BYTES`` (each row job would read
    them all), or when the last output axis is at most half a vector long
    (a row's panel would be mostly empty). The blocks are shared out to make
    about 4 jobs a worker.
    """
    geom = tab.geom
    m = w2.shape[0] // groups
    narrow = 2 * int(geom[G_OUT, -1]) * w2.itemsize <= VECTOR_BYTES
    if (geom.shape[1] < 2 or not (geom[G_STRIDE] == 1).all()
            or not (narrow or m * w2[0].nbytes >= _FLAT_WEIGHT_BYTES)):
        return 0
    nblk = -(-m // MR)
    want = -(-4 * max(workers, 1) // (nimg * groups))
    return -(-nblk // want)


@njit(**CALLED)
def phase_rows(xc, geom, maps, vrows, s, vls, dst, row, zero):
    """The virtual rows of channel ``xc`` (flat) as stride phases: ``dst[r*s*vls + ph*vls + i]``
    = virtual sample ``ph + i*s`` of row ``r`` (zero past the row's end).

    ``row`` is scratch of at least ``s * vls`` elements.
    """
    if s == 1:  # the rows as they are: one call for the plane (a call a row, 34 samples
        # long in conv3d (2,16,32,32,32), cost more than the copies, NOTES 106)
        virtual_plane(xc, geom, maps, vrows, dst, zero)
        return
    vl = geom[G_VLEN, geom.shape[1] - 1]
    rl = s * vls
    for r in range(vrows.shape[0]):
        d = dst[r * rl:(r + 1) * rl]
        virtual_plane(xc, geom, maps, vrows[r:r + 1], row, zero)
        for j in range(vl, rl):
            row[j] = zero
        for ph in range(s):
            dp = d[ph * vls:(ph + 1) * vls]
            for i in range(vls):
                dp[i] = row[ph + i * s]


@njit(**CALLED)
def phase_segment(xn, c0, cg, geom, maps, v0, s, svls, seg, zero):
    """1-D: virtual samples ``v0 + ph + i*s`` of channels ``c0 ... c0 + cg - 1`` of image
    ``xn`` at ``seg[c*s*svls + ph*svls + i]`` (zero past the axis's end)."""
    vl = geom[G_VLEN, 0]
    ml = geom[G_MAPOFF, 0]
    id0 = geom[G_ID0, 0]
    id1 = id0 + geom[G_IDN, 0]
    segl = s * svls
    for c in range(cg):
        xc = xn[c0 + c]
        for ph in range(s):
            d0 = c * segl + ph * svls
            if s == 1:  # the run that is the input itself as one copy, the rest by the map
                a0 = min(max(id0 - v0, 0), svls)
                a1 = max(min(id1 - v0, svls), a0)
                copy_row(xc, v0 + a0 - id0 + geom[G_IDSRC, 0], seg, d0 + a0, a1 - a0)
                for k in range(a0 + (svls - a1)):  # [0, a0) and [a1, svls)
                    i = k if k < a0 else a1 + (k - a0)
                    m = maps[ml + v0 + i] if v0 + i < vl else -1
                    seg[d0 + i] = xc[m] if m >= 0 else zero
                continue
            for i in range(svls):
                v = v0 + ph + i * s
                m = maps[ml + v] if v < vl else -1
                seg[d0 + i] = xc[m] if m >= 0 else zero


@njit(**CALLED)
def flat_job(w, bias, out, n, r0, r1, kk, src, b0, koff, fpos, frow, rl, olast, scr, act):
    """Output channels ``[r0, r1)`` of image ``n`` over all its flat positions (flat mode).

    Flat position ``f`` is plane offset ``b0 + f``: virtual row ``f // rl``
    from the image's first window's, column ``f % rl``; ``frow`` maps a
    virtual row to its output row, or -1. Each ``MR`` rows of weights stay in
    cache while the micro-kernel sweeps the ``fpos`` positions a panel at a
    time into ``scr`` (``MR x NR``, the bias added), whose outputs (columns
    under ``olast`` of an output row) are then copied to ``out`` with the
    activation.
    """
    nr = 2 * (VECTOR_BYTES // out.itemsize)
    lout = out.shape[2]
    outf = out.reshape(out.size)
    for co in range(r0, r1, MR):
        nrow = min(MR, r1 - co)
        for f0 in range(0, fpos, nr):
            ncol = min(nr, fpos - f0)
            b = src[b0 + f0:]
            if 2 * ncol > nr:
                tap_block2(w, co * kk, kk, b, koff, kk, bias[co:], scr, 0, nr, nrow, ncol)
            else:
                tap_block1(w, co * kk, kk, b, koff, kk, bias[co:], scr, 0, nr, nrow, ncol)
            f = f0
            while f < f0 + ncol:  # the row segments of the panel
                vr = f // rl
                j = f - vr * rl
                seg = min(rl - j, f0 + ncol - f)
                r = frow[vr]
                if r >= 0 and j < olast:
                    cnt = min(seg, olast - j)
                    for q in range(nrow):  # (copy_row: a slice assignment cost ~2 s of
                        # cold compile a dtype, NOTES 82)
                        if act != 0:
                            activate_run(scr[q * nr + f - f0:q * nr + f - f0 + cnt], act)
                        copy_row(scr, q * nr + f - f0, outf,
                                 (n * out.shape[1] + co + q) * lout + r * olast + j, cnt)
                f += seg


@njit(**HELPER)
def build_share(x, n0, nb, wk, nwb, geom, maps, vrows, s, vls, planes, plen, scratch, zero):
    """Worker ``wk`` of ``nwb``'s share of the planes of images ``n0 ... n0 + nb - 1``, every
    channel, as stride phases (:func:`phase_rows`) at ``planes[q * plen:]`` for ``q`` =
    (image - ``n0``, channel); ``scratch`` the worker's row."""
    nc = x.shape[1]
    for q in range(wk * nb * nc // nwb, (wk + 1) * nb * nc // nwb):
        phase_rows(x[n0 + q // nc, q % nc], geom, maps, vrows, s, vls,
                   planes[q * plen:(q + 1) * plen], scratch, zero)


@njit(**CALLED)
def plane_buffers(x, geom, maps, plen, rl, nimg, nr, zero, workers):
    """``(vrows, planes, scratch)``: the virtual rows' table, room for ``nimg`` images'
    planes and one panel's reach of zeros past the last (a row's last vector reads them;
    the planes themselves are written whole by their builders, so only that reach is zeroed
    here: zeroing them all, 5 MB for conv3d (2,16,32,32,32), took a third of the builds),
    and a builder's scratch row a worker."""
    planes = worker_rows(1, nimg * x.shape[1] * plen + nr, x.dtype, False)[0]
    for j in range(planes.shape[0] - nr, planes.shape[0]):
        planes[j] = zero
    scratch = np.empty((max(workers, 1), padded(rl)), dtype=x.dtype)
    return virtual_row_table(geom, maps), planes, scratch


@njit(**PARALLEL)
def implicit_flat(x, w, bias, out, groups, geom, maps, koff, vls, plen, chunk, flat, act, zero,
                  workers):
    """:func:`implicit_conv` in flat mode (at stride 1, not in 1-D): a job is one image, one
    group and ``flat`` blocks of output channels, over all the image's positions
    (:func:`flat_job`): for many channels and few positions, where the row jobs would each
    read all the weights, and for rows of half a vector or less, which would leave most of a
    row's panel empty. The arguments as :func:`implicit_conv`'s. A kernel of its own, so
    that a call in one mode does not compile the other (the row jobs' blocks are most of
    the implicit GEMM's compile time: NOTES 124)."""
    nimg, nc, _ = x.shape
    cout = out.shape[1]
    m = cout // groups
    cg = nc // groups
    kk = w.shape[1]
    last = geom.shape[1] - 1
    s = geom[G_STRIDE, last]
    olast = geom[G_OUT, last]
    nr = BLOCK_VECTORS * (VECTOR_BYTES // x.itemsize)
    vl = geom[G_VLEN, last]
    rl = s * vls
    vrows, planes, scratch = plane_buffers(x, geom, maps, plen, rl, min(chunk, nimg), nr, zero,
                                           workers)
    # virtual row -> output row, the flat positions, the workers' panels
    orows = output_row_table(geom)
    norow = orows.shape[0]
    frow = np.full(plen // rl, -1, dtype=np.int64)
    vr0 = orows[0] // vl
    for r in range(norow):
        frow[orows[r] // vl - vr0] = r
    fpos = (orows[norow - 1] // vl - vr0) * rl + olast
    fscr = worker_rows(max(workers, 1), MR * nr, x.dtype, False)
    ncog = ((m + MR - 1) // MR + flat - 1) // flat  # jobs per image and group
    for n0 in range(0, nimg, chunk):
        nb = min(chunk, nimg - n0)
        nwb = max(min(workers, nb * nc), 1)
        for wk in prange(nwb):  # (as a parallel kernel of its own, ~1.5 s more to compile)
            build_share(x, n0, nb, wk, nwb, geom, maps, vrows, s, vls, planes, plen, scratch[wk],
                        zero)
        njobs = nb * groups * ncog
        nwj = max(min(workers, njobs), 1)
        counts = job_counters(nwj)
        for wk in prange(nwj):
            while True:
                job = next_job(counts, wk, nwj, njobs)
                if job < 0:
                    break
                g = (job // ncog) % groups
                nn = job // (ncog * groups)
                r0 = g * m + (job % ncog) * flat * MR
                flat_job(w, bias, out, n0 + nn, r0, min(g * m + m, r0 + flat * MR), kk,
                         planes, (nn * nc + g * cg) * plen + vr0 * rl, koff, fpos, frow, rl,
                         olast, fscr[wk], act)


@njit(**PARALLEL)
def implicit_conv(x, w, bias, out, groups, geom, maps, koff, vls, plen, chunk, narrow, part, run,
                  segs, act, zero, workers):
    """``out[n, co, p] = act(bias[co] + sum_(c, t) w[co, c*T + t] * x_virtual[n, c, p, t])``.

    x (N, C_in, L_in); w (C_out, C_in/groups * T), C-contiguous; bias (C_out,);
    ``koff``, ``vls``, ``plen`` as :func:`_offsets` (1-D: :func:`_segment_offsets`, and
    ``segs`` a zeroed row a worker for the segments; ``None`` beyond 1-D);
    out (N, C_out, L_out) is written whole. ``chunk`` images have their planes
    built at a time (a multiple of the workers: the jobs are shared out like the
    planes, so each worker reads those it built); then a
    job is one image, one group and ``run`` blocks of ``TAP_VECTORS`` vectors of
    outputs (each vector part of one output row; an image's rows one after the
    other), swept block of output channels by block (with ``narrow``, blocks
    of ``BLOCK_VECTORS`` vectors and ``NARROW_ROWS`` channels:
    :func:`narrow_blocks`), its reduction in parts of ``part`` steps (whole
    channels, :func:`_channel_parts`), each part over all the blocks of
    output channels before the next. Flat mode is :func:`implicit_flat`.
    """
    nimg, nc, _ = x.shape
    cout = out.shape[1]
    lout = out.shape[2]
    m = cout // groups
    cg = nc // groups
    kk = w.shape[1]
    last = geom.shape[1] - 1
    s = geom[G_STRIDE, last]
    olast = geom[G_OUT, last]
    vlen = VECTOR_BYTES // x.itemsize
    nr = BLOCK_VECTORS * vlen  # the widest block's reach
    thin = _NARROW and narrow  # (False where there is no narrow block: never compiled then)
    rb = NARROW_ROWS if thin else MR  # rows and vectors a block
    nvb = BLOCK_VECTORS if thin else TAP_VECTORS
    orows = output_row_table(geom)
    vl = geom[G_VLEN, last]
    rl = s * vls
    norow = orows.shape[0]
    # 1-D (``segs`` the workers' segments, ``vls`` and ``plen`` their layout): no planes. The
    # branches test ``segs is None`` itself, so that Numba prunes the other form's code
    # before typing: each form compiles only its own (NOTES 125)
    vrows, planes, scratch = plane_buffers(x, geom, maps, plen, rl,
                                           min(chunk, nimg) if segs is None else 0, nr, zero,
                                           workers)
    nvr = (olast + vlen - 1) // vlen  # vectors an output row
    nvec = norow * nvr  # an image's, its rows one after the other
    jv = nvb * run  # vectors a job
    nvj = (nvec + jv - 1) // jv  # jobs an image and group
    # a job's blocks' vectors: panel offsets, output offsets (from the group's first channel),
    # columns; and a block's output offsets for one block of channels
    vofs = np.zeros((max(workers, 1), 4, run, 8), dtype=np.int64)
    for n0 in range(0, nimg, chunk):
        nb = min(chunk, nimg - n0)
        if segs is None:
            nwb = max(min(workers, nb * nc), 1)
            for wk in prange(nwb):
                build_share(x, n0, nb, wk, nwb, geom, maps, vrows, s, vls, planes, plen,
                            scratch[wk], zero)
        njobs = nb * groups * nvj
        nwj = max(min(workers, njobs), 1)
        counts = job_counters(nwj)
        for wk in prange(nwj):
            while True:
                job = next_job(counts, wk, nwj, njobs)
                if job < 0:
                    break
                u0 = (job % nvj) * jv
                u1 = min(nvec, u0 + jv)
                g = (job // nvj) % groups
                nn = job // (nvj * groups)
                if segs is None:
                    src = planes
                else:  # one row: the job's segment of it
                    phase_segment(x[n0 + nn], g * cg, cg, geom, maps, u0 * vlen * s, s, vls,
                                  segs[wk], zero)
                    src = segs[wk]
                vo = vofs[wk]
                nub = (u1 - u0 + nvb - 1) // nvb
                # the job's blocks of vectors placed once (whole rows or not, a block's vectors
                # from up to two rows), not again for each block of channels: three divisions
                # a block call (NOTES 108)
                for ib in range(nub):
                    for v in range(nvb):
                        uv = u0 + ib * nvb + v
                        u = min(uv, u1 - 1)  # past the job: the last vector, not stored
                        row = u // nvr
                        cv = (u - row * nvr) * vlen
                        if segs is None:
                            vo[0, ib, v] = (nn * nc + g * cg) * plen + (orows[row] // vl) * rl + cv
                        else:
                            vo[0, ib, v] = cv - u0 * vlen
                        vo[1, ib, v] = ((n0 + nn) * cout + g * m) * lout + row * olast + cv
                        vo[2, ib, v] = min(vlen, olast - cv) if uv < u1 else 0
                oo = vo[3, 0]
                # parts of the reduction outside, then row blocks, the job's vectors inside:
                # one block's weight rows and the part's plane rows both stay in L1
                for k0 in range(0, kk, part):
                    k1 = min(kk, k0 + part)
                    kp = koff[k0:k1]
                    for r0 in range(0, m, rb):
                        co = g * m + r0
                        for ib in range(nub):
                            for v in range(nvb):
                                oo[v] = vo[1, ib, v] + r0 * lout
                            if thin:
                                vector_block_narrow(w, co * kk + k0, kk, src, kp, k1 - k0,
                                                    vo[0, ib], bias[co:], out, oo, lout,
                                                    min(rb, m - r0), vo[2, ib], k0 > 0)
                            else:
                                vector_block(w, co * kk + k0, kk, src, kp, k1 - k0, vo[0, ib],
                                             bias[co:], out, oo, lout, min(rb, m - r0),
                                             vo[2, ib], k0 > 0)
                if act != 0:  # the job's outputs, a run of each row it touches
                    for row in range(u0 // nvr, (u1 - 1) // nvr + 1):
                        c0 = max(u0 - row * nvr, 0) * vlen
                        c1 = min((u1 - row * nvr) * vlen, olast)
                        for co in range(g * m, (g + 1) * m):
                            activate_run(out[n0 + nn, co, row * olast + c0:row * olast + c1], act)
