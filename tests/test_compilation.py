"""Compilation behaviour: nothing at import, few specialisations, kernels cached on disk."""

from __future__ import annotations

import numba
import numpy as np
import pytest
from checks import in_fresh_process

import numbaconv
from numbaconv import (
    _col2im,
    _core,
    _deform_kernels,
    _implicit,
    _pointwise,
    _separable_rows,
    _winograd,
    _winograd1d,
    _winograd_grad,
)

KERNELS = (_core.window_gemm, _core.window_direct, _deform_kernels.window_deform,
           _winograd.winograd_conv, _winograd_grad.winograd_weight_grad, _pointwise.onetap_conv,
           _col2im.gemm_col2im, _col2im.transpose_groups, _implicit.implicit_conv,
           _implicit.implicit_flat,
           _winograd1d.winograd1d_conv, _separable_rows.separable_rows)


def test_import_compiles_nothing():
    result = in_fresh_process(
        "import json, numbaconv\n"
        "from numbaconv import _core\n"
        "print(json.dumps([len(k.signatures) for k in (_core.window_gemm, _core.window_direct)]))"
    )
    assert result == [0, 0]


def test_specialisations_do_not_grow_with_rank():
    def call_all_ranks(act):
        for d in range(1, 6):
            x = np.ones((1, 4) + (4,) * d, np.float32)
            numbaconv.conv(x, np.ones((8, 4) + (2,) * d, np.float32), padding=1,
                           activation=act)  # tile GEMM
            numbaconv.depthwise_conv(x, np.ones((4, 1) + (2,) * d, np.float32),
                                     activation=act)  # direct
            numbaconv.conv(x, np.ones((8, 4) + (1,) * d, np.float32), stride=2,
                           activation=act)  # one tap
            numbaconv.conv_transpose(x, np.ones((4, 3) + (2,) * d, np.float32), stride=2,
                                     activation=act)  # col2im
            numbaconv.separable_conv(x, np.ones((4, 1) + (3,) * d, np.float32),
                                     np.ones((8, 4), np.float32), padding=1,
                                     activation=act)  # bands of rows
            numbaconv.conv(x[0], np.ones((8, 4) + (3,) * d, np.float32), padding="same",
                           padding_mode="reflect", stride=2, activation="gelu")
            xi = np.ones((1, 3) + (4,) * (d - 1) + (40,), np.float32)  # implicit GEMM
            numbaconv.conv(xi, np.ones((16, 3) + (3,) * (d - 1) + (7,), np.float32), stride=2,
                           activation=act)
            if d == 1:  # 1-D Winograd
                numbaconv.conv(np.ones((1, 64, 12), np.float32), np.ones((32, 64, 3), np.float32),
                               activation=act)
            if d in (2, 3):  # Winograd, forward and weight gradient
                xw = np.ones((1, 16) + (4,) * d, np.float32)
                w3 = np.ones((16, 16) + (3,) * d, np.float32)
                y = numbaconv.conv(xw, w3, padding=1, activation=act)
                numbaconv.conv_backward(y, xw, w3, padding=1)
            off = np.zeros((1, d * 2 ** d) + (5,) * d, np.float32)
            numbaconv.deform_conv(x, off, np.ones((8, 4) + (2,) * d, np.float32), padding=1,
                                  mask=off[:, : 2 ** d] if d % 2 else None, activation=act)

    call_all_ranks(None)
    before = [len(k.signatures) for k in KERNELS]
    # the second pass, with the other fused activations, compiles no kernel again: relu is
    # compiled into each kernel and sigmoid, tanh, silu and elu are called through the
    # addresses of their own compiled runs (numbaconv._activations.activate_run)
    for act in ("relu", "leaky_relu", "sigmoid", "tanh", "silu", "elu"):
        call_all_ranks(act)
    numbaconv.conv(np.ones((2, 3, 9, 9), np.float32)[:, :, ::-1], np.ones((3, 3, 1, 1), np.float32),
                   padding_mode="circular")
    assert [len(k.signatures) for k in KERNELS] == before
    # float32 and float64 at most; the tile GEMM's plain and separable forms are two each
    # (the plain form's depthwise argument is None, so its gather is never compiled), and so
    # are the tile GEMM's and the implicit GEMM's N-D and 1-D forms (their segments None
    # beyond 1-D): this float32 run makes at most four of either
    two_forms = (_core.window_gemm, _implicit.implicit_conv)
    assert all(n <= (4 if k in two_forms else 2) for k, n in zip(KERNELS, before)), before


