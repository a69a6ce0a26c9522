"""Slow, obviously-correct reference implementations: the test oracle.

Independent of numbaconv's code: explicit ``numpy.pad``, ``sliding_window_view``
and an einsum per group, computed in float64 (or higher).
"""

from __future__ import annotations

import itertools
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

NUMPY_MODE = {
    "zeros": "constant",
    "reflect": "reflect",
    "replicate": "edge",
    "circular": "wrap",
    "symmetric": "symmetric",
}


def _tuple(v, d):
    return tuple(v) if isinstance(v, (tuple, list)) else (v,) * d


def ref_padding(padding, in_shape, kernel, stride, dilation):
    """Per-axis (before, after) pairs from any accepted padding form."""
    d = len(kernel)
    if padding == "valid":
        return [(0, 0)] * d
    if padding == "same":
        pairs = []
        for n, k, s, dl in zip(in_shape, kernel, stride, dilation):
            out = math.ceil(n / s)
            total = max((out - 1) * s + dl * (k - 1) + 1 - n, 0)
            pairs.append((total // 2, total - total // 2))
        return pairs
    if isinstance(padding, int):
        return [(padding, padding)] * d
    return [tuple(p) if isinstance(p, (tuple, list)) else (p, p) for p in padding]


def ref_activation(y, activation):
    if activation is None:
        return y
    if activation == "relu":
        return np.maximum(y, 0)
    if activation == "leaky_relu":
        return np.where(y < 0, 0.01 * y, y)
    if activation == "sigmoid":
        return 1 / (1 + np.exp(-y))
    if activation == "tanh":
        return np.tanh(y)
    if activation == "gelu":
        erf = np.vectorize(math.erf, otypes=[float])
        return 0.5 * y * (1 + erf(y / math.sqrt(2)))
    if activation == "silu":
        return y / (1 + np.exp(-y))
    if activation == "elu":
        return np.where(y < 0, np.expm1(np.minimum(y, 0)), y)
    raise ValueError(activation)


def conv_ref(x, w, bias=None, stride=1, padding=0, dilation=1, groups=1,
             padding_mode="zeros", activation=None):
    """Batched N-D cross-correlation, as torch.nn.functional.conv*d, in float64."""
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    d = w.ndim - 2
    kernel = w.shape[2:]
    stride = _tuple(stride, d)
    dilation = _tuple(dilation, d)
    pads = ref_padding(padding, x.shape[2:], kernel, stride, dilation)
    mode = NUMPY_MODE[padding_mode]
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads], mode=mode)
    ext = [dl * (k - 1) + 1 for k, dl in zip(kernel, dilation)]
    axes = tuple(range(2, 2 + d))
    win = sliding_window_view(xp, ext, axis=axes)            # (N, C, *pos, *ext)
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
              + tuple(slice(None, None, dl) for dl in dilation)]  # (N, C, *out, *k)
    n, c = x.shape[:2]
    cout = w.shape[0]
    cg, mg = c // groups, cout // groups
    letters = "pqrstuvw"[:d]  # spatial axes; n, c, o name batch and channels
    outs = []
    for g in range(groups):
        xs = win[:, g * cg:(g + 1) * cg]
        ws = w[g * mg:(g + 1) * mg]
        outs.append(np.einsum(f"nc{letters.upper()}{letters},oc{letters}->no{letters.upper()}",
                              xs, ws))
    y = np.concatenate(outs, axis=1)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape((1, -1) + (1,) * d)
    return ref_activation(y, activation)


def conv_weight_grad_ref(x, g, kernel, stride=1, padding=0, dilation=1, padding_mode="zeros"):
    """The weight gradient of an ungrouped conv_ref: each window times grad_output, summed."""
    x = np.asarray(x, dtype=np.float64)
    d = len(kernel)
    stride = _tuple(stride, d)
    dilation = _tuple(dilation, d)
    pads = ref_padding(padding, x.shape[2:], kernel, stride, dilation)
    xp = np.pad(x, [(0, 0), (0, 0)] + [tuple(p) for p in pads], mode=NUMPY_MODE[padding_mode])
    ext = [dl * (k - 1) + 1 for k, dl in zip(kernel, dilation)]
    win = sliding_window_view(xp, ext, axis=tuple(range(2, 2 + d)))
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)
              + tuple(slice(None, None, dl) for dl in dilation)]  # (N, C, *out, *k)
    letters = "pqrstuvw"[:d]
    return np.einsum(f"nc{letters.upper()}{letters},no{letters.upper()}->oc{letters}", win,
                     np.asarray(g, np.float64))


