"""The weight gradient of the Winograd path (:mod:`numbaconv._winograd`).

Per tile the forward computes ``y = A^T [(G g) * (B^T d)]`` along each axis;
its derivative with respect to the taps ``g`` is ``G^T [(A dy) * (B^T d)]``,
summed over tiles. So the weight gradient is, per point ``xi`` of the
transformed tile, one product ``dU_xi (C_out, C_in) = dY_xi (C_out, tiles) @
V_xi (tiles, C_in)`` summed over every tile of every image -- ``4^d`` long
reductions on the micro-kernel, with ``4^d`` multiplications per tile and
channel pair instead of ``2^d 3^d`` -- then ``G^T`` along each axis, once.

``V`` is the forward's input transform (:func:`numbaconv._winograd.job_inputs`,
here in panels of the micro-kernel's width); ``dY`` is ``A`` applied to each
tile's ``grad_output``, counting only the outputs the tile owns, so a
stepped-back tile adds nothing twice. Each worker sums into its own copy of
``dU``; the copies are added at the end (no races).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._config import CALLED, HELPER, PARALLEL
from ._core import padded, virtual_row_table, worker_rows
from ._geometry import G_DIL, G_VLEN, Tables
from ._jobs import job_counters, next_job
from ._microkernel import MR, VECTOR_BYTES, lanes, panel_block1, panel_block2
from ._winograd import (
    _kron_g,
    job_inputs,
    job_rows,
    job_span,
    jobs_per_image,
    kron_rows,
    paired_tiles,
    tile_plan,
)

#: tiles per job: the reduction of each product is this long
_TILES = 128


@njit(**HELPER)
def grad_line(src, s0, ss, dst, d0, ds, n):
    """``A`` along one line: 2 rows of ``n`` from ``src[s0 + j*ss]`` to 4, ``dst[d0 + i*ds]``."""
    a = src[s0:s0 + n]
    b = src[s0 + ss:s0 + ss + n]
    o0 = dst[d0:d0 + n]
    o1 = dst[d0 + ds:d0 + ds + n]
    o2 = dst[d0 + 2 * ds:d0 + 2 * ds + n]
    o3 = dst[d0 + 3 * ds:d0 + 3 * ds + n]
    for i in range(n):
        ai = a[i]
        bi = b[i]
        o0[i] = ai
        o1[i] = ai + bi
        o2[i] = ai - bi
        o3[i] = -bi


@njit(**HELPER)
def grad_last(gc, o0, st, mk, j0, nj, nfull, dl, y, r0, rs, zero):
    """``A`` along the last axis: tiles ``j0 .. j0 + nj`` of one row of tiles, from ``gc``.

    The tiles' outputs start at ``gc[o0 + st[j]]`` (``dl`` apart); an output
    a tile does not own (``mk``) counts as zero; the first ``nfull`` tiles
    are :func:`numbaconv._winograd.paired_tiles`. Writes 4 rows
    ``y[r0 + i*rs + j]``.
    """
    a = y[r0:r0 + nj]
    b = y[r0 + rs:r0 + rs + nj]
    c = y[r0 + 2 * rs:r0 + 2 * rs + nj]
    e = y[r0 + 3 * rs:r0 + 3 * rs + nj]
    src = gc[o0 + st[j0]:o0 + st[j0] + 2 * nfull]  # whole blocks of 2 dl outputs
    if dl == 1:  # interleaved pairs
        for j in range(nfull):
            g0 = src[2 * j]
            g1 = src[2 * j + 1]
            a[j] = g0
            b[j] = g0 + g1
            c[j] = g0 - g1
            e[j] = -g1
    else:
        off = 0  # tile j of a block reads src[j + off] and src[j + off + dl]
        r = 0
        for j in range(nfull):  # one flat loop: short inner loops cost more (NOTES 38)
            g0 = src[j + off]
            g1 = src[j + off + dl]
            a[j] = g0
            b[j] = g0 + g1
            c[j] = g0 - g1
            e[j] = -g1
            r += 1
            if r == dl:
                r = 0
                off += dl
    for j in range(nfull, nj):
        s = st[j0 + j]
        g0 = gc[o0 + s] if mk[j0 + j] & 1 else zero
        g1 = gc[o0 + s + dl] if mk[j0 + j] & 2 else zero
        a[j] = g0
        b[j] = g0 + g1
        c[j] = g0 - g1
        e[j] = -g1


@njit(**CALLED)
def grad_leading(y, d, ld, nt, dst, d0, ds, y1):
    """``A`` along every axis but the last: rows ``2^(d-1) * 4`` of ``y`` to ``4^d``.

    ``y`` rows (``ld`` apart, ``nt`` long) are radix 2 over the leading axes
    and 4 over the last; row ``xi`` of the result goes to ``dst[d0 + xi*ds]``.
    ``y1`` is scratch of ``4^d / 2 * ld``; ``y`` is overwritten for ``d > 2``.
    """
    # before the pass on axis a: radix 2 over the axes up to a (hi over those
    # before it), radix 4 over those after it (lo_n = 4^(d-1-a))
    hi_n = 2 ** (d - 2)
    lo_n = 4
    for step in range(d - 1):
        final = step == d - 2
        for hi in range(hi_n):
            for lo in range(lo_n):
                r_in = (hi * 2 * lo_n + lo) * ld
                r_out = hi * 4 * lo_n + lo
                if final:
                    grad_line(y if step % 2 == 0 else y1, r_in, lo_n * ld, dst,
                              d0 + r_out * ds, lo_n * ds, nt)
                elif step % 2 == 0:
                    grad_line(y, r_in, lo_n * ld, y1, r_out * ld, lo_n * ld, nt)
                else:
                    grad_line(y1, r_in, lo_n * ld, y, r_out * ld, lo_n * ld, nt)
        hi_n //= 2
        lo_n *= 4


@njit(**CALLED)
def job_grads(gn, d, cnt, cpad, y0, y1, dy, ntr, rmk, roo, ooff, st, mk, j0, nj, dl, zero):
    """``dY[xi, co, t]`` of a job's tiles: ``A`` along each axis of their ``grad_output``.

    ``gn`` is one image's ``(C_out, L_out)``; ``dy`` is ``(4^d, cpad, cnt)``
    flat (rows past ``C_out`` stay zero); rows of tiles as
    :func:`numbaconv._winograd.job_rows` described them.
    """
    nlo = ooff.shape[0]
    nfull = paired_tiles(st, mk, j0, nj, dl)
    for co in range(gn.shape[0]):
        gc = gn[co]
        yb = y0 if d > 1 else dy
        r0 = 0 if d > 1 else co * cnt
        rs = cnt if d > 1 else cpad * cnt
        for i in range(ntr):
            for u in range(nlo):
                if (rmk[i] >> u) & 1:
                    grad_last(gc, roo[i] + ooff[u], st, mk, j0, nj, nfull, dl, yb,
                              r0 + 4 * u * rs + i * nj, rs, zero)
                else:  # a row of outputs no tile of this row owns
                    for k in range(4):
                        dst = yb[r0 + (4 * u + k) * rs + i * nj:]
                        for j in range(nj):
                            dst[j] = zero
        if d > 1:
            grad_leading(y0, d, cnt, cnt, dy, co * cnt, cpad * cnt, y1)


@njit(**CALLED)
def grad_products(dy, v, sc, zb, acc, cnt, cpad, cout, nc):
    """``acc[xi, c, co] += sum_t dY[xi, co, t] V[xi, t, c]``: the 4^d reductions of a job.

    ``v`` holds ``V`` in panels of the micro-kernel's width (``zb`` a zero
    bias panel of it), ``sc`` scratch of one ``MR x NR`` block.
    """
    nr = zb.shape[0]
    npc = (nc + nr - 1) // nr
    wide = nr * v.itemsize > VECTOR_BYTES
    for xi in range(acc.shape[0]):
        for q in range(npc):
            b = v[(xi * npc + q) * cnt * nr:(xi * npc + q + 1) * cnt * nr]
            ncol = min(nr, nc - q * nr)
            for c0 in range(0, cout, MR):
                nrow = min(MR, cout - c0)
                if wide:
                    panel_block2(dy, (xi * cpad + c0) * cnt, cnt, b, cnt, zb, sc, 0, MR, nrow,
                                 ncol)
                else:
                    panel_block1(dy, (xi * cpad + c0) * cnt, cnt, b, cnt, zb, sc, 0, MR, nrow,
                                 ncol)
                for j in range(ncol):
                    dst = acc[xi, q * nr + j, c0:c0 + nrow]
                    src = sc[j * MR:j * MR + nrow]
                    for i in range(nrow):
                        dst[i] += src[i]


@njit(**PARALLEL)
def winograd_weight_grad(x, gout, geom, maps, ntax, starts, masks, vrstep, ooff, seg, grp, nr,
                         zero, acc_all):
    """``acc_all[w, xi, ci, co]`` += worker ``w``'s share of ``sum_t dY[xi, co, t] V[xi, t, ci]``.

    x (N, C_in, L_in); gout (N, C_out, L_out); acc_all (workers, 4^d, C_in,
    C_out) zeroed by the caller; ``ntax`` to ``grp``: the
    :class:`numbaconv._winograd.TilePlan`; ``nr`` the panel width (one or two
    vectors).
    """
    nimg, nc, _ = x.shape
    cout = gout.shape[1]
    d = geom.shape[1]
    last = d - 1
    npt = 4**d
    nl = vrstep.shape[0]
    npc = (nc + nr - 1) // nr
    cpad = (cout + MR - 1) // MR * MR
    vl = geom[G_VLEN, last]
    dl = geom[G_DIL, last]
    per_img = jobs_per_image(ntax, seg, grp)
    rows = grp * seg
    nw = acc_all.shape[0]
    vrows = virtual_row_table(geom, maps)
    slab_all = worker_rows(nw, nl * vl * nc, x.dtype, False)
    v_all = worker_rows(nw, npt * npc * rows * nr, x.dtype, True)
    dy_all = worker_rows(nw, npt * cpad * rows, x.dtype, True)
    y_all = np.empty((nw, 2, padded(npt // 2 * rows)), dtype=x.dtype)
    sc_all = worker_rows(nw, nr * MR, x.dtype, True)
    tr_all = np.empty((nw, 3, padded(grp)), dtype=np.int64)
    idx_all = np.zeros((nw, padded(d)), dtype=np.int64)
    zb = np.zeros(nr, dtype=x.dtype)
    njobs = nimg * per_img
    counts = job_counters(nw)
    for wk in prange(nw):
        slab = slab_all[wk]
        v = v_all[wk]
        dy = dy_all[wk]
        y0 = y_all[wk, 0]
        y1 = y_all[wk, 1]
        sc = sc_all[wk]
        rvo = tr_all[wk, 0]
        roo = tr_all[wk, 1]
        rmk = tr_all[wk, 2]
        idx = idx_all[wk]
        acc = acc_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            nn, tr0, ntr, j0, nj = job_span(job, ntax, seg, grp)
            cnt = ntr * nj
            job_rows(geom, ntax, starts, masks, tr0, ntr, idx, rvo, roo, rmk)
            job_inputs(x[nn], geom, maps, vrows, starts[last], j0, nj, ntr, rvo, vrstep, slab,
                       v, 0, cnt, nr, zero)
            job_grads(gout[nn], d, cnt, cpad, y0, y1, dy, ntr, rmk, roo, ooff, starts[last],
                      masks[last], j0, nj, dl, zero)
            grad_products(dy, v, sc, zb, acc, cnt, cpad, cout, nc)


def weight_gradient(x3: np.ndarray, g3: np.ndarray, tab: Tables, workers: int) -> np.ndarray:
    """The weight gradient ``(C_out, C_in, 3, ..., 3)`` of a convolution on the Winograd path.

    ``x3`` ``(N, C_in, L_in)`` and ``g3`` ``(N, C_out, L_out)`` flat over space,
    C-contiguous, in the compute dtype.
    """
    cin, cout = x3.shape[1], g3.shape[1]
    d = tab.geom.shape[1]
    dt = x3.dtype
    vl = lanes(dt)
    nr = vl if cin <= vl else 2 * vl
    acc = np.zeros((workers, 4**d, cin, cout), dt)
    winograd_weight_grad(x3, g3, tab.geom, tab.maps, *tile_plan(tab, _TILES), nr,
                         dt.type(0), acc)
    du = acc.sum(axis=0).reshape(4**d, cin * cout)
    dw = np.empty((3**d, cin * cout), dt)
    kron_rows(np.ascontiguousarray(_kron_g(d, dt).T), du, dw)  # G^T along each axis
    return np.ascontiguousarray(dw.reshape((3**d, cin, cout)).transpose(2, 1, 0)).reshape(
        (cout, cin) + (3,) * d)
