"""How a kernel's workers share its jobs (numbaconv._jobs): each job once, own share first."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from numba import njit, prange

from numbaconv._jobs import _STRIDE, fetch_add, job_counters, next_job


@njit(cache=False)
def _steps(nw, njobs, order):
    """Workers ask for jobs in ``order`` (worker indices; a worker told there is none left
    asks no more). Returns (job -> worker, how often each job was taken, each worker's jobs
    in order and their count, whether each worker was told none is left)."""
    counts = job_counters(nw)
    done = np.zeros(nw, np.bool_)
    owner = np.full(njobs, -1, np.int64)
    taken = np.zeros(njobs, np.int64)
    seq = np.full((nw, njobs + 1), -1, np.int64)
    nseq = np.zeros(nw, np.int64)
    for w in order:
        if done[w]:
            continue
        job = next_job(counts, w, nw, njobs)
        if job < 0:
            done[w] = True
            continue
        taken[job] += 1
        owner[job] = w
        seq[w, nseq[w]] = job
        nseq[w] += 1
    return owner, taken, seq, nseq, done


@pytest.mark.parametrize("nw,njobs", [(1, 0), (1, 7), (2, 1), (2, 9), (3, 2), (4, 64), (5, 23)])
def test_every_job_runs_once_and_a_worker_starts_with_its_own_share(nw, njobs):
    rng = np.random.default_rng()
    # a random interleaving, long enough that every worker finishes
    order = np.concatenate([rng.integers(0, nw, 4 * (njobs + nw)),
                            np.repeat(np.arange(nw), njobs + nw)])
    owner, taken, seq, nseq, done = _steps(nw, njobs, order)
    assert (taken == 1).all() and done.all()
    for w in range(nw):
        share = np.arange(w * njobs // nw, (w + 1) * njobs // nw)
        mine = seq[w, :nseq[w]]
        # the jobs it took of its own share come first, in order
        own = share[owner[share] == w]
        np.testing.assert_array_equal(mine[:own.size], own)
        # and a share's jobs are handed out in order, whoever takes them
        assert (np.diff(np.flatnonzero(owner[share] >= 0)) == 1).all()


def test_one_worker_alone_takes_every_share_in_turn():
    owner, taken, seq, nseq, done = _steps(3, 10, np.zeros(12, np.int64))
    assert (taken == 1).all() and nseq[0] == 10
    # its own share, then worker 1's, then worker 2's
    np.testing.assert_array_equal(seq[0, :10], np.arange(10))


@njit
def _count(counts, reps):
    total = 0
    for _ in range(reps):
        total += fetch_add(counts, 3, 2)
    return total


def test_fetch_add_returns_the_value_before():
    counts = np.zeros(8, np.int64)
    assert _count(counts, 4) == 0 + 2 + 4 + 6 and counts[3] == 8 and counts.sum() == 8
    assert _STRIDE * 8 >= 128  # a counter a pair of cache lines


@njit(parallel=True)
def _run(nw, njobs, slow_share, spin, ran_by, hits, sink):
    counts = job_counters(nw)
    for wk in prange(nw):
        while True:
            job = next_job(counts, wk, nw, njobs)
            if job < 0:
                break
            hits[job] += 1
            ran_by[job] = wk
            if job * nw // njobs == slow_share:  # make one share's jobs slow
                s = 0.0
                for i in range(spin):
                    s += np.sqrt(i + job)
                sink[job] = s


@pytest.mark.parametrize("nw,njobs", [(1, 5), (2, 2), (2, 101), (5, 3), (7, 200)])
def test_parallel_workers_run_every_job_once(nw, njobs):
    hits = np.zeros(njobs, np.int64)
    ran_by = np.full(njobs, -1, np.int64)
    _run(nw, njobs, -1, 0, ran_by, hits, np.zeros(njobs))
    assert (hits == 1).all() and (ran_by >= 0).all() and (ran_by < nw).all()


@pytest.mark.skipif(numba.config.NUMBA_NUM_THREADS < 2, reason="needs two threads")
def test_a_free_worker_helps_with_a_slow_share():
    """Worker 0's jobs are slow (about 0.3 s in all on one thread), worker 1's take no time:
    worker 1 runs some of worker 0's share (about half), which a fixed share never would."""
    numba.set_num_threads(2)
    njobs = 200
    hits = np.zeros(njobs, np.int64)
    ran_by = np.full(njobs, -1, np.int64)
    _run(2, njobs, 0, 1_000_000, ran_by, hits, np.zeros(njobs))
    assert (hits == 1).all()
    assert (ran_by[njobs // 2:] == 1).all()  # share 1 first goes to its own worker
    assert (ran_by[:njobs // 2] == 1).any(), "worker 1 took none of worker 0's share"