def depthwise_ref(x, w, **kw):
    return conv_ref(x, w, groups=x.shape[1], **kw)


def separable_ref(x, dw, pw, bias=None, activation=None, **kw):
    y = depthwise_ref(x, dw, **kw)
    pw = np.asarray(pw, np.float64).reshape(pw.shape[0], pw.shape[1])
    z = np.einsum("nc...,oc->no...", y, pw)
    if bias is not None:
        z = z + np.asarray(bias, np.float64).reshape((1, -1) + (1,) * (x.ndim - 2))
    return ref_activation(z, activation)


def conv_transpose_ref(x, w, bias=None, stride=1, padding=0, output_padding=0, groups=1,
                       dilation=1, activation=None):
    """Transposed convolution by its definition: every input sample scatters ``x * w``.

    ``padding`` is an int, per-axis ints or per-axis (before, after) pairs.
    """
    x = np.asarray(x, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    d = w.ndim - 2
    n_in = x.shape[2:]
    kernel = w.shape[2:]
    stride = _tuple(stride, d)
    dilation = _tuple(dilation, d)
    op = _tuple(output_padding, d)
    pads = ref_padding(padding, n_in, kernel, stride, dilation)
    full = [(n - 1) * s + dl * (k - 1) + 1 + o
            for n, s, dl, k, o in zip(n_in, stride, dilation, kernel, op)]
    cin = x.shape[1]
    ci, mo = cin // groups, w.shape[1]
    y = np.zeros((x.shape[0], mo * groups) + tuple(full))
    for g in range(groups):
        xg = x[:, g * ci:(g + 1) * ci]
        for t in np.ndindex(*kernel):
            contrib = np.einsum("nc...,co->no...", xg, w[g * ci:(g + 1) * ci, :][(..., *t)])
            sl = tuple(slice(ti * dl, ti * dl + (n - 1) * s + 1, s)
                       for ti, dl, n, s in zip(t, dilation, n_in, stride))
            y[(slice(None), slice(g * mo, (g + 1) * mo)) + sl] += contrib
    out = tuple(f - pb - pa for f, (pb, pa) in zip(full, pads))
    y = y[(slice(None), slice(None)) + tuple(slice(pb, pb + n) for (pb, _), n in zip(pads, out))]
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape((1, -1) + (1,) * d)
    return ref_activation(y, activation)


def _pool_positions(n, k, s, p, dl, out):
    """Per output index of one axis: the input positions of its taps (may be out of range)."""
    return [[o * s - p + t * dl for t in range(k)] for o in range(out)]


def pool_out_size(n, k, s, p, dl, ceil_mode):
    """PyTorch's rule, restated: floor or ceil, and a ceil window must start before n + p."""
    span = n + 2 * p - dl * (k - 1) - 1
    out = (-(-span // s) if ceil_mode else span // s) + 1
    if ceil_mode and (out - 1) * s >= n + p:
        out -= 1
    return out


def pool_ref(x, op, kernel, stride, padding, dilation, ceil_mode, count_include_pad=True,
             divisor_override=None, norm_type=None):
    """Max / average / Lp pooling of (N, C, *spatial) by explicit loops over outputs.

    Returns (values, indices) for "max", values otherwise.
    """
    x = np.asarray(x, dtype=np.float64)
    d = len(kernel)
    sp = x.shape[2:]
    outs = [pool_out_size(n, k, s, p, dl, ceil_mode)
            for n, k, s, p, dl in zip(sp, kernel, stride, padding, dilation)]
    pos = [_pool_positions(n, k, s, p, dl, o)
           for n, k, s, p, dl, o in zip(sp, kernel, stride, padding, dilation, outs)]
    y = np.zeros(x.shape[:2] + tuple(outs))
    idx = np.zeros(y.shape, dtype=np.int64)
    flat = x.reshape(x.shape[:2] + (-1,))
    for o in np.ndindex(*outs):
        taps = list(itertools.product(*(pos[a][o[a]] for a in range(d))))
        inside = [t for t in taps if all(0 <= t[a] < sp[a] for a in range(d))]
        padded = [t for t in taps
                  if all(-padding[a] <= t[a] < sp[a] + padding[a] for a in range(d))]
        fl = [int(np.ravel_multi_index(t, sp)) for t in inside]
        vals = flat[:, :, fl]
        if op == "max":
            for n_, c_ in np.ndindex(*x.shape[:2]):
                best, bi = -np.inf, fl[0]
                for v, i in zip(vals[n_, c_], fl):
                    if v > best or np.isnan(v):
                        best, bi = v, i
                y[(n_, c_) + o] = best
                idx[(n_, c_) + o] = bi
        elif op == "avg":
            div = divisor_override or (len(padded) if count_include_pad else len(inside))
            y[(slice(None), slice(None)) + o] = vals.sum(axis=2) / div
        else:  # lp: torch scales a short window up to the full kernel size
            total = (vals ** norm_type).sum(axis=2) * (math.prod(kernel) / len(inside))
            with np.errstate(invalid="ignore"):
                y[(slice(None), slice(None)) + o] = total ** (1.0 / norm_type)
    return (y, idx) if op == "max" else y


def interpolate_ref(plane, point):
    """N-linear interpolation of ``plane`` (C, *spatial) at ``point``, torchvision's rule.

    A point that is not finite or lies outside ``(-1, size)`` on some axis
    gives zeros; corners outside the input count as zero.
    """
    size = plane.shape[1:]
    if not all(math.isfinite(v) and -1 < v < n for v, n in zip(point, size)):
        return np.zeros(plane.shape[0])
    lo = [math.floor(v) for v in point]
    total = np.zeros(plane.shape[0])
    for corner in itertools.product((0, 1), repeat=len(size)):
        idx = tuple(low + c for low, c in zip(lo, corner))
        if any(i < 0 or i >= n for i, n in zip(idx, size)):
            continue
        weight = 1.0
        for v, low, c in zip(point, lo, corner):
            weight *= (v - low) if c else 1.0 - (v - low)
        total += weight * plane[(slice(None),) + idx]
    return total


def deform_conv_ref(x, offset, w, bias=None, stride=1, padding=0, dilation=1, mask=None,
                    activation=None):
    """Deformable convolution by its definition, one interpolated sample at a time.

    Batched ``x``; the groups and offset groups are inferred from the shapes,
    as ``torchvision.ops.deform_conv2d`` does.
    """
    x = np.asarray(x, dtype=np.float64)
    offset = np.asarray(offset, dtype=np.float64)
    w = np.asarray(w, dtype=np.float64)
    d = w.ndim - 2
    kernel = w.shape[2:]
    stride = _tuple(stride, d)
    dilation = _tuple(dilation, d)
    pads = ref_padding(padding, x.shape[2:], kernel, stride, dilation)
    n, c = x.shape[:2]
    out_shape = offset.shape[2:]
    taps = list(itertools.product(*(range(k) for k in kernel)))
    og = offset.shape[1] // (d * len(taps))
    cpo = c // og
    cols = np.zeros((n, c, len(taps)) + out_shape)  # the sampled (and masked) inputs
    for b, o, h, (t, tap) in itertools.product(range(n), np.ndindex(*out_shape), range(og),
                                               enumerate(taps)):
        ch = (h * len(taps) + t) * d
        point = [o[a] * stride[a] - pads[a][0] + tap[a] * dilation[a]
                 + offset[(b, ch + a) + o] for a in range(d)]
        v = interpolate_ref(x[b, h * cpo:(h + 1) * cpo], point)
        if mask is not None:
            v = v * float(mask[(b, h * len(taps) + t) + o])
        cols[(b, slice(h * cpo, (h + 1) * cpo), t) + o] = v
    groups = c // w.shape[1]
    cg, mg = c // groups, w.shape[0] // groups
    wt = w.reshape(w.shape[0], cg, len(taps))
    y = np.concatenate([np.einsum("nct...,oct->no...", cols[:, g * cg:(g + 1) * cg],
                                  wt[g * mg:(g + 1) * mg]) for g in range(groups)], axis=1)
    if bias is not None:
        y = y + np.asarray(bias, np.float64).reshape((1, -1) + (1,) * d)
    return ref_activation(y, activation)
