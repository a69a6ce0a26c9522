"""``python -m numbaconv bench``: every operation beside its peers, measured in one run.

Each row times numbaconv and a peer doing the same work on the same float32
data with the same number of threads: PyTorch (when importable) for the
convolution family, SciPy for what it has (``scipy.ndimage.correlate``). The
ratio is numbaconv's median time over the peer's: below 1 means faster.

Before measuring, glibc's ``malloc`` is asked to keep freed memory for reuse
(:func:`keep_freed_memory`), so that a repeat's fresh output does not sometimes
come from new pages that fault on first touch, by the allocator's history.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import json
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import numba
import numpy as np

import numbaconv


@dataclass
class Case:
    """One benchmark row: a numbaconv call and its peer on the same inputs."""

    name: str
    shape: str
    flops: float
    run: Callable[[], object]
    peer_name: str
    peer: Callable[[], object] | None


@dataclass
class Row:
    name: str
    shape: str
    ms: float
    peer: str
    peer_ms: float | None
    ratio: float | None
    gflops: float
    peer_gflops: float | None


def _torch():
    try:
        import torch
    except Exception:  # noqa: BLE001 -- any import failure means "no peer"
        return None
    return torch


def _conv_flops(out_shape, cin_per_group, kernel) -> float:
    return 2.0 * math.prod(out_shape) * cin_per_group * math.prod(kernel)


def _conv_shape(xs, ws) -> str:
    return f"{xs} -> {ws[0]}, k{'x'.join(map(str, ws[2:]))}"


def _torch_conv(torch, x, w, **kw) -> Callable[[], object] | None:
    """``torch.nn.functional.conv{d}d`` on the same data, or ``None`` without torch."""
    if torch is None:
        return None
    tf = {1: torch.nn.functional.conv1d, 2: torch.nn.functional.conv2d,
          3: torch.nn.functional.conv3d}[w.ndim - 2]
    tx, tw = torch.from_numpy(x), torch.from_numpy(w)

    def peer():
        with torch.no_grad():
            return tf(tx, tw, **kw)

    return peer


def _conv_case(name, xs, ws, torch, dtype=np.float32, groups=1, **kw) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(dtype)
    w = rng.standard_normal(ws).astype(dtype)
    out = numbaconv.conv(x, w, groups=groups, **kw)
    flops = _conv_flops(out.shape, ws[1], ws[2:])
    return Case(name, _conv_shape(xs, ws), flops,
                lambda: numbaconv.conv(x, w, groups=groups, **kw),
                "torch" if torch is not None else "-",
                _torch_conv(torch, x, w, groups=groups, **kw))


def _separable_case(torch) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((8, 128, 56, 56)).astype(np.float32)
    dw = rng.standard_normal((128, 1, 3, 3)).astype(np.float32)
    pw = rng.standard_normal((128, 128)).astype(np.float32)
    flops = 2.0 * 8 * 56 * 56 * (128 * 9 + 128 * 128)
    peer = None
    if torch is not None:
        tx, tdw, tpw = (torch.from_numpy(a) for a in (x, dw, pw[:, :, None, None]))
        F = torch.nn.functional

        def peer():
            with torch.no_grad():
                return F.conv2d(F.conv2d(tx, tdw, padding=1, groups=128), tpw)

    return Case("separable 3x3", "(8, 128, 56, 56) -> 128", flops,
                lambda: numbaconv.separable_conv(x, dw, pw, padding=1),
                "torch" if torch is not None else "-", peer)


def _transpose_case(torch) -> Case:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((16, 256, 8, 8)).astype(np.float32)
    w = rng.standard_normal((256, 128, 4, 4)).astype(np.float32)
    kw = dict(stride=2, padding=1)
    flops = 2.0 * x.size * 128 * 16  # every input sample meets every tap once
    peer = None
    if torch is not None:
        tx, tw = torch.from_numpy(x), torch.from_numpy(w)

        def peer():
            with torch.no_grad():
                return torch.nn.functional.conv_transpose2d(tx, tw, **kw)

    return Case("conv_transpose2d k4 s2", "(16, 256, 8, 8) -> 128, k4x4", flops,
                lambda: numbaconv.conv_transpose(x, w, **kw),
                "torch" if torch is not None else "-", peer)


def _deform_case(name, xs, ws, torch, **kw) -> Case:
    """Deformable convolution with random offsets; the peer is torch's plain convolution.

    (torchvision's CPU ``deform_conv2d`` is about 20x slower than ``conv2d``,
    and its wheel does not load against the CPU build of torch used here.)
    """
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    d = len(ws) - 2
    out = numbaconv.conv(x, w, **kw).shape
    off = rng.standard_normal((xs[0], d * math.prod(ws[2:])) + out[2:]).astype(np.float32)
    flops = _conv_flops(out, ws[1], ws[2:])
    return Case(name, _conv_shape(xs, ws), flops, lambda: numbaconv.deform_conv(x, off, w, **kw),
                "torch conv" if torch is not None else "-", _torch_conv(torch, x, w, **kw))


def _torch_conv_backward(torch, x, w, g, **kw) -> Callable[[], object] | None:
    """torch's conv backward (input and weight gradients) on the same data."""
    if torch is None:
        return None
    tx = torch.tensor(x, requires_grad=True)
    tw = torch.tensor(w, requires_grad=True)
    f = getattr(torch.nn.functional, f"conv{w.ndim - 2}d")
    y = f(tx, tw, **kw)
    tg = torch.from_numpy(g)

    def peer():
        return torch.autograd.grad(y, (tx, tw), tg, retain_graph=True)

    return peer


