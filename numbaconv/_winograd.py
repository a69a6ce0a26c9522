"""Winograd's minimal filtering F(2, 3) per axis, for 3-wide kernels at stride 1.

A window of 3 taps slid over 4 samples gives 2 outputs; Winograd's algorithm
computes them with 4 multiplications instead of 6: transform the 4 samples
(``B^T d``), the 3 taps (``G g``), multiply elementwise, transform back
(``A^T m``). Applied along each of the ``d`` axes of a ``3 x ... x 3`` kernel,
a tile of ``2^d`` outputs costs ``4^d`` multiplications per (input channel,
output channel) instead of ``2^d 3^d``: 2.25x fewer in 2-D, 3.4x in 3-D. With
many channels the multiplications are ``4^d`` matrix products, one per point
``xi`` of the transformed tile, ``V_xi (tiles, C_in) @ U_xi (C_in, C_out)``:
exactly the micro-kernel's shape (:mod:`numbaconv._microkernel`).

:func:`winograd_conv` has a job per (image, rows of tiles along the leading
axes, segment of tiles along the last), all in the worker's cache: the input
transform of its tiles (:func:`job_inputs`: the virtual rows they read, built
channels-last by :mod:`numbaconv._core`'s row builder, so every padding mode
is the same code; ``B^T`` along the leading axes on whole rows, along the
last per tile), ``4^d`` micro-kernel products against the transformed weights
(packed once per call, :func:`point_products`), and the output transform with
the bias, the activation and the write-out (:func:`job_outputs`). In 1-D,
F(4, 3) saves more (:mod:`numbaconv._winograd1d`), so :func:`usable` keeps
this path to 2-D and 3-D.
Dilation ``s`` spaces a tile's samples and outputs ``s`` apart. Tiles are
laid out per axis by :func:`axis_tiles`: where an axis has an odd leftover,
the last tile steps back and writes only its second output, so every output
is written by exactly one tile.

The transforms (Lavin and Gray, 2016), exact in binary floating point::

    B^T = [[1, 0, -1, 0], [0, 1, 1, 0], [0, -1, 1, 0], [0, 1, 0, -1]]
    G   = [[1, 0, 0], [1/2, 1/2, 1/2], [1/2, -1/2, 1/2], [0, 0, 1]]
    A^T = [[1, 1, 1, 0], [0, 1, -1, -1]]
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import numba
import numpy as np
from numba import njit, prange

from ._activations import activate_run
from ._config import CALLED, FASTMATH, HELPER, PARALLEL
from ._core import ZERO, next_row, padded, virtual_cols_cl, virtual_row_table, worker_rows
from ._geometry import G_DIL, G_K, G_OUT, G_STRIDE, G_VLEN, G_VSTR, Tables
from ._jobs import job_counters, next_job
from ._microkernel import (
    MR,
    VECTOR_BYTES,
    lanes,
    panel_block1,
    panel_block2,
    transpose_block,
    vector_combination,
)

#: tiles per job (their transforms stay in the worker's L2)
_TILES = 64
#: with weights of ``_BIG_WEIGHTS`` or more, images of at most half this many tiles go
#: several to a job, up to this many tiles (the products then read the transformed weights
#: once for all of them: NOTES 93)
_IMAGE_TILES = 128
#: calls with fewer tiles times points go to the implicit GEMM (:func:`pays_off`), or with
#: fewer than ``_MIN_PRODUCTS_BIG`` when the weights take ``_BIG_WEIGHTS`` bytes or more and
#: a point's transformed weights at most ``_POINT_WEIGHTS`` (they stay in L2)
_MIN_PRODUCTS = 4096
_MIN_PRODUCTS_BIG = 2048
_BIG_WEIGHTS = 1024 * 1024
_POINT_WEIGHTS = 1024 * 1024


def axis_tiles(n_out: int, dil: int) -> tuple[np.ndarray, np.ndarray]:
    """Tiles of one axis of ``n_out >= 2 * dil`` outputs: ``(starts, masks)``.

    A tile at ``s`` covers outputs ``s`` and ``s + dil``; ``masks`` bit 0 or 1
    says whether it writes the first or the second. Tiles start at ``2 * dil *
    b + r`` (``r < dil``); one whose second output would fall past the end
    steps back by ``dil`` and writes only its second output, which no other
    tile covers. With ``dil > 1`` such a tile can start before the tile it
    follows (``n_out = 11``, ``dil = 2``: starts 0, 1, 4, 5, 8, 7), so a run
    of tiles spans its lowest to its highest start, not its first to its last.
    """
    starts, masks = [], []
    for s in range(n_out):
        if (s // dil) % 2:
            continue
        if s + dil < n_out:
            starts.append(s)
            masks.append(3)
        else:
            starts.append(s - dil)
            masks.append(2)
    return np.array(starts, np.int64), np.array(masks, np.int64)


def tile_tables(out_shape: tuple[int, ...], dil: tuple[int, ...]
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ntiles, starts, masks)`` of :func:`axis_tiles` per axis, as ``(d, max)`` tables."""
    per_axis = [axis_tiles(n, s) for n, s in zip(out_shape, dil)]
    width = max(len(st) for st, _ in per_axis)
    starts = np.zeros((len(out_shape), width), np.int64)
    masks = np.zeros((len(out_shape), width), np.int64)
    for a, (st, mk) in enumerate(per_axis):
        starts[a, :len(st)] = st
        masks[a, :len(mk)] = mk
    return np.array([len(st) for st, _ in per_axis], np.int64), starts, masks


