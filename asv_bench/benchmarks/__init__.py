"""numbaconv's asv suite.

Threads are pinned here, through the environment and before anything imports
numba or torch: asv's forkserver imports the suite once and forks a process
for each benchmark, and a parent that has started GNU OpenMP threads (which
``numba.set_num_threads`` does) cannot fork safely.

Numba loads its typing and lowering registries (NumPy's functions, linear algebra,
which imports SciPy's BLAS) at a process's first compile or cache load: 0.5-0.6 s.
Loading them here, in the process asv forks every benchmark from, spares each child
that cost (a first conv call there 0.7 -> 0.1 s). It runs no kernel: no OpenMP
threads start in the parent.
"""

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "2")

from numba.core.registry import cpu_target  # noqa: E402  (after the thread counts)

cpu_target.typing_context.refresh()
cpu_target.target_context.refresh()