def _backward_case(name, xs, ws, torch, deform=False, **kw) -> Case:
    """Input and weight gradients (and offsets' for deform_conv) against torch's conv backward."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal(xs).astype(np.float32)
    w = rng.standard_normal(ws).astype(np.float32)
    out = numbaconv.conv(x, w, **kw).shape
    g = rng.standard_normal(out).astype(np.float32)
    flops = 2 * _conv_flops(out, ws[1], ws[2:])
    if deform:
        off = rng.standard_normal((xs[0], (len(ws) - 2) * math.prod(ws[2:])) + out[2:])
        off = off.astype(np.float32)

        def run():
            return numbaconv.deform_conv_backward(g, x, off, w, **kw)
    else:
        def run():
            return numbaconv.conv_backward(g, x, w, **kw)
    return Case(name, _conv_shape(xs, ws), flops, run,
                "torch conv bwd" if torch is not None else "-",
                _torch_conv_backward(torch, x, w, g, **kw))


def _pool_case(name, op, torch_name, *args) -> Case:
    torch = _torch()
    x = np.random.default_rng(0).standard_normal((8, 64, 112, 112)).astype(np.float32)
    out = op(x, *args)
    k = args[0] if isinstance(args[0], int) else math.prod(args[0])
    flops = float(out.size * k * k)  # one compare or add per tap
    peer = None
    if torch is not None:
        tx = torch.from_numpy(x)
        tf = getattr(torch.nn.functional, torch_name)

        def peer():
            with torch.no_grad():
                return tf(tx, *args)

    return Case(name, "(8, 64, 112, 112)", flops, lambda: op(x, *args),
                "torch" if torch is not None else "-", peer)


def _scipy_case(name, shape, kernel) -> Case | None:
    try:
        from scipy import ndimage
    except ImportError:
        return None
    rng = np.random.default_rng(0)
    x = rng.standard_normal(shape).astype(np.float32)
    k = rng.standard_normal(kernel).astype(np.float32)
    flops = 2.0 * x.size * k.size
    return Case(name, f"{shape}, k{'x'.join(map(str, kernel))}", flops,
                lambda: numbaconv.conv(x[None, None], k[None, None], padding="same",
                                       padding_mode="symmetric"),
                "scipy", lambda: ndimage.correlate(x, k, mode="reflect"))


QUICK = ("conv2d 3x3", "depthwise 3x3", "conv1d k3 dilation 4", "deform_conv2d 3x3",
         "correlate 2-D 5x5")


def cases(quick: bool = False) -> list[Case]:
    """The benchmark rows (``quick``: those of ``QUICK``)."""
    torch = _torch()
    makers = {
        "conv2d 3x3": lambda: _conv_case("conv2d 3x3", (8, 64, 56, 56), (64, 64, 3, 3), torch,
                                         padding=1),
        "conv2d 3x3 batch 1": lambda: _conv_case("conv2d 3x3 batch 1", (1, 64, 56, 56),
                                                 (64, 64, 3, 3), torch, padding=1),
        "conv2d 3x3 late layer": lambda: _conv_case("conv2d 3x3 late layer", (1, 512, 7, 7),
                                                    (512, 512, 3, 3), torch, padding=1),
        "conv2d 7x7 s2": lambda: _conv_case("conv2d 7x7 s2", (8, 3, 224, 224), (64, 3, 7, 7),
                                            torch, stride=2, padding=3),
        "pointwise": lambda: _conv_case("pointwise", (8, 256, 14, 14), (512, 256, 1, 1), torch),
        "depthwise 3x3": lambda: _conv_case("depthwise 3x3", (8, 256, 28, 28), (256, 1, 3, 3),
                                            torch, groups=256, padding=1),
        "separable 3x3": lambda: _separable_case(torch),
        "conv2d 3x3 dilation 2": lambda: _conv_case("conv2d 3x3 dilation 2", (4, 64, 64, 64),
                                                    (64, 64, 3, 3), torch, padding=2, dilation=2),
        "conv1d k3 dilation 4": lambda: _conv_case("conv1d k3 dilation 4", (16, 64, 16000),
                                                   (64, 64, 3), torch, dilation=4),
        "conv3d 3x3x3": lambda: _conv_case("conv3d 3x3x3", (2, 16, 32, 32, 32),
                                           (32, 16, 3, 3, 3), torch, padding=1),
        "conv2d 3x3 float64": lambda: _conv_case("conv2d 3x3 float64", (8, 64, 56, 56),
                                                 (64, 64, 3, 3), torch, dtype=np.float64,
                                                 padding=1),
        "conv_transpose2d k4 s2": lambda: _transpose_case(torch),
        "deform_conv2d 3x3": lambda: _deform_case("deform_conv2d 3x3", (4, 64, 32, 32),
                                                  (64, 64, 3, 3), torch, padding=1),
        "deform_conv1d k3": lambda: _deform_case("deform_conv1d k3", (8, 64, 4000), (64, 64, 3),
                                                 torch, padding=1),
        "deform_conv3d 3x3x3": lambda: _deform_case("deform_conv3d 3x3x3", (2, 16, 16, 16, 16),
                                                    (32, 16, 3, 3, 3), torch, padding=1),
        "conv2d 3x3 backward": lambda: _backward_case("conv2d 3x3 backward", (8, 64, 56, 56),
                                                      (64, 64, 3, 3), torch, padding=1),
        "deform_conv2d 3x3 backward": lambda: _backward_case(
            "deform_conv2d 3x3 backward", (4, 64, 32, 32), (64, 64, 3, 3), torch, deform=True,
            padding=1),
        "max_pool2d 3x3 s2 p1": lambda: _pool_case("max_pool2d 3x3 s2 p1", numbaconv.max_pool2d,
                                                   "max_pool2d", 3, 2, 1),
        "avg_pool2d 2x2": lambda: _pool_case("avg_pool2d 2x2", numbaconv.avg_pool2d,
                                             "avg_pool2d", 2),
        "correlate 2-D 5x5": lambda: _scipy_case("correlate 2-D 5x5", (1024, 1024), (5, 5)),
        "correlate 3-D 3x3x3": lambda: _scipy_case("correlate 3-D 3x3x3", (96, 96, 96),
                                                   (3, 3, 3)),
    }
    names = QUICK if quick else list(makers)
    return [c for c in (makers[n]() for n in names) if c is not None]


def _median_ms(fn: Callable[[], object], repeat: int, budget: float) -> float:
    fn()  # warm up (JIT compile, allocator)
    times = []
    start = time.perf_counter()
    while len(times) < repeat and (len(times) < 3 or time.perf_counter() - start < budget):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return 1e3 * float(np.median(times))


def _progress(i: int, n: int, label: str) -> None:
    width = 24
    done = width * i // n
    sys.stderr.write(f"\r[{'#' * done}{'.' * (width - done)}] {i}/{n} {label:<28}")
    sys.stderr.flush()
    if i == n:
        sys.stderr.write("\n")


def keep_freed_memory() -> bool:
    """Ask glibc's ``malloc`` to reuse freed memory instead of returning it to the OS.

    By default glibc serves large blocks (a few MB: most outputs here) from
    fresh ``mmap`` pages or gives freed heap tops back, depending on its
    history, and every first touch of a fresh 4 KB page faults. The same call
    then takes two different times: PyTorch's separable peer flipped between 6
    and 20 ms on this machine, and its conv2d 7x7 between 7 and 26 ms. Both
    sides allocate through ``malloc`` (numpy and PyTorch's CPU allocator), so
    the setting is the same for both; it stays for the rest of the process.
    Returns whether it applied (``False`` without glibc).
    """
    name = ctypes.util.find_library("c")
    try:
        mallopt = ctypes.CDLL(name).mallopt
    except (OSError, AttributeError, TypeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3  # glibc's malloc.h
    big = 2**31 - 1
    return bool(mallopt(m_trim_threshold, big)) and bool(
        mallopt(m_mmap_threshold, 1 << 30) or mallopt(m_mmap_threshold, 32 << 20))


def sgemm_gflops(threads: int) -> float:
    """numpy's float32 matrix product (the practical ceiling), GFLOP/s."""
    a = np.random.default_rng(0).standard_normal((1024, 1024)).astype(np.float32)
    ms = _median_ms(lambda: a @ a, 5, 2.0)
    return 2 * 1024**3 / (ms * 1e6)


def _cpu() -> str:
    """The CPU LLVM compiles for and the vector width the kernels use (ratios differ between
    AVX2 and AVX-512 hosts: asv_bench/NOTES.md, attempt 94)."""
    import llvmlite.binding as llvm

    from ._microkernel import VECTOR_BYTES

    name = numba.config.CPU_NAME or llvm.get_host_cpu_name()
    isa = {64: "AVX-512", 32: "AVX2"}.get(VECTOR_BYTES, f"{8 * VECTOR_BYTES}-bit vectors")
    return f"{name} ({isa})"


def run(quick: bool = False, repeat: int = 10, threads: int = 2,
        progress: bool = True) -> tuple[list[Row], dict]:
    """Measure every case; returns the rows and the run's settings."""
    kept = keep_freed_memory()
    numba.set_num_threads(min(threads, numba.config.NUMBA_NUM_THREADS))
    torch = _torch()
    if torch is not None:
        torch.set_num_threads(threads)
    rows = []
    cs = cases(quick)
    budget = 1.0 if quick else 4.0
    for i, c in enumerate(cs):
        if progress:
            _progress(i, len(cs), c.name)
        ms = _median_ms(c.run, repeat, budget)
        peer_ms = _median_ms(c.peer, repeat, budget) if c.peer is not None else None
        rows.append(Row(c.name, c.shape, ms, c.peer_name, peer_ms,
                        None if peer_ms is None else ms / peer_ms,
                        c.flops / (ms * 1e6),
                        None if peer_ms is None else c.flops / (peer_ms * 1e6)))
    if progress:
        _progress(len(cs), len(cs), "done")
    info = {
        "cpu": _cpu(),
        "numbaconv": numbaconv.__version__,
        "numba": numba.__version__,
        "numpy": np.__version__,
        "torch": getattr(torch, "__version__", None),
        "threading_layer": numba.threading_layer(),
        "threads": numba.get_num_threads(),
        "dtype": "float32 (one float64 row)",
        "numpy_sgemm_gflops": round(sgemm_gflops(threads), 1),
        "malloc": "freed memory kept for reuse" if kept else "default",
        "ratio": "numbaconv time / peer time, medians of the same run (< 1: numbaconv faster)",
    }
    return rows, info


def format_table(rows: list[Row], info: dict) -> str:
    head = ["operation", "shape", "numbaconv ms", "peer", "peer ms", "ratio", "GFLOP/s",
            "peer GFLOP/s"]
    body = [[r.name, r.shape, f"{r.ms:.2f}", r.peer,
             "-" if r.peer_ms is None else f"{r.peer_ms:.2f}",
             "-" if r.ratio is None else f"{r.ratio:.2f}", f"{r.gflops:.1f}",
             "-" if r.peer_gflops is None else f"{r.peer_gflops:.1f}"] for r in rows]
    widths = [max(len(str(v)) for v in col) for col in zip(head, *body)]
    line = "  ".join
    out = [line(h.ljust(w) for h, w in zip(head, widths)),
           line("-" * w for w in widths)]
    out += [line(v.rjust(w) if j >= 2 else v.ljust(w) for j, (v, w) in enumerate(zip(b, widths)))
            for b in body]
    out.append("")
    out.append(f"cpu {info['cpu']}; threading layer {info['threading_layer']}, "
               f"{info['threads']} threads; "
               f"numpy sgemm {info['numpy_sgemm_gflops']} GFLOP/s in this run; "
               f"numba {info['numba']}, numpy {info['numpy']}, torch {info['torch']}; "
               f"malloc: {info['malloc']}")
    out.append("ratio = " + info["ratio"])
    out.append("GFLOP/s = the direct algorithm's multiply-adds per second (3-tap convolutions "
               "at stride 1 run Winograd, F(2,3) per axis or F(4,3) in 1-D, which does fewer)")
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m numbaconv bench",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a short run: fewer rows, repeats")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--repeat", type=int, default=None, help="timed repeats per call")
    parser.add_argument("--threads", type=int, default=2, help="threads for numbaconv and peers")
    args = parser.parse_args(argv)
    repeat = args.repeat or (3 if args.quick else 10)
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    rows, info = run(args.quick, repeat, args.threads, progress=not args.json)
    if args.json:
        print(json.dumps({"info": info, "rows": [asdict(r) for r in rows]}, indent=2))
    else:
        print(format_table(rows, info))
    return 0
