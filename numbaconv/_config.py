"""Numba options shared by every kernel, in one place.

* ``FASTMATH`` allows re-association and FMA contraction (what makes the sums
  vectorise) but never ``nnan``/``ninf``: NaN and inf must propagate.
* ``cache=True`` keeps compiled kernels on disk, so only the first call in the
  first process pays the compile time.
* ``error_model='numpy'`` keeps divisions free of Python's zero checks.
* ``no_cfunc_wrapper``: Numba builds a C-callable wrapper beside each function
  for its use as a first-class function value, which no kernel or helper is;
  without them a dtype's cold compile is ~0.5 s shorter (NOTES 132). Python
  calls go through the other wrapper, which stays.
"""

from __future__ import annotations

from numba.core import types
from numba.core.cpu_options import ParallelOptions

from . import _compile_hooks  # noqa: F401  (installed before any kernel compiles)

FASTMATH = {"contract", "reassoc", "nsz", "arcp"}

#: only the ``prange`` loops run in parallel. Numba's other conversions (array
#: expressions, ``np.zeros`` and the like, slice assignments) would each become a
#: parallel region of its own, compiled as a separate function: the kernels' scratch
#: allocations made four regions of the tile-GEMM kernel instead of two, for no
#: speed (NOTES 54). An options object, not a dict, because Numba empties the dict
#: it is given and the next kernel would silently get the defaults.
PRANGE_ONLY = ParallelOptions({"comprehension": False, "inplace_binop": False, "setitem": False,
                               "numpy": False, "stencil": False, "fusion": False})

#: what every compiled function here shares; the ``numba.cfunc`` functions, whose C
#: wrapper is the point, take exactly these (``CFUNC``)
_COMMON = {"fastmath": FASTMATH, "cache": True, "error_model": "numpy"}

#: options of the parallel kernels (one ``prange`` each)
PARALLEL = {**_COMMON, "parallel": PRANGE_ONLY, "no_cfunc_wrapper": True}

#: options of the plain helpers called from inside a ``prange`` body
HELPER = {**_COMMON, "inline": "always"}

#: options of the larger helpers (a row, a tile, a job): compiled on their own, not
#: inlined at Numba's level, which made each parallel kernel several times slower to
#: compile for no measurable speed (asv_bench/NOTES.md, attempt 37)
CALLED = {**_COMMON, "no_cfunc_wrapper": True}

#: options of the ``numba.cfunc`` functions
CFUNC = _COMMON


def plain_calls(dispatcher):
    """Have jitted callers compile ``dispatcher`` for their arguments' plain types.

    Called from jitted code with a constant argument, a Numba function is typed and
    compiled for that constant's value (``Literal[bool](True)``, ``Literal[int](1)``):
    a specialisation for each constant a caller passes. For a helper whose constants
    only select a branch at run time, that is compile time for nothing (NOTES 133).
    Python callers are unchanged.
    """
    call_template = dispatcher.get_call_template

    def get_call_template(args, kws):
        return call_template(tuple(types.unliteral(a) for a in args),
                             {k: types.unliteral(v) for k, v in kws.items()})

    dispatcher.get_call_template = get_call_template
    return dispatcher
