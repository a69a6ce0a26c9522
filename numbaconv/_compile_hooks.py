"""One change to how Numba compiles numbaconv's parallel kernels: LLVM's module
optimisation runs once over a kernel's ``prange`` body, not four times.

Numba builds a parallel kernel's loop body as three libraries before the
kernel's own: the parfor's gufunc, its gufunc wrapper and the launcher
(``parallelgufuncwrapper``; ``numba/np/ufunc/parallel.py``). Each one links
in the one before it and runs LLVM's full module optimisation over all that
it holds, and the kernel's library, which links the last, runs it once more.
Only the kernel's machine code is ever called. So while a numbaconv function
compiles, the three intermediate libraries skip their module optimisation;
the kernel's runs over the same code, once (asv_bench/NOTES.md, attempt 129).
Function-level passes, code generation and the kernel's own optimisation are
unchanged, and so are other packages' functions.

Numba compiles one function at a time per process (its global compiler lock);
a listener on its ``numba:compile`` events tracks which dispatcher is being
compiled. If a Numba version no longer has the method replaced here, nothing
is changed.
"""

from __future__ import annotations

from numba.core import codegen, event

#: the names Numba gives the intermediate libraries of a ``prange`` body
_INTERMEDIATE = ("__numba_parfor_gufunc", "<numba.np.ufunc.wrappers._GufuncWrapper",
                 "parallelgufuncwrapper")

#: this package's module names start with it
_PACKAGE = __name__.rpartition(".")[0] + "."
#: for each ``numba:compile`` under way, innermost last: is it a numbaconv function?
_compiling: list[bool] = []
#: module optimisations skipped so far (for the tests)
skipped = 0


class _Tracker(event.Listener):
    """Keeps :data:`_compiling` in step with Numba's ``numba:compile`` events."""

    def on_start(self, ev: event.Event) -> None:
        disp = ev.data.get("dispatcher") if isinstance(ev.data, dict) else None
        module = getattr(getattr(disp, "py_func", None), "__module__", None) or ""
        _compiling.append(module.startswith(_PACKAGE))

    def on_end(self, ev: event.Event) -> None:
        if _compiling:
            _compiling.pop()


def _install() -> None:
    original = getattr(codegen.CPUCodeLibrary, "_optimize_final_module", None)
    if original is None or getattr(original, "_numbaconv", False):
        return

    def _optimize_final_module(self):
        global skipped
        if _compiling and _compiling[-1] and self.name.startswith(_INTERMEDIATE):
            skipped += 1
            return
        original(self)

    _optimize_final_module._numbaconv = True
    codegen.CPUCodeLibrary._optimize_final_module = _optimize_final_module
    event.register("numba:compile", _Tracker())


_install()
