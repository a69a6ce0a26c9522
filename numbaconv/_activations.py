"""Activation functions fused into the epilogue of every kernel, and gelu after it.

The public names map to small integer codes, so that one compiled kernel
serves every activation. Kernels apply :func:`activate_run` to each run of
outputs they have just written (still in cache); the branch on the code is
taken once per run, so that relu and leaky relu vectorise. sigmoid, tanh, silu
and elu are not compiled into the kernels: the kernels call one compiled run
of them a dtype through its address (:func:`transcendental_runs`; NOTES 127).
gelu runs after the kernel, over its whole output (:func:`finish_activation`):
its vectorised float32 form, inlined into every kernel, took 2.5 s of the
convolution family's cold compile (asv_bench/NOTES.md, attempt 91).
"""

from __future__ import annotations

import ctypes
import math
import threading

import llvmlite.binding as llvm
import numpy as np
from llvmlite import ir
from numba import carray, cfunc, njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload

from ._config import CALLED, CFUNC, PARALLEL
from ._microkernel import _splat, copy_row, masked_vectors, opaque, vector_loop
from ._vecmath import (
    _INV_SQRT2,
    _INV_SQRT2PI,
    elu32,
    elu_grad32,
    gelu32,
    gelu_grad32,
    sigmoid32,
    sigmoid_grad32,
    silu32,
    silu_grad32,
    tanh32,
    tanh_grad32,
)

#: name -> code. Fused into convolutions, ``leaky_relu`` uses PyTorch's default
#: slope 0.01 and ``elu`` alpha 1; ``gelu`` is the exact (erf) form, PyTorch's
#: default.
ACTIVATIONS = {
    None: 0,
    "relu": 1,
    "leaky_relu": 2,
    "sigmoid": 3,
    "tanh": 4,
    "gelu": 5,
    "silu": 6,
    "elu": 7,
}
LEAKY_SLOPE = 0.01


def activation_code(activation: str | None) -> int:
    """Validate ``activation`` and return its kernel code."""
    try:
        return ACTIVATIONS[activation]
    except (KeyError, TypeError):
        names = ", ".join(repr(k) for k in ACTIVATIONS)
        raise ValueError(f"activation must be one of {names}; got {activation!r}") from None


#: gelu's code: the one activation the kernels leave to :func:`finish_activation`
GELU = ACTIVATIONS["gelu"]


def kernel_code(code: int) -> int:
    """The code to give a kernel for activation ``code``: itself, but 0 (none) for gelu,
    which :func:`finish_activation` then applies. For sigmoid, tanh, silu and elu, first
    compiles (or loads) the runs the kernels call for them (:func:`transcendental_runs`)."""
    if code == GELU:
        return 0
    if code > 2:
        transcendental_runs()
    return code


@njit(**CALLED)
def activate_run(v, code):
    """Activation ``code`` on every element of the 1-D C-contiguous view ``v``, in place
    (leaky_relu with slope ``LEAKY_SLOPE``, elu with alpha 1): what the kernels fuse.

    relu and leaky relu are compiled into each kernel. sigmoid, tanh, silu and elu are
    called through :data:`_RUNS` (:func:`call_transcendental_run`), compiled once a dtype
    and only when first asked for: compiled into each kernel, they cost about 4 s of the
    family's cold compile a dtype (NOTES 127). gelu is not fused at all
    (:func:`kernel_code`): its float32 form took 2.5 s of that compile (NOTES 91).
    """
    if code == 1 or code == 2:
        rectify_run(v, v.shape[0], code == 2, LEAKY_SLOPE)
    elif code != 0:
        call_transcendental_run(v, code)


def _transcendental_run(p, n, code):
    """:func:`fused_run` of sigmoid, tanh, silu or elu (alpha 1) over ``n`` elements at
    ``p``, for :func:`numba.cfunc`."""
    fused_run(carray(p, (n,)), code, 1.0)


_RUNS_SYMBOL = "numbaconv_transcendental_runs"


