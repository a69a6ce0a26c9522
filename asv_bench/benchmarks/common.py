"""Shared set-up: pinned threads, seeded inputs, optional peers."""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "2")

import numba  # noqa: E402
import numpy as np  # noqa: E402

THREADS = 2
numba.set_num_threads(min(THREADS, numba.config.NUMBA_NUM_THREADS))


try:
    import torch
except ImportError:  # PyTorch is an optional peer: its benchmarks are skipped
    torch = None
else:
    torch.set_num_threads(THREADS)

try:
    from asv_runner.benchmarks.mark import skip_benchmark_if
except ImportError:  # outside asv

    def skip_benchmark_if(condition):
        return lambda f: f


#: decorator for PyTorch peer methods
needs_torch = skip_benchmark_if(torch is None)


def arrays(*shapes, dtype=np.float32, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(s).astype(dtype) for s in shapes]