@functools.cache
def _kron_g(d: int, dtype: np.dtype) -> np.ndarray:
    """``G`` along each of ``d`` axes as one ``(4^d, 3^d)`` matrix (row-major indices)."""
    g = np.array([[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
    m = np.ones((1, 1))
    for _ in range(d):
        m = np.kron(m, g)
    return m.astype(dtype)


def transformed_weights(w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(U, zero bias)`` panels: ``U_xi = G g G^T`` per point ``xi``, packed per ``xi``.

    ``w`` is ``(C_out, C_in, 3, ..., 3)`` in any strides; ``U`` comes out in
    the layout of :func:`numbaconv._microkernel.pack_panels` of the ``4^d``
    matrices ``(C_out, C_in)``, one group each, so panel ``xi * npan + q``
    holds the output channels ``q * NR ...`` of point ``xi``
    (:func:`transformed_panels`).
    """
    cout, cin = w.shape[:2]
    d = w.ndim - 2
    vl = lanes(w.dtype)
    nr = vl if cout <= vl else 2 * vl
    up = transformed_panels(_kron_g(d, w.dtype), w.reshape(cout, cin, 3**d), nr)
    return up, np.zeros((4**d, nr), w.dtype)


def transformed_panels(m: np.ndarray, w3: np.ndarray, nr: int) -> np.ndarray:
    """``up[xi * npan + q, c, j] = sum_k m[xi, k] * w3[q * NR + j, c, k]``, in ``m``'s dtype.

    ``m`` is ``(points, taps)``, ``w3`` ``(C_out, C_in, taps)`` in any strides;
    output channels past ``C_out`` (a ragged last panel) are zeros; ``nr`` a
    multiple of the vector width of ``m``'s dtype. By :func:`panel_transform`
    (compiled, parallel, not BLAS: NOTES 29), 5-7x faster than the NumPy
    copy into tap panels and :func:`kron_rows` it replaces from 256 channels
    (NOTES 87).
    """
    cout, cin, nk = w3.shape
    npan = -(-cout // nr)
    w2 = np.ascontiguousarray(w3.reshape(cout, cin * nk), m.dtype)
    up = np.empty(m.shape[0] * npan * cin * nr, m.dtype)
    panel_transform(np.ascontiguousarray(m), w2, nk, nr, up, numba.get_num_threads())
    return up.reshape(m.shape[0] * npan, cin, nr)


def pays_off(tab: Tables, nimg: int, cin: int, cout: int, itemsize: int) -> bool:
    """Whether the call has enough tiles for Winograd's weight transform to pay off.

    The transform writes ``4^d / 3^d`` times the weights, whatever the batch:
    with 512 channels it took longer than the products of a batch-1 7x7
    image (NOTES 75). Winograd takes more than ``_MIN_PRODUCTS`` tile-point
    products a channel pair in all (images times tiles per image times
    ``4^d``: 256 tiles in 2-D, 64 in 3-D), or at least ``_MIN_PRODUCTS_BIG``
    when the implicit GEMM would read weights of ``_BIG_WEIGHTS`` or more
    again for every image (flat mode) while a point's transformed weights,
    ``_POINT_WEIGHTS`` at most, stay in L2 for all of a job's images (NOTES
    93: (8,1024,7,7)->1024, 4 MB a point, took 37 ms there against 26); fewer
    go to the implicit GEMM.
    """
    tiles = nimg * math.prod(tile_plan(tab, _TILES).ntax.tolist())
    products = tiles * 4 ** tab.geom.shape[1]
    point = cin * cout * itemsize
    big = point * 3 ** tab.geom.shape[1] >= _BIG_WEIGHTS and point <= _POINT_WEIGHTS
    return products > _MIN_PRODUCTS or (big and products >= _MIN_PRODUCTS_BIG)


def usable(tab: Tables, groups: int, cin: int, cout: int) -> bool:
    """Whether :func:`winograd_conv` applies and pays off for this window.

    Not in 1-D, where F(2, 3) saves only a third of the multiplications and
    the tile GEMM was faster (conv1d ``(16, 64, 16000)``: 47 against 31 ms);
    1-D takes F(4, 3) (:mod:`numbaconv._winograd1d`) or the implicit GEMM.
    """
    geom = tab.geom
    if not (groups == 1 and 2 <= geom.shape[1] <= 3 and cin >= 16 and cout >= 16):
        return False
    k, st, out, dil = (geom[r].tolist() for r in (G_K, G_STRIDE, G_OUT, G_DIL))
    return all(a == 3 and s == 1 and n >= 2 * dl for a, s, n, dl in zip(k, st, out, dil))


# ---------------------------------------------------------------------------
# compiled
# ---------------------------------------------------------------------------


@njit(**PARALLEL)
def panel_transform(m, w2, nk, nr, up, workers):
    """``up[((i * npan + q) * C_in + c) * nr + j] = sum_k m[i, k] * w2[q * nr + j, c * nk + k]``.

    ``w2`` ``(C_out, C_in * nk)`` C-contiguous, ``up`` flat (``npan =
    ceil(C_out / nr)`` panels; channels past ``C_out`` come out zero). A job
    is a vector's worth of output channels (``vl``): their weights are
    transposed in ``vl x vl`` register blocks into the worker's ``(C_in * nk,
    vl)`` buffer (a ragged last group element by element, zeros past
    ``C_out``), then each output vector is one :func:`vector_combination`
    of the rows ``m`` does not zero (skipped, so an inf weight gives NaN only
    where ``m`` mixes it in), in the order of ``k``.
    """
    npt = m.shape[0]
    cout, kt = w2.shape
    cin = kt // nk
    vl = VECTOR_BYTES // w2.itemsize
    npan = (cout + nr - 1) // nr
    ngrp = npan * nr // vl
    wf = w2.reshape(w2.size)
    nz = np.zeros(npt, dtype=np.int64)  # each row of m: its nonzero columns and values
    ks = np.zeros(npt * nk, dtype=np.int64)
    cs = np.zeros(npt * nk, dtype=w2.dtype)
    for i in range(npt):
        for k in range(nk):
            if m[i, k] != 0:
                ks[i * nk + nz[i]] = k
                cs[i * nk + nz[i]] = m[i, k]
                nz[i] += 1
    nw = max(1, min(workers, ngrp))
    kfull = kt - kt % vl
    bufs = np.empty((nw, kt * vl), dtype=w2.dtype)
    for wk in prange(nw):
        t = bufs[wk]
        for g in range(wk * ngrp // nw, (wk + 1) * ngrp // nw):
            nl = min(vl, cout - g * vl)
            if nl == vl:
                for e0 in range(0, kfull, vl):
                    transpose_block(wf, g * vl * kt + e0, kt, t, e0 * vl, vl)
                for e in range(kfull, kt):
                    for lane in range(vl):
                        t[e * vl + lane] = wf[(g * vl + lane) * kt + e]
            else:
                for e in range(kt):
                    for lane in range(vl):
                        t[e * vl + lane] = wf[(g * vl + lane) * kt + e] if lane < nl else 0
            q = g * vl // nr
            j0 = g * vl - q * nr
            for c in range(cin):
                for i in range(npt):
                    vector_combination(t, c * nk * vl, ks, cs, i * nk, nz[i], up,
                                       ((i * npan + q) * cin + c) * nr + j0)


@njit(cache=True, fastmath=FASTMATH)
def kron_rows(m, a, out):
    """``out = m @ a`` for a small ``m``, skipping its zeros.

    By blocks of 1024 columns, so that each block of ``a`` and of ``out`` stays
    in L1 while ``m``'s rows are applied (512-channel weights: 3.6 -> 1.7 ms).
    """
    n = out.shape[1]
    for j0 in range(0, n, 1024):
        j1 = min(n, j0 + 1024)
        for i in range(m.shape[0]):
            o = out[i, j0:j1]
            o[:] = 0
            for k in range(m.shape[1]):
                c = m[i, k]
                if c != 0:
                    r = a[k, j0:j1]
                    for j in range(o.shape[0]):
                        o[j] += c * r[j]


@njit(**HELPER)
def input_line(src, s0, ss, dst, d0, ds, n):
    """``B^T`` along one line: 4 rows of ``n`` from ``src[s0 + j*ss]`` to ``dst[d0 + i*ds]``."""
    a = src[s0:s0 + n]
    b = src[s0 + ss:s0 + ss + n]
    c = src[s0 + 2 * ss:s0 + 2 * ss + n]
    e = src[s0 + 3 * ss:s0 + 3 * ss + n]
    o0 = dst[d0:d0 + n]
    o1 = dst[d0 + ds:d0 + ds + n]
    o2 = dst[d0 + 2 * ds:d0 + 2 * ds + n]
    o3 = dst[d0 + 3 * ds:d0 + 3 * ds + n]
    for i in range(n):
        ai = a[i]
        bi = b[i]
        ci = c[i]
        ei = e[i]
        o0[i] = ai - ci
        o1[i] = bi + ci
        o2[i] = ci - bi
        o3[i] = bi - ei


@njit(**HELPER)
def input_line_inplace(buf, s0, ss, n):
    """:func:`input_line` in place: the 4 rows ``buf[s0 + j*ss]`` replaced by their transform.

    Four distinct slices (not source and destination views of the same rows,
    which would fail LLVM's overlap check and leave the loop scalar).
    """
    a = buf[s0:s0 + n]
    b = buf[s0 + ss:s0 + ss + n]
    c = buf[s0 + 2 * ss:s0 + 2 * ss + n]
    e = buf[s0 + 3 * ss:s0 + 3 * ss + n]
    for i in range(n):
        ai = a[i]
        bi = b[i]
        ci = c[i]
        ei = e[i]
        a[i] = ai - ci
        b[i] = bi + ci
        c[i] = ci - bi
        e[i] = bi - ei


@njit(**HELPER)
def output_line(src, s0, ss, dst, d0, ds, n):
    """``A^T`` along one line: 4 rows of ``n`` from ``src[s0 + j*ss]`` to 2, ``dst[d0 + i*ds]``."""
    a = src[s0:s0 + n]
    b = src[s0 + ss:s0 + ss + n]
    c = src[s0 + 2 * ss:s0 + 2 * ss + n]
    e = src[s0 + 3 * ss:s0 + 3 * ss + n]
    o0 = dst[d0:d0 + n]
    o1 = dst[d0 + ds:d0 + ds + n]
    for i in range(n):
        bi = b[i]
        ci = c[i]
        o0[i] = a[i] + bi + ci
        o1[i] = bi - ci - e[i]


@njit(**CALLED)
def slab_transform(xn, geom, maps, vrows, vr0, vrstep, col0, width, slab, zero):
    """The samples of one row of tiles, transformed by ``B^T`` along every axis but the last.

    Builds the ``4^(d-1)`` virtual rows ``vr0 + vrstep[r]`` of image ``xn``,
    columns ``[col0, col0 + width)``, channels-last into ``slab`` (rows
    ``width * C`` long, row-major over the leading axes' samples), then
    transforms them in place.
    """
    nl = vrstep.shape[0]
    nc = xn.shape[0]
    rl = width * nc
    for r in range(nl):
        virtual_cols_cl(xn, vrows[vr0 + vrstep[r]], geom, maps, ZERO, nc, col0, col0 + width,
                        slab[r * rl:(r + 1) * rl], zero)
    s = nl // 4  # rows between the samples of the axis transformed next
    while s >= 1:
        for ln in range(nl // 4):
            base = (ln // s) * 4 * s + ln % s
            input_line_inplace(slab, base * rl, s * rl, rl)
        s //= 4


@njit(**CALLED)
def output_leading(mm, co, cout, ld, nt, d, y0, y1):
    """``A^T`` along every axis but the last, for channel ``co``; returns the result's buffer.

    ``mm`` is ``(4^d, cout, ld)`` flat with ``nt`` tiles a row; the result has
    ``2^(d-1) * 4`` rows ``ld`` apart, the last axis still untransformed (for
    ``d == 1``, ``mm`` itself). ``y0``, ``y1`` ping-pong scratch of ``4^d / 2 *
    ld`` each.
    """
    if d == 1:
        return mm
    # before the pass on axis a, rows are radix 2 over the axes before a
    # (hi) and radix 4 over a and those after it (lo_n = 4^(d-1-a))
    hi_n = 1
    lo_n = 4 ** (d - 1)
    for step in range(d - 1):
        dst = y0 if step % 2 == 0 else y1
        for hi in range(hi_n):
            for lo in range(lo_n):
                r_in = hi * 4 * lo_n + lo
                r_out = (hi * 2 * lo_n + lo) * ld
                if step == 0:
                    output_line(mm, (r_in * cout + co) * ld, lo_n * cout * ld, dst, r_out,
                                lo_n * ld, nt)
                elif step % 2 == 1:
                    output_line(y0, r_in * ld, lo_n * ld, dst, r_out, lo_n * ld, nt)
                else:
                    output_line(y1, r_in * ld, lo_n * ld, dst, r_out, lo_n * ld, nt)
        hi_n *= 2
        lo_n //= 4
    return y0 if d % 2 == 0 else y1


@njit(**HELPER)
def paired_tiles(st, mk, j0, nj, dl):
    """How many of tiles ``j0 .. j0 + nj`` (from the first) own both outputs, in whole blocks.

    A block is ``dl`` tiles with consecutive starts ``s .. s + dl - 1`` (``s`` a
    multiple of ``2 dl``): their outputs are the ``2 dl`` contiguous outputs
    from ``s``, first the tiles' first outputs, then their second (for
    ``dl == 1``, interleaved pairs). The fast path of :func:`output_last` and
    ``_winograd_grad.grad_last``; 0 when the layout does not apply.
    """
    nfull = nj
    while nfull > 0 and mk[j0 + nfull - 1] != 3:
        nfull -= 1
    nfull -= nfull % dl
    if (nfull > 0 and st[j0] % dl == 0
            and st[j0 + nfull - 1] - st[j0] == 2 * dl * (nfull // dl - 1) + dl - 1):
        return nfull
    return 0


@njit(**HELPER)
def output_last(y, r0, rs, oc, o0, st, mk, j0, nj, nfull, dl, b, act):
    """``A^T`` along the last axis into the output, plus bias and activation.

    Tiles ``j0 .. j0 + nj`` of one row of tiles: their 4 rows of sums
    ``y[r0 + i*rs + j]``; outputs from ``oc[o0]`` at the last axis' tile
    starts ``st`` with write masks ``mk``; the first ``nfull`` tiles are
    :func:`paired_tiles`.
    """
    a = y[r0:r0 + nj]
    bb = y[r0 + rs:r0 + rs + nj]
    c = y[r0 + 2 * rs:r0 + 2 * rs + nj]
    e = y[r0 + 3 * rs:r0 + 3 * rs + nj]
    dst = oc[o0 + st[j0]:o0 + st[j0] + 2 * nfull]  # whole blocks of 2 dl outputs
    if dl == 1:  # interleaved pairs
        for j in range(nfull):
            bj = bb[j]
            cj = c[j]
            dst[2 * j] = a[j] + bj + cj + b
            dst[2 * j + 1] = bj - cj - e[j] + b
    else:
        off = 0  # tile j of a block writes dst[j + off] and dst[j + off + dl]
        r = 0
        for j in range(nfull):  # one flat loop: short inner loops cost more (NOTES 38)
            bj = bb[j]
            cj = c[j]
            dst[j + off] = a[j] + bj + cj + b
            dst[j + off + dl] = bj - cj - e[j] + b
            r += 1
            if r == dl:
                r = 0
                off += dl
    if act != 0:
        activate_run(dst, act)
    base = oc[o0:]  # a view, with each tile's own start (one stepped back starts before the
    sj = st[j0:j0 + nj]  # tile it follows: ``axis_tiles``)
    mj = mk[j0:j0 + nj]
    for j in range(nfull, nj):
        bj = bb[j]
        cj = c[j]
        s = sj[j]
        if mj[j] & 1:  # (activated through one-element runs: no scalar form to compile)
            base[s] = a[j] + bj + cj + b
            if act != 0:
                activate_run(base[s:s + 1], act)
        if mj[j] & 2:
            base[s + dl] = bj - cj - e[j] + b
            if act != 0:
                activate_run(base[s + dl:s + dl + 1], act)


@njit(**CALLED)
def jobs_per_image(ntax, seg, grp):
    """Jobs of ``grp`` rows of tiles times ``seg`` tiles of the last axis, per image."""
    last = ntax.shape[0] - 1
    nrow_t = 1
    for a in range(last):
        nrow_t *= ntax[a]
    return (nrow_t + grp - 1) // grp * ((ntax[last] + seg - 1) // seg)


@njit(**CALLED)
def job_span(job, ntax, seg, grp):
    """``(image, first row of tiles, rows, first tile of the last axis, tiles)`` of a job."""
    last = ntax.shape[0] - 1
    nrow_t = 1
    for a in range(last):
        nrow_t *= ntax[a]
    nseg = (ntax[last] + seg - 1) // seg
    per_img = (nrow_t + grp - 1) // grp * nseg
    tr0 = (job % per_img) // nseg * grp
    j0 = (job % nseg) * seg
    return job // per_img, tr0, min(grp, nrow_t - tr0), j0, min(seg, ntax[last] - j0)


@njit(**CALLED)
def job_rows(geom, ntax, starts, masks, tr0, ntr, idx, rvo, roo, rmk):
    """Rows of tiles ``tr0 .. tr0 + ntr``: virtual row offset, output offset, rows of outputs.

    ``rvo[i]``, ``roo[i]`` are the offsets of row ``i``'s first samples and
    outputs along the leading axes (the last axis' start excluded); bit ``u``
    of ``rmk[i]`` says whether its tiles own their ``u``-th row of outputs
    (row-major over the leading axes). ``idx`` is scratch of ``d``.
    """
    last = geom.shape[1] - 1
    nlo = 1 << last
    q = tr0
    for a in range(last - 1, -1, -1):
        idx[a] = q % ntax[a]
        q //= ntax[a]
    for i in range(ntr):
        vo = 0
        oo = 0
        ostride = geom[G_OUT, last]
        mk = (1 << nlo) - 1
        for a in range(last - 1, -1, -1):
            s = starts[a, idx[a]]
            vo += s * geom[G_VSTR, a]
            oo += s * ostride
            ostride *= geom[G_OUT, a]
            half = masks[a, idx[a]]
            if half != 3:  # the tile owns one of its two outputs on axis a
                bit = 1 << (last - 1 - a)
                for u in range(nlo):
                    if ((u & bit) != 0) != (half == 2):
                        mk &= ~(1 << u)
        rvo[i] = vo
        roo[i] = oo
        rmk[i] = mk
        next_row(ntax, idx, last)


@njit(**CALLED)
def job_inputs(xn, geom, maps, vrows, st, j0, nj, ntr, rvo, vrstep, slab, v, t0, rows, pw, zero):
    """The input transform of a job's tiles: ``V[xi, q, t, :]`` in panels of ``pw`` channels.

    Tile ``t = t0 + i * nj + j`` is tile ``j0 + j`` (starts ``st``) of row ``i``; row
    ``(xi * npc + q) * rows + t`` of ``v`` (rows ``pw`` long, ``npc`` panels)
    holds channels ``q * pw ...`` of point ``xi``; columns past the last
    channel are not written.
    """
    nc = xn.shape[0]
    last = geom.shape[1] - 1
    nl = vrstep.shape[0]
    npc = (nc + pw - 1) // pw
    dl = geom[G_DIL, last]
    vl = geom[G_VLEN, last]
    col0 = st[j0]  # the job's lowest and highest tile starts: a tile stepped back at the
    hi = st[j0]  # axis's end starts before the one it follows (``axis_tiles``)
    for j in range(1, nj):
        col0 = min(col0, st[j0 + j])
        hi = max(hi, st[j0 + j])
    width = hi + 3 * dl + 1 - col0
    rl = width * nc
    for i in range(ntr):
        slab_transform(xn, geom, maps, vrows, rvo[i] // vl, vrstep, col0, width, slab, zero)
        for j in range(nj):
            col = (st[j0 + j] - col0) * nc
            t = t0 + i * nj + j
            for r in range(nl):
                for q in range(npc):
                    input_line(slab, r * rl + col + q * pw, dl * nc, v,
                               ((4 * r * npc + q) * rows + t) * pw, npc * rows * pw,
                               min(pw, nc - q * pw))


@njit(**CALLED)
def point_products(v, up, bz, mm, cnt, rows, nc, cout):
    """``mm[xi, co, t] = sum_c V[xi, t, c] U[xi, c, co]`` for the ``cnt`` tiles of a job.

    ``v`` is ``(4^d, rows, nc)`` and ``mm`` ``(4^d, cout, rows)``, flat; ``up``
    the weight panels of :func:`transformed_weights`, ``bz`` a zero bias panel.
    """
    nr = up.shape[2]
    npan = (cout + nr - 1) // nr
    npt = up.shape[0] // npan
    wide = nr * v.itemsize > VECTOR_BYTES
    for xi in range(npt):
        for pb in range(0, cnt, MR):
            nrow = min(MR, cnt - pb)
            for pl in range(npan):
                o_off = (xi * cout + pl * nr) * rows + pb
                ncol = min(nr, cout - pl * nr)
                if wide:
                    panel_block2(v, (xi * rows + pb) * nc, nc, up[xi * npan + pl], nc, bz, mm,
                                 o_off, rows, nrow, ncol)
                else:
                    panel_block1(v, (xi * rows + pb) * nc, nc, up[xi * npan + pl], nc, bz, mm,
                                 o_off, rows, nrow, ncol)


@njit(**CALLED)
def job_outputs(mm, orow, bias, cout, rows, cnt, d, y0, y1, ntr, rmk, roo, ooff, st, mk, j0, nj,
                dl, act):
    """The output transform of a job's tiles into ``orow`` ``(C_out, L_out)``, bias and activation.

    ``mm`` as :func:`point_products` wrote it; rows of tiles as :func:`job_rows`
    described them, ``ooff`` the offsets of a tile's rows of outputs, ``st``
    and ``mk`` the last axis' tile starts and masks.
    """
    nlo = ooff.shape[0]
    ystep = cout * rows if d == 1 else rows
    nfull = paired_tiles(st, mk, j0, nj, dl)
    for co in range(cout):
        y = output_leading(mm, co, cout, rows, cnt, d, y0, y1)
        yb = co * rows if d == 1 else 0
        for i in range(ntr):
            for u in range(nlo):
                if (rmk[i] >> u) & 1:
                    output_last(y, yb + 4 * u * ystep + i * nj, ystep, orow[co], roo[i] + ooff[u],
                                st, mk, j0, nj, nfull, dl, bias[co], act)


@njit(**PARALLEL)
def winograd_conv(x, up, bz, bias, out, geom, maps, ntax, starts, masks, vrstep, ooff, seg, grp,
                  imgs, act, zero, workers):
    """Convolution of a ``3 x ... x 3`` kernel at stride 1 by F(2, 3) per axis.

    x (N, C_in, L_in); ``up`` the transformed weights as panels
    (:func:`transformed_weights`), ``bz`` a zero bias panel; bias (C_out,);
    out (N, C_out, L_out) is written whole. ``ntax`` to ``grp``: the
    :class:`TilePlan`. A job is ``grp`` rows of tiles (along the leading axes)
    times ``seg`` tiles of the last axis; it builds the virtual rows it reads
    itself (they stay in cache; no padded copy of the input). With ``imgs >
    1`` (small images: ``grp`` and ``seg`` then cover one) a job is ``imgs``
    whole images, so that each job's products read the transformed weights
    once for all their tiles (NOTES 93).
    """
    nimg, nc, _ = x.shape
    cout = bias.shape[0]
    d = geom.shape[1]
    last = d - 1
    npt = 4**d
    nl = vrstep.shape[0]  # 4^(d-1)
    vl = geom[G_VLEN, last]
    dl = geom[G_DIL, last]
    per_img = jobs_per_image(ntax, seg, grp)  # (1 with imgs > 1)
    njobs = nimg * per_img if imgs == 1 else (nimg + imgs - 1) // imgs
    rows = (grp * seg * imgs + MR - 1) // MR * MR
    nw = max(min(workers, njobs), 1)
    vrows = virtual_row_table(geom, maps)
    slab_all = worker_rows(nw, nl * vl * nc, x.dtype, False)
    v_all = worker_rows(nw, npt * rows * nc, x.dtype, True)
    m_all = worker_rows(nw, npt * cout * rows, x.dtype, False)
    y_all = np.empty((nw, 2, padded(npt // 2 * rows)), dtype=x.dtype)
    tr_all = np.empty((nw, 3, padded(grp)), dtype=np.int64)
    idx_all = np.zeros((nw, padded(d)), dtype=np.int64)
    counts = job_counters(nw)
    for wk in prange(nw):
        slab = slab_all[wk]
        v = v_all[wk]
        mm = m_all[wk]
        rvo = tr_all[wk, 0]
        roo = tr_all[wk, 1]
        rmk = tr_all[wk, 2]
        idx = idx_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            nn, tr0, ntr, j0, nj = job_span(job * imgs, ntax, seg, grp)
            nimj = min(imgs, nimg - nn)
            job_rows(geom, ntax, starts, masks, tr0, ntr, idx, rvo, roo, rmk)
            for k in range(nimj):
                job_inputs(x[nn + k], geom, maps, vrows, starts[last], j0, nj, ntr, rvo, vrstep,
                           slab, v, k * ntr * nj, rows, nc, zero)
            cnt = ntr * nj  # tiles an image
            point_products(v, up, bz, mm, nimj * cnt, rows, nc, cout)
            for k in range(nimj):  # (image k's products from tile k * cnt of each row of mm)
                job_outputs(mm[k * cnt:], out[nn + k], bias, cout, rows, cnt, d, y_all[wk, 0],
                            y_all[wk, 1], ntr, rmk, roo, ooff, starts[last], masks[last], j0, nj,
                            dl, act)


class TilePlan(NamedTuple):
    """How the Winograd kernels cut a window's output into tiles and jobs."""

    ntax: np.ndarray  # tiles per axis
    starts: np.ndarray  # (d, max) first output of each tile, per axis
    masks: np.ndarray  # (d, max) which of its two outputs each tile owns (bits)
    vrstep: np.ndarray  # virtual rows (last axis excluded) of a tile's rows of samples
    ooff: np.ndarray  # output offsets of a tile's 2^(d-1) rows of outputs
    seg: int  # tiles of the last axis per job
    grp: int  # rows of tiles per job


@functools.lru_cache(maxsize=64)
def tile_plan(tab: Tables, tiles: int) -> TilePlan:
    """The tiles of a window's output (:func:`axis_tiles`), about ``tiles`` a job (cached)."""
    geom = tab.geom
    d = geom.shape[1]
    out_shape = tuple(int(n) for n in geom[G_OUT])
    dil = tuple(int(s) for s in geom[G_DIL])
    ntax, starts, masks = tile_tables(out_shape, dil)
    ostr = np.cumprod((1,) + out_shape[:0:-1])[::-1]
    # a tile's rows of samples and of outputs, row-major over the leading axes
    lead = np.array(list(np.ndindex((4,) * (d - 1)))).reshape(4 ** (d - 1), d - 1)
    vrstep = (lead * (geom[G_DIL, :-1] * geom[G_VSTR, :-1] // geom[G_VLEN, -1])).sum(axis=1)
    corners = np.array(list(np.ndindex((2,) * (d - 1)))).reshape(2 ** (d - 1), d - 1)
    ooff = (corners * (np.array(dil[:-1]) * ostr[:-1])).sum(axis=1)
    seg = min(int(ntax[-1]), tiles)
    # rows of tiles per job: about ``tiles`` tiles in all, rounded to the nearest (a
    # 33-tile row makes 66, not 33 padded to 40 micro-kernel rows)
    return TilePlan(ntax, starts, masks, vrstep.astype(np.int64), ooff.astype(np.int64), seg,
                    max(1, round(tiles / seg)))


def winograd(x3: np.ndarray, w: np.ndarray, bias: np.ndarray, out3: np.ndarray, tab: Tables,
             act: int, workers: int) -> None:
    """Run :func:`winograd_conv`: ``w`` is ``(C_out, C_in, 3, ..., 3)``, any strides.

    Arrays in the compute dtype, ``x3`` and ``out3`` flat over space as in
    :mod:`numbaconv._core`.
    """
    up, bp = transformed_weights(w)
    plan = tile_plan(tab, _TILES)
    per_img = math.prod(plan.ntax.tolist())
    imgs = 1
    if 2 * per_img <= _IMAGE_TILES and w.nbytes >= _BIG_WEIGHTS:
        # small images, large weights: whole images a job, a worker's share at most (NOTES 93)
        imgs = min(_IMAGE_TILES // per_img, -(-x3.shape[0] // max(workers, 1)))
    if imgs > 1:
        last = int(plan.ntax[-1])
        plan = plan._replace(seg=last, grp=per_img // last)
    winograd_conv(x3, up, bp[0], bias, out3, tab.geom, tab.maps, *plan, imgs, act,
                  x3.dtype.type(0), workers)