def _runs_table() -> np.ndarray:
    """The table the kernels read by the name :data:`_RUNS_SYMBOL`: made and named once a
    process, and never freed (kernels hold its address); a second copy of this module, or
    a reload, takes the same table."""
    addr = llvm.address_of_symbol(_RUNS_SYMBOL)
    if addr:
        return np.ctypeslib.as_array((ctypes.c_int64 * 2).from_address(addr))
    table = np.zeros(2, np.int64)
    ctypes.pythonapi.Py_IncRef(ctypes.py_object(table))
    llvm.add_symbol(_RUNS_SYMBOL, table.ctypes.data)
    return table


#: the addresses of the compiled :func:`_transcendental_run` for float32 and float64, 0
#: until :func:`transcendental_runs` fills them. The kernels read them at run time, by name:
#: an address compiled in would be wrong in the next process, and calling the run directly
#: would compile it into every kernel.
_RUNS = _runs_table()
_RUN_DTYPES = (types.float32, types.float64)
#: the compiled runs, kept alive while their addresses are in _RUNS
_RUN_FUNCS: list = []
_RUNS_LOCK = threading.Lock()


def transcendental_runs() -> None:
    """Compile (or load from Numba's cache) the runs of sigmoid, tanh, silu and elu in both
    dtypes, once a process, and put their addresses in :data:`_RUNS`."""
    if _RUN_FUNCS:  # every later call: no lock (the list fills after the table)
        return
    with _RUNS_LOCK:
        if _RUN_FUNCS:
            return
        funcs = [cfunc(types.void(types.CPointer(t), types.int64, types.int64),
                       **CFUNC)(_transcendental_run) for t in _RUN_DTYPES]
        _RUNS[:] = [f.address for f in funcs]
        _RUN_FUNCS.extend(funcs)


@intrinsic
def call_transcendental_run(typingctx, v, code):
    """Call the compiled run of activation ``code`` (sigmoid, tanh, silu, elu) for ``v``'s
    dtype on the 1-D C-contiguous ``v``, through its address in :data:`_RUNS`, which
    :func:`transcendental_runs` must have filled."""
    sig = types.none(v, code)
    slot = _RUN_DTYPES.index(v.dtype)

    def codegen(context, builder, sig, args):
        arr = context.make_array(sig.args[0])(context, builder, args[0])
        n = cgutils.unpack_tuple(builder, arr.shape)[0]
        i64 = ir.IntType(64)
        table = builder.module.globals.get(_RUNS_SYMBOL)
        if table is None:  # a declaration: the address comes from llvm.add_symbol
            table = ir.GlobalVariable(builder.module, ir.ArrayType(i64, 2), _RUNS_SYMBOL)
        addr = builder.load(builder.gep(table, [ir.Constant(ir.IntType(32), 0),
                                                ir.Constant(ir.IntType(32), slot)]))
        fnty = ir.FunctionType(ir.VoidType(), [arr.data.type, i64, i64])
        builder.call(builder.inttoptr(addr, fnty.as_pointer()),
                     [arr.data, n, context.cast(builder, args[1], sig.args[1], types.int64)])
        return context.get_dummy_value()

    return sig, codegen


@intrinsic
def rectify_run(typingctx, v, n, leaky, slope):
    """``v[j] = x if not x < 0 else (slope * x if leaky else 0)`` for ``j < n``, in place.

    relu (``leaky`` False) and leaky relu on a C-contiguous 1-D float array, in
    explicit vectors, every element stored: written as a loop, LLVM stores only
    the negative lanes, with a masked store, slow on AVX2 (NOTES 96;
    :func:`numbaconv._microkernel.opaque`). NaN, ``-0.0`` and ``inf`` stay as
    they are; relu gives ``+0.0`` for ``-inf``.
    """
    sig = types.none(v, n, leaky, slope)

    def codegen(context, builder, sig, args):
        mv = masked_vectors(context, builder, sig.args[0].dtype)
        p = context.make_array(sig.args[0])(context, builder, args[0]).data
        n_v = context.cast(builder, args[1], sig.args[1], types.int64)
        is_leaky = context.cast(builder, args[2], sig.args[2], types.boolean)
        s = _splat(builder, context.cast(builder, args[3], sig.args[3], sig.args[0].dtype),
                   mv.vty)

        def body(j, ok):
            ptr = mv.pointer(builder, p, j)
            x = mv.read(builder, ptr, ok)
            low = builder.select(is_leaky, builder.fmul(x, s), mv.zero)
            mv.write(builder, builder.select(builder.fcmp_ordered("<", x, mv.zero), low,
                                             opaque(builder, x)), ptr, ok)

        vector_loop(builder, mv, n_v, body, "rectify")
        return context.get_dummy_value()

    return sig, codegen


