"""Calls made at the same time from several Python threads give the right results."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numba
import numpy as np
from checks import assert_close
from reference import conv_ref

import numbaconv


def test_concurrent_calls_from_python_threads(rng):
    cases = []
    for i in range(8):
        x = rng.standard_normal((2, 4, 12 + i, 11)).astype(np.float32)
        w = rng.standard_normal((6 if i % 2 else 4, 1 if i % 2 == 0 else 4, 3, 3)).astype(
            np.float32)
        groups = 4 if i % 2 == 0 else 1
        cases.append((x, w, groups))

    def run(case):
        x, w, groups = case
        return numbaconv.conv(x, w, padding=1, groups=groups, padding_mode="reflect")

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(run, cases * 3))
    for (x, w, groups), y in zip(cases * 3, results):
        assert_close(y, conv_ref(x, w, padding=1, groups=groups, padding_mode="reflect"),
                     np.float32)


def test_thread_count_follows_numba(rng):
    x = rng.standard_normal((3, 4, 10, 10))
    w = rng.standard_normal((8, 4, 3, 3))
    expected = conv_ref(x, w, padding=1)
    old = numba.get_num_threads()
    try:
        for n in range(1, numba.config.NUMBA_NUM_THREADS + 1):
            numba.set_num_threads(n)
            assert_close(numbaconv.conv(x, w, padding=1), expected, np.float64)
    finally:
        numba.set_num_threads(old)


def test_concurrent_deform_conv_calls(rng):
    x = rng.standard_normal((2, 4, 9, 8)).astype(np.float32)
    w = rng.standard_normal((6, 2, 3, 3)).astype(np.float32)
    offsets = [rng.standard_normal((2, 36, 9, 8)).astype(np.float32) for _ in range(6)]
    expected = [numbaconv.deform_conv(x, o, w, padding=1) for o in offsets]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda o: numbaconv.deform_conv(x, o, w, padding=1),
                                offsets * 3))
    for e, y in zip(expected * 3, results):
        np.testing.assert_array_equal(y, e)
