"""numbaconv's asv suite.

Threads are pinned here, through the environment and before anything imports
numba or torch: asv's forkserver imports the suite once and forks a process
for each benchmark, and a parent that has started GNU OpenMP threads (which
``numba.set_num_threads`` does) cannot fork safely.
"""

import os

for _var in ("NUMBA_NUM_THREADS", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_var, "2")