@njit(**CALLED)
def activate_run_with(v, code, param):
    """Activation ``code`` with its parameter (leaky_relu's slope, elu's alpha) on every
    element of the 1-D view ``v``, in place."""
    if code == GELU:
        for j in range(v.shape[0]):
            v[j] = _gelu(v[j])
    else:
        fused_run(v, code, param)


@njit(**CALLED)
def fused_run(v, code, param):
    """:func:`activate_run_with` of every code but gelu's.

    One loop per branch, so that relu and leaky relu vectorise (the branch per
    element inlined into every kernel's loops did not, and cost compile time:
    asv_bench/NOTES.md, attempt 54).
    """
    n = v.shape[0]
    if code == 1:
        rectify_run(v, n, False, param)
    elif code == 2:
        rectify_run(v, n, True, param)
    elif code == 3:  # a loop per code: each inlines just its own function
        for j in range(n):
            v[j] = _sigmoid(v[j])
    elif code == 4:
        for j in range(n):
            v[j] = _tanh(v[j])
    elif code == 6:
        for j in range(n):
            v[j] = _silu(v[j])
    elif code == 7:
        for j in range(n):
            v[j] = _elu(v[j], param)


#: elements a job of :func:`elementwise`
_CHUNK = 1 << 14


@njit(**PARALLEL)
def elementwise(src, dst, code, param):
    """``dst = activation(src)`` (1-D, the same length; ``dst`` may be ``src``), by
    :func:`activate_run_with`, in parallel chunks."""
    n = src.shape[0]
    nchunk = (n + _CHUNK - 1) // _CHUNK
    for ch in prange(nchunk):
        i0 = ch * _CHUNK
        i1 = min(n, i0 + _CHUNK)
        d = dst[i0:i1]
        if src.ctypes.data != dst.ctypes.data:
            copy_row(src, i0, dst, i0, i1 - i0)
        activate_run_with(d, code, param)


def finish_activation(out: np.ndarray, code: int) -> None:
    """Apply activation ``code`` to a kernel's C-contiguous output in place if the kernel
    did not (:func:`kernel_code`: gelu)."""
    if code == GELU and out.size:
        flat = out.reshape(-1)
        elementwise(flat, flat, code, 1.0)


# The per-code functions pick their form when Numba types the caller: float32 through the
# forms that vectorise (_vecmath), float64 through the C library. Only the chosen form is
# compiled, on its own (LLVM inlines it into the loops above), which keeps each caller small;
# gelu's float32 form is inlined by Numba, being too large for LLVM's inliner (NOTES 55).


def _sigmoid(v):
    """Sigmoid of a scalar (Numba only: implemented by the overload below)."""


def _tanh(v):
    """tanh of a scalar (Numba only)."""


def _silu(v):
    """silu of a scalar (Numba only)."""


def _elu(v, alpha):
    """elu of a scalar (Numba only)."""


def _gelu(v):
    """gelu of a scalar (Numba only)."""


@overload(_sigmoid, jit_options=CALLED)
def _sigmoid_form(v):
    if v == types.float32:
        return lambda v: sigmoid32(v)
    return lambda v: 1.0 / (1.0 + math.exp(-v))


@overload(_tanh, jit_options=CALLED)
def _tanh_form(v):
    if v == types.float32:
        return lambda v: tanh32(v)
    return lambda v: math.tanh(v)


@overload(_silu, jit_options=CALLED)
def _silu_form(v):
    if v == types.float32:
        return lambda v: silu32(v)
    return lambda v: v / (1.0 + math.exp(-v))


