"""Shared set-up: seeded inputs, optional peers."""

from __future__ import annotations

import numpy as np

# the thread counts (2) come from the environment, set in ``benchmarks/__init__.py``
try:
    import torch
except ImportError:  # PyTorch is an optional peer: its benchmarks are skipped
    torch = None

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
