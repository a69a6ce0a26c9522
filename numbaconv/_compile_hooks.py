"""Three changes to how Numba compiles and loads numbaconv's functions: LLVM's
module optimisation runs once over a kernel's ``prange`` body, not four times;
the body's code is generated three times, not four; and a function loaded from
the disk cache does not make Numba load its typing and lowering registries.

Numba builds a parallel kernel's loop body as three libraries before the
kernel's own: the parfor's gufunc, its gufunc wrapper and the launcher
(``parallelgufuncwrapper``; ``numba/np/ufunc/parallel.py``). Each one links
in the one before it and runs LLVM's full module optimisation over all that
it holds, and the kernel's library, which links the last, runs it once more.
Each is also compiled to machine code, though only the kernel's is ever run
(the gufunc's own is looked up once, for its environment). So while a
numbaconv function compiles:

* the three intermediate libraries skip their module optimisation; the
  kernel's runs over the same code, once (asv_bench/NOTES.md, attempt 129);
* the gufunc wrapper and the launcher are not compiled to machine code: the
  kernel holds its own copies of them (attempt 130). This is done only on the
  Numba versions in :data:`_CHECKED`, where the test suite ran so.

Function-level passes and the kernel's own optimisation and machine code are
unchanged, and so are other packages' functions. Numba compiles one function
at a time per process (its global compiler lock); a listener on its
``numba:compile`` events tracks which dispatcher is being compiled.

Before loading any function from its disk cache, Numba refreshes its target
context (``numba/core/caching.py``, ``Cache.load_overload``): it imports and
installs every typing and lowering registry (NumPy's functions, random numbers,
typed containers, linear algebra, which imports ``scipy.linalg`` to check for
BLAS) and initialises its runtime. Loading a compiled function needs only the
runtime: the registries serve typing and lowering, that is compiling, and every
compile refreshes them first (``CompilerBase``). So a numbaconv function is
loaded with the runtime initialised and no refresh: the first call of a fresh
process with a warm cache takes ~0.5 s less (NOTES 134). Other packages' cached
functions load as before. Only on the Numba versions in :data:`_CHECKED`.

If a Numba version no longer has a method replaced here, that change is not made.
"""

from __future__ import annotations

import numba
from numba.core import caching, codegen, event
from numba.core.runtime import rtsys

#: the names Numba gives the intermediate libraries of a ``prange`` body
_INTERMEDIATE = ("__numba_parfor_gufunc", "<numba.np.ufunc.wrappers._GufuncWrapper",
                 "parallelgufuncwrapper")

#: the two of them that are only ever linked into the kernel
_WRAPPERS = _INTERMEDIATE[1:]
#: the Numba versions (major, minor) on which the wrappers' machine code is skipped and
#: cached functions load without a refresh: the internals used were read there
_CHECKED = {(0, 68)}

#: this package's module names start with it
_PACKAGE = __name__.rpartition(".")[0] + "."
#: for each ``numba:compile`` under way, innermost last: is it a numbaconv function?
_compiling: list[bool] = []
#: module optimisations, machine codes and registry refreshes skipped so far (for the tests)
skipped = 0
skipped_code = 0
skipped_refresh = 0


def _in_package(func) -> bool:
    """Is ``func`` (a Python function, or ``None``) defined in this package?"""
    return (getattr(func, "__module__", None) or "").startswith(_PACKAGE)


class _Tracker(event.Listener):
    """Keeps :data:`_compiling` in step with Numba's ``numba:compile`` events."""

    def on_start(self, ev: event.Event) -> None:
        disp = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        _compiling.append(_in_package(getattr(disp, "py_func", None)))

    def on_end(self, ev: event.Event) -> None:
        if _compiling:
            _compiling.pop()


def _numba_version() -> tuple[int, ...]:
    return tuple(int(p) for p in numba.__version__.split(".")[:2] if p.isdigit())


def _ours(library, names: tuple[str, ...]) -> bool:
    """Is ``library`` one of ``names``, made while a numbaconv function compiles?"""
    return bool(_compiling) and _compiling[-1] and library.name.startswith(names)


def _install() -> None:
    lib = codegen.CPUCodeLibrary
    optimize = getattr(lib, "_optimize_final_module", None)
    if optimize is None or getattr(optimize, "_numbaconv", False):
        return

    def _optimize_final_module(self):
        global skipped
        if _ours(self, _INTERMEDIATE):
            skipped += 1
            return
        optimize(self)

    _optimize_final_module._numbaconv = True
    lib._optimize_final_module = _optimize_final_module
    event.register("numba:compile", _Tracker())

    finalize = getattr(lib, "_finalize_final_module", None)
    steps = ("_finalize_dynamic_globals", "_verify_declare_only_symbols")
    if (finalize is None or _numba_version() not in _CHECKED
            or not all(hasattr(lib, n) for n in steps)):
        return

    def _finalize_final_module(self):
        global skipped_code
        if _ours(self, _WRAPPERS):  # finalized for linking, never added to the JIT engine
            self._finalize_dynamic_globals()
            self._verify_declare_only_symbols()
            self._finalized = True
            skipped_code += 1
            return
        finalize(self)

    lib._finalize_final_module = _finalize_final_module


def _install_load() -> None:
    cache = caching.Cache
    load = getattr(cache, "load_overload", None)
    steps = ("_load_overload", "_guard_against_spurious_io_errors")
    if (load is None or getattr(load, "_numbaconv", False) or _numba_version() not in _CHECKED
            or not all(hasattr(cache, n) for n in steps)):
        return

    def load_overload(self, sig, target_context):
        global skipped_refresh
        if not _in_package(getattr(self, "_py_func", None)):
            return load(self, sig, target_context)
        rtsys.initialize(target_context)  # what a compiled function needs of the refresh
        skipped_refresh += 1
        with self._guard_against_spurious_io_errors():
            return self._load_overload(sig, target_context)

    load_overload._numbaconv = True
    cache.load_overload = load_overload


_install()
_install_load()