def test_worker_rows_compiles_once_a_dtype_whatever_constants_its_callers_pass():
    """Jitted callers pass constants to ``worker_rows`` (``1``, ``True``, ``False``); it is
    still compiled once a dtype (``_config.plain_calls``). Its rows are 64-byte aligned, a
    whole number of 128 bytes long, and zeroed when asked."""

    @numba.njit
    def rows(x):
        return (_core.worker_rows(1, 3, x.dtype, False), _core.worker_rows(2, 37, x.dtype, True),
                _core.worker_rows(x.shape[0], 5, x.dtype, True))

    for dtype in (np.float32, np.float64):
        for a, nw, n in zip(rows(np.ones(3, dtype)), (1, 2, 3), (3, 37, 5)):
            assert a.dtype == dtype and a.shape[0] == nw and a.shape[1] >= n
            assert a.ctypes.data % 64 == 0 and a.strides[0] % 128 == 0
        assert not rows(np.ones(3, dtype))[1].any()
    dtypes = [sig[2] for sig in _core.worker_rows.signatures]
    assert len(dtypes) == len(set(dtypes)), _core.worker_rows.signatures


@pytest.fixture(scope="module")
def fresh_compile() -> dict:
    """A fresh process with an empty cache (a kernel loaded from it types nothing): a
    parallel function of its own, then the one-tap kernel with relu, then with silu."""
    return in_fresh_process(
        "import json, os, tempfile\n"
        "os.environ['NUMBA_CACHE_DIR'] = tempfile.mkdtemp()\n"
        "import numba, numpy as np, numbaconv\n"
        "from numbaconv import _activations, _compile_hooks\n"
        "@numba.njit(parallel=True)\n"
        "def total(a):\n"
        "    s = 0.0\n"
        "    for i in numba.prange(a.shape[0]):\n"
        "        s += a[i]\n"
        "    return s\n"
        "total(np.ones(10))\n"
        "own = [_compile_hooks.skipped, _compile_hooks.skipped_code]\n"
        "x = np.linspace(-3, 3, 2 * 4 * 36).reshape(2, 4, 6, 6)\n"
        "w = np.linspace(-1, 1, 32).reshape(8, 4, 1, 1)\n"
        "numbaconv.conv(x, w, activation='relu')\n"
        "plain = [len(_activations.fused_run.signatures), len(_activations._RUN_FUNCS)]\n"
        "kernel = [_compile_hooks.skipped - own[0], _compile_hooks.skipped_code - own[1]]\n"
        "y = numbaconv.conv(x, w, activation='silu')\n"
        "z = np.einsum('nchw,oc->nohw', x, w[:, :, 0, 0])\n"
        "err = float(np.abs(y - z / (1 + np.exp(-z))).max())\n"
        "print(json.dumps(dict(own=own, kernel=kernel, plain=plain,\n"
        "                      runs=len(_activations._RUN_FUNCS), err=err)))"
    )


def test_kernels_compile_no_transcendental_activation(fresh_compile):
    """A kernel run without sigmoid, tanh, silu or elu compiles none of them; one with them
    calls their run, compiled once a dtype (numbaconv._activations.transcendental_runs)."""
    r = fresh_compile
    assert r["plain"] == [0, 0] and r["runs"] == 2 and r["err"] < 1e-12, r


