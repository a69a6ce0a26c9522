"""Helpers shared by the tests: comparisons, and a fresh process."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np

TOL = {np.dtype(np.float32): 1e-5, np.dtype(np.float64): 1e-12}


def assert_close(actual, expected, dtype):
    """Relative error (max abs error over max abs value) under the dtype's tolerance."""
    actual = np.asarray(actual)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    scale = max(float(np.max(np.abs(expected), initial=0.0)), 1e-30)
    err = float(np.max(np.abs(actual.astype(np.float64) - expected), initial=0.0)) / scale
    assert err <= TOL[np.dtype(dtype)], f"relative error {err:.3g} > {TOL[np.dtype(dtype)]}"


def assert_sums_close(actual, expected, bound, dtype):
    """Each computed sum within the dtype's tolerance of ``bound``, the sum of its terms'
    absolute values: a sum that cancels to near zero is judged by its terms, not itself."""
    actual = np.asarray(actual, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    err = np.abs(actual - expected)
    assert (err <= TOL[np.dtype(dtype)] * np.asarray(bound)).all(), \
        f"error {err.max():.3g} against bound {np.asarray(bound).min(initial=np.inf):.3g}"


def in_fresh_process(code: str) -> object:
    """Run ``code`` in a new Python process; what it printed last, read as JSON."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])
