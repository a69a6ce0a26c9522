"""How the workers of a parallel kernel share out its jobs.

Every kernel runs ``for wk in prange(nw)``: one iteration a worker (thread),
each with its own scratch rows. The jobs ``0 .. njobs - 1`` (a tile, a plane,
a band of rows...) are cut into ``nw`` contiguous shares, worker ``wk``'s
share first to it, so that a worker's consecutive jobs read the same planes
and weights. A share is handed out through an atomic counter: a worker takes
its own share's jobs in order, then, when that is done, the jobs the other
workers have not taken yet from theirs, the next one's first. Each job runs
exactly once whatever the order the workers come, and the call ends when the
last job does, not when the slowest worker's fixed share does: on a host
whose two vCPUs run at different speeds from moment to moment, a fixed share
kept the faster one idle for up to a fifth of a call (NOTES 135).

A kernel's loop::

    counts = job_counters(nw)
    for wk in prange(nw):
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            ...

A job must not depend on the worker's previous one, which a fixed share
never guaranteed either (the shares depend on the thread count).
"""

from __future__ import annotations

import numpy as np
from numba import njit, types
from numba.extending import intrinsic

from ._config import HELPER

#: a share's counter every ``_STRIDE`` elements: 128 bytes, no two on one cache line
#: (or on the pair of lines the hardware prefetches together)
_STRIDE = 16


@intrinsic
def fetch_add(typingctx, counts, i, v):
    """``counts[i] += v`` as one atomic step; returns the value before it. ``counts`` a
    C-contiguous int64 array, ``i`` an index into it (not checked), ``v`` an integer."""
    sig = types.int64(counts, i, v)

    def codegen(context, builder, sig, args):
        data = context.make_array(sig.args[0])(context, builder, args[0]).data
        idx = context.cast(builder, args[1], sig.args[1], types.int64)
        inc = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", builder.gep(data, [idx]), inc, "monotonic")

    return sig, codegen


@njit(**HELPER)
def job_counters(nw):
    """The zeroed counters of ``nw`` shares, for :func:`next_job` (one a call of a
    ``prange``: a counter only counts up)."""
    return np.zeros(nw * _STRIDE, dtype=np.int64)


@njit(**HELPER)
def next_job(counts, wk, nw, njobs):
    """Worker ``wk``'s next job of ``njobs`` shared by ``nw`` workers; -1 when none is left.

    The shares are tried in the order of workers ``wk, wk + 1, ...`` (modulo ``nw``): the
    worker's own first, then each of the others', from wherever their workers are. A share
    once used up stays so (its counter only counts up), so trying it again costs one atomic
    step on a counter and changes no job: a worker carries no state between calls.
    """
    for turn in range(nw):
        o = wk + turn
        if o >= nw:
            o -= nw
        job = o * njobs // nw + fetch_add(counts, o * _STRIDE, 1)
        if job < (o + 1) * njobs // nw:
            return job
    return -1