@overload(_elu, jit_options=CALLED)
def _elu_form(v, alpha):
    if v == types.float32:
        return lambda v, alpha: elu32(v, alpha)
    return lambda v, alpha: alpha * math.expm1(v) if v < 0 else v  # e**v - 1 cancels near 0


@overload(_gelu, jit_options=CALLED, inline="always")
def _gelu_form(v):
    if v == types.float32:
        return lambda v: gelu32(v)
    return lambda v: 0.5 * v * math.erfc(-v * _INV_SQRT2)  # 1 + erf cancels below about -5


@njit(**CALLED)
def chain_run(g, x, dst, code, param):
    """``dst[j] = g[j] * (the derivative at x[j] of activation code)``, 1-D views.

    relu's derivative is 0 at its kink and at NaN; one loop per code, as in
    :func:`activate_run_with`, so that each vectorises.
    """
    n = x.shape[0]
    if code == 0:
        for j in range(n):
            dst[j] = g[j]
    elif code == 1:
        for j in range(n):
            dst[j] = g[j] if x[j] > 0 else 0.0
    elif code == 2:
        for j in range(n):
            dst[j] = g[j] if x[j] > 0 else g[j] * param
    elif code == 3:
        for j in range(n):
            dst[j] = g[j] * _dsigmoid(x[j])
    elif code == 4:
        for j in range(n):
            dst[j] = g[j] * _dtanh(x[j])
    elif code == 5:
        for j in range(n):
            dst[j] = g[j] * _dgelu(x[j])
    elif code == 6:
        for j in range(n):
            dst[j] = g[j] * _dsilu(x[j])
    else:
        for j in range(n):
            dst[j] = g[j] * _delu(x[j], param)


def _dsigmoid(v):
    """The sigmoid's derivative at a scalar (Numba only)."""


def _dtanh(v):
    """tanh's derivative at a scalar (Numba only)."""


def _dsilu(v):
    """silu's derivative at a scalar (Numba only)."""


def _delu(v, alpha):
    """elu's derivative at a scalar (Numba only)."""


def _dgelu(v):
    """gelu's derivative at a scalar (Numba only)."""


@overload(_dsigmoid, jit_options=CALLED)
def _dsigmoid_form(v):
    if v == types.float32:
        return lambda v: sigmoid_grad32(v)

    def form(v):  # as e / (1 + e)**2, e = e**-|v|: s (1 - s) cancels in the tails
        e = math.exp(-abs(v))
        return e / ((1.0 + e) * (1.0 + e))

    return form


@overload(_dtanh, jit_options=CALLED)
def _dtanh_form(v):
    if v == types.float32:
        return lambda v: tanh_grad32(v)

    def form(v):  # as u (2 - u), u = 1 - |tanh v|: 1 - tanh(v)**2 cancels in the tails
        u = 2.0 / (math.exp(2.0 * abs(v)) + 1.0)
        return u * (2.0 - u)

    return form


@overload(_dsilu, jit_options=CALLED)
def _dsilu_form(v):
    if v == types.float32:
        return lambda v: silu_grad32(v)

    def form(v):  # s and 1 - s from e = e**-|v|, so that neither cancels in a tail
        e = math.exp(-abs(v))
        r = 1.0 / (1.0 + e)
        s = r if v >= 0 else e * r
        return s * (1.0 + v * (e * r if v >= 0 else r))

    return form


@overload(_delu, jit_options=CALLED)
def _delu_form(v, alpha):
    if v == types.float32:
        return lambda v, alpha: elu_grad32(v, alpha)
    return lambda v, alpha: 1.0 if v > 0 else alpha * math.exp(v)


@overload(_dgelu, jit_options=CALLED, inline="always")
def _dgelu_form(v):
    if v == types.float32:
        return lambda v: gelu_grad32(v)
    # Phi(v) as erfc(-v / sqrt 2) / 2: 1 + erf(v / sqrt 2) cancels in the negative tail
    return lambda v: 0.5 * math.erfc(-v * _INV_SQRT2) + v * _INV_SQRT2PI * math.exp(-0.5 * v * v)
