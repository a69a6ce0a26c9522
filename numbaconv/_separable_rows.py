"""Depthwise-separable convolution fused by bands of output rows.

For windows the row sweeps take (:mod:`numbaconv._direct_rows`: every stride
1, the last axis zero-padded to its own width), a job is one image and one
band of output rows (a few hundred positions):

1. the depthwise sums of every depthwise channel over the band, by the row
   sweeps (:func:`numbaconv._direct_rows.add_channel`), into the worker's
   ``(C_dw, band)`` buffer (rows 64-byte aligned), which stays in L2;
2. the pointwise product, two panels of ``NR`` positions at a time, every
   block of ``MR`` output channels on both: the micro-kernel reads the panel
   from the buffer in place (:func:`numbaconv._microkernel.tap_block3`, three
   vectors on AVX-512, step ``k`` from channel ``k``'s row) and stores its
   sums straight into the NCHW output, plus the bias, then the activation.

The depthwise result never goes to memory: the two passes it replaces wrote
it whole and read it back, and packing the buffer into panels cost as much
as the depthwise sums (NOTES 69).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._activations import activate_run
from ._config import PARALLEL
from ._core import worker_rows
from ._direct_rows import add_channel, row_plan
from ._dtypes import to_kernel
from ._geometry import G_K, G_OUT, Tables
from ._jobs import job_counters, next_job
from ._microkernel import (
    MR,
    TAP_VECTORS,
    VECTOR_BYTES,
    copy_row,
    tap_block1,
    tap_block2,
    tap_block3,
)

#: a band holds about this many output positions (whole rows)
_BAND = 256
#: the band's depthwise buffer takes at most this (else another path runs)
_BAND_BYTES = 1024 * 1024
#: panels of positions a block of weight rows sweeps in turn (1: 12-15% slower on Zen 3, 4: 8-10%
#: slower, NOTES 99)
_PAIR = 2


def band_rows(out_shape: tuple[int, ...], cdw: int, nimg: int, itemsize: int,
              workers: int) -> int:
    """Output rows per band, or 0 when one row's depthwise buffer exceeds ``_BAND_BYTES``.

    At most ``_BAND`` positions, preferably a whole number of vectors (the
    micro-kernel's last panel is otherwise partly idle: depthwise-separable
    (8,512,14,14) -> 512 took 2.65 ms in bands of 8 rows against 3.05 in whole
    planes), and fewer rows when the bands would be fewer than the workers.
    """
    width = out_shape[-1]
    if width * cdw * itemsize > _BAND_BYTES:
        return 0
    nrows = int(np.prod(out_shape[:-1]))
    most = max(1, min(_BAND // width, nrows))
    vl = VECTOR_BYTES // itemsize
    rows = next((r for r in range(most, 0, -1) if r * width % vl == 0), most)
    if nimg * -(-nrows // rows) < workers:  # as many bands an image as the workers need
        rows = max(1, -(-nrows // -(-workers // nimg)))
    return rows


def separable(x3: np.ndarray, dw2: np.ndarray, pw: np.ndarray, bias: np.ndarray,
              out3: np.ndarray, tab: Tables, rows: int, act: int, workers: int) -> None:
    """Run :func:`separable_rows`: arrays in the compute dtype, ``x3`` and ``out3`` flat over
    space, ``dw2`` ``(C_dw, taps)`` C-contiguous, ``pw`` ``(C_out, C_dw)``, ``rows`` from
    :func:`band_rows`.
    """
    mult = dw2.shape[0] // x3.shape[1]
    separable_rows(x3, dw2, to_kernel(pw, x3.dtype), bias, out3, mult,
                   tab.geom, tab.maps, rows * int(tab.geom[G_OUT, -1]), act, x3.dtype.type(0),
                   workers)


@njit(**PARALLEL)
def separable_rows(x, dw, w, bias, out, mult, geom, maps, band, act, zero, workers):
    """``out[n, o] = act(bias[o] + sum_k w[o, k] * depthwise(x[n, k // mult], dw[k]))``.

    x (N, C_in, L_in); dw (C_dw, taps), C-contiguous; w (C_out, C_dw),
    C-contiguous; bias (C_out,); out (N, C_out, L_out), written whole. The tables must pass
    :func:`numbaconv._direct_rows.usable`; ``band`` is the positions of a band
    (whole rows).
    """
    nimg, _, _ = x.shape
    cdw = dw.shape[0]
    cout = out.shape[1]
    lout = out.shape[2]
    last = geom.shape[1] - 1
    width = geom[G_OUT, last]
    kl = geom[G_K, last]
    copies, offs, chunks, masks, head, plane_len = row_plan(geom, maps, band)
    nchunk = chunks.shape[0]
    vlen = VECTOR_BYTES // x.itemsize
    nr = TAP_VECTORS * vlen
    # the buffer's rows: the longest band's positions, to whole cache lines
    ldm = (masks.shape[1] * x.itemsize + 63) // 64 * 64 // x.itemsize
    koff = np.empty(cdw, dtype=np.int64)  # (a loop: an array expression would be compiled
    for k in range(cdw):  # as a parallel function of its own)
        koff[k] = k * ldm
    njobs = nimg * nchunk
    nw = max(min(workers, njobs), 1)
    vp_all = worker_rows(nw, plane_len, x.dtype, True)  # padding rows stay zero
    # zeroed: a last panel reads past its band into finite samples (its lanes are not stored)
    mid_all = worker_rows(nw, cdw * ldm + nr, x.dtype, True)
    counts = job_counters(nw)
    for wk in prange(nw):
        vp = vp_all[wk]
        mid = mid_all[wk]
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            n = job // nchunk
            i = job % nchunk
            p0 = chunks[i, 0] * width
            npos = chunks[i, 2] * width
            for k in range(cdw):
                xc = x[n, k // mult]
                if chunks[i, 3] >= 0:  # straight from the input
                    src = xc
                    base = chunks[i, 3]
                else:  # from the row plane, copied once per input channel
                    if k % mult == 0:
                        for r in range(copies.shape[0]):
                            copy_row(xc, copies[r, 1], vp, head + copies[r, 0] * width,
                                     copies[r, 2] * width)
                    src = vp
                    base = head + chunks[i, 1] * width
                # the next channel's rows (or the next job's first), fetched during the sweeps
                if k + 1 < cdw:
                    pf = x[n, (k + 1) // mult]
                    pf_off = p0
                else:
                    nxt = min(job + 1, njobs - 1)
                    pf = x[nxt // nchunk, 0]
                    pf_off = chunks[nxt % nchunk, 0] * width
                add_channel(mid[k * ldm:k * ldm + npos], src, base, offs, dw[k], kl, masks,
                            npos, True, zero, pf, pf_off, npos)
            for g0 in range(0, npos, _PAIR * nr):  # pairs of panels, each block of weight
                # rows on both while it is in L1
                g1 = min(npos, g0 + _PAIR * nr)
                for r0 in range(0, cout, MR):
                    nrow = min(MR, cout - r0)
                    for q0 in range(g0, g1, nr):
                        ncol = min(nr, npos - q0)
                        panel = mid[q0:]
                        o_off = (n * cout + r0) * lout + p0 + q0
                        if ncol > 2 * vlen:
                            tap_block3(w, r0 * cdw, cdw, panel, koff, cdw, bias[r0:], out, o_off,
                                       lout, nrow, ncol)
                        elif ncol > vlen:
                            tap_block2(w, r0 * cdw, cdw, panel, koff, cdw, bias[r0:], out, o_off,
                                       lout, nrow, ncol)
                        else:  # a narrow last panel of one vector
                            tap_block1(w, r0 * cdw, cdw, panel, koff, cdw, bias[r0:], out, o_off,
                                       lout, nrow, ncol)
                if act != 0:
                    for o in range(cout):
                        activate_run(out[n, o, p0 + g0:p0 + g1], act)
