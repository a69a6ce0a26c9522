"""The one dtype policy: which dtype a computation runs in and returns.

============================  =================  ==============
input dtype(s)                computed in        returned as
============================  =================  ==============
float32                       float32            float32
float64 (or float32+float64)  float64            float64
float16                       float32            float16
integer or bool               float64            float64
complex, object, str, ...     ``TypeError``
============================  =================  ==============
"""

from __future__ import annotations

import functools

import numpy as np


def _check_real(name: str, dtype: np.dtype) -> None:
    if dtype.kind not in "biuf":
        raise TypeError(
            f"{name} must hold real numbers (bool, integer or floating point), got dtype {dtype}"
        )


def result_dtypes(**arrays: np.ndarray | None) -> tuple[np.dtype, np.dtype]:
    """Return ``(compute_dtype, result_dtype)`` for the named arrays (``None`` ignored)."""
    dtypes = []
    for name, a in arrays.items():
        if a is None:
            continue
        _check_real(name, a.dtype)
        dtypes.append(a.dtype)
    return _policy(tuple(dtypes))


@functools.lru_cache(maxsize=64)
def _policy(dtypes: tuple[np.dtype, ...]) -> tuple[np.dtype, np.dtype]:
    common = np.result_type(*dtypes)
    if common.kind in "biu":
        return np.dtype(np.float64), np.dtype(np.float64)
    if common == np.float16:
        return np.dtype(np.float32), np.dtype(np.float16)
    if common == np.float32:
        return np.dtype(np.float32), np.dtype(np.float32)
    return np.dtype(np.float64), np.dtype(np.float64)


def as_array(name: str, a: object) -> np.ndarray:
    """``np.asarray`` that names the argument when it is not a real numeric array."""
    try:
        arr = np.asarray(a)
    except Exception as exc:  # ragged lists and the like
        raise TypeError(f"{name} must be an array of real numbers: {exc}") from None
    _check_real(name, arr.dtype)
    return arr


def to_kernel(a: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """C-contiguous, writeable-typed, native-byte-order array of ``dtype``.

    Kernels are compiled for exactly this array type, so every layout (strided,
    reversed, Fortran, read-only, byte-swapped) reuses one compiled kernel. The
    input is never written to: a copy is made whenever it is not already in
    this form.
    """
    f = a.flags
    if a.dtype == dtype and f.c_contiguous and f.aligned and f.writeable:  # (np.require
        # takes ~3 us to say so)
        return a
    return np.require(a, dtype=dtype, requirements=["C", "A", "W"])