def test_only_numbaconv_kernels_skip_the_intermediate_optimisations(fresh_compile):
    """The one-tap kernel's prange body skips the module optimisation of its three
    intermediate libraries and, on the Numba versions checked, the machine code of two
    (numbaconv._compile_hooks); a parallel function of another module keeps all of them."""
    from numbaconv import _compile_hooks

    code = 2 if _compile_hooks._numba_version() in _compile_hooks._CHECKED else 0
    r = fresh_compile
    assert r["own"] == [0, 0] and r["kernel"] == [3, code], r


def test_cached_kernels_load_without_the_registries_refresh(tmp_path):
    """A fresh process with a warm cache loads numbaconv's kernels without Numba's refresh
    of its registries (numbaconv._compile_hooks): its first conv imports none of them
    (``numba.np.arraymath`` is one), and is right. A function of its own compiled after
    that refreshes them, and calls a loaded numbaconv helper; another package's cached
    function still refreshes them when it loads."""
    from numbaconv import _compile_hooks

    checked = _compile_hooks._numba_version() in _compile_hooks._CHECKED
    code = (
        "import json, sys, numba, numpy as np, numbaconv\n"
        "from numbaconv import _compile_hooks, _core\n"
        "x = np.linspace(-1, 1, 4 * 36, dtype=np.float32).reshape(1, 4, 6, 6)\n"
        "w = np.linspace(-2, 1, 8 * 36, dtype=np.float32).reshape(8, 4, 3, 3)\n"
        "y = numbaconv.conv(x, w)\n"
        "first = ['numba.np.arraymath' in sys.modules, _compile_hooks.skipped_refresh > 0]\n"
        "ref = sum(np.einsum('nchw,oc->nohw', x[:, :, i:i + 4, j:j + 4], w[:, :, i, j])\n"
        "          for i in range(3) for j in range(3))\n"
        "@numba.njit\n"
        "def rows(a):\n"
        "    return _core.worker_rows(2, 5, a.dtype, True)\n"
        "r = rows(x)\n"
        "got = [r.shape[0], int(r.dtype == np.float32), float(abs(r).max())]\n"
        "print(json.dumps(dict(first=first, err=float(np.abs(y - ref).max()), rows=got,\n"
        "                      after='numba.np.arraymath' in sys.modules)))"
    )
    in_fresh_process(code)  # compiles (or loads) and writes the cache
    r = in_fresh_process(code)
    assert r["first"] == ([False, True] if checked else [True, False]), r
    assert r["err"] < 1e-4 and r["rows"] == [2, 1, 0.0] and r["after"], r

    (tmp_path / "own_cached.py").write_text(
        "import numba\n\n\n@numba.njit(cache=True)\ndef inc(a):\n    return a + 1\n")
    other = (
        f"import json, sys; sys.path.insert(0, {str(tmp_path)!r})\n"
        "import numpy as np, own_cached\n"
        "own_cached.inc(np.ones(3))\n"
        "print(json.dumps([sum(own_cached.inc.stats.cache_hits.values()),"
        " 'numba.np.arraymath' in sys.modules]))"
    )
    in_fresh_process(other)
    assert in_fresh_process(other) == [1, True]


def test_second_process_loads_kernels_from_disk_cache():
    code = (
        "import json, numpy as np, numbaconv\n"
        "from numbaconv import _core\n"
        "numbaconv.conv(np.ones((1, 4, 6, 6), np.float32), np.ones((8, 4, 3, 3), np.float32))\n"
        "print(json.dumps([sum(_core.window_gemm.stats.cache_hits.values()),"
        " sum(_core.window_gemm.stats.cache_misses.values())]))"
    )
    in_fresh_process(code)  # compiles (or loads) and writes the cache
    hits, misses = in_fresh_process(code)
    assert hits == 1 and misses == 0
