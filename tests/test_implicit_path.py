"""The implicit-GEMM path (many taps, few input channels) against the independent reference.

:func:`numbaconv._implicit.implicit` takes the windows of at most 8 input
channels per group (16 at stride 1, any number in 1-D at stride 1) with at
least 16 reduction steps, 16 output channels per group and 16 outputs along
the last axis; each test checks that it was taken.
The shapes make whole and narrow last panels, blocks of output channels cut
short, strides and dilations that split the last axis into phases, groups,
and every padding mode through the virtual rows.
"""

from __future__ import annotations

import numpy as np
import pytest
from checks import assert_close
from reference import conv_ref

import numbaconv
from numbaconv import _implicit, _microkernel, _winograd
from numbaconv._geometry import conv_window, kernel_tables

MODES = ["zeros", "reflect", "replicate", "circular", "symmetric"]
DTYPES = [np.float32, np.float64]


@pytest.fixture
def calls(count_calls):
    """How many times the implicit-GEMM kernel ran."""
    return count_calls(_implicit, "implicit")


@pytest.fixture
def l1_budget(monkeypatch):
    """A setter of ``_implicit._L1_BYTES`` for the test; the job shapes cached under it are
    cleared when it is set and after the test."""

    def clear():
        _implicit._channel_parts.cache_clear()
        _implicit._job_shape.cache_clear()

    def set_budget(nbytes):
        monkeypatch.setattr(_implicit, "_L1_BYTES", nbytes)
        clear()

    yield set_budget
    clear()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", [1, 2, 3])
def test_matches_reference(rng, calls, d, mode, dtype):
    # 19 output channels per group (a block of rows cut short); the last axis gives
    # 2-3 panels, the last of them narrow or wide
    shape = {1: (83,), 2: (7, 61), 3: (4, 5, 45)}[d]
    kernel = {1: (7,), 2: (3, 5), 3: (2, 3, 3)}[d]
    stride = (1, 2, 2)[-d:]
    dilation = (2, 1, 1)[-d:] if mode == "zeros" else 1
    padding = 2
    x = rng.standard_normal((2, 6) + shape).astype(dtype)
    w = rng.standard_normal((38, 3) + kernel).astype(dtype)
    b = rng.standard_normal(38).astype(dtype)
    kw = dict(stride=stride, padding=padding, dilation=dilation, groups=2, padding_mode=mode,
              activation="silu")
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1
    assert y.dtype == dtype
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("parts", [2, 3])
def test_reduction_in_parts(rng, calls, l1_budget, parts, dtype):
    """A row job's reduction split into parts of whole channels (plane rows past L1): the
    bias counted once, the activation applied after the last part, blocks of rows and
    vectors cut short, two groups."""
    x = rng.standard_normal((2, 32, 4, 5, 40)).astype(dtype)
    w = rng.standard_normal((38, 16, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(38).astype(dtype)
    kw = dict(padding=1, groups=2, activation="relu")
    tab = kernel_tables(conv_window(x.shape[2:], w.shape[2:], 1, 1, 1))
    args = (tab, 16, x.itemsize, 3)
    whole = 16 * 27
    if dtype == np.float64:  # (16 channels of 8-byte rows: already past L1)
        assert _implicit._channel_parts(*args) < whole
    # the budget that splits the channels into ``parts``
    per = 3 * (3 + (-(-4 * 3 // 5) + 1) - 1) * 42 * x.itemsize
    l1_budget(-(-16 * per // parts))
    assert _implicit._channel_parts(*args) == -(-16 // parts) * 27
    assert _implicit._job_shape(*args)[1] == -(-16 // parts) * 27
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_one_channel_parts_on_wide_blocks(rng, calls, l1_budget, dtype):
    """Each part of the reduction one channel (an L1 budget of one byte), 18 output channels a
    group: on AVX2 the wide blocks (6 rows), whose sums are then added part by part."""
    x = rng.standard_normal((2, 8, 4, 5, 40)).astype(dtype)
    w = rng.standard_normal((36, 4, 3, 3, 3)).astype(dtype)
    b = rng.standard_normal(36).astype(dtype)
    kw = dict(padding=1, groups=2, activation="relu")
    assert not _implicit.narrow_blocks(18) or not _microkernel.NARROW_ROWS
    l1_budget(1)
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", [((224, 224), 3, (7, 7), 2), ((32, 32, 32), 16, (3, 3, 3), 1),
                                  ((128, 128), 3, (5, 5), 1), ((40, 37), 3, (7, 7), 2)])
def test_job_shape(case, dtype):
    """Row jobs as long as they can be, up to ``_RUN_MAX`` blocks, without splitting the
    reduction in more parts than at ``_RUN`` blocks; twice as long would."""
    shape, cg, kernel, stride = case
    tab = kernel_tables(conv_window(shape, kernel, stride, tuple(k // 2 for k in kernel), 1))
    itemsize, nvb = np.dtype(dtype).itemsize, _microkernel.TAP_VECTORS
    run, part = _implicit._job_shape(tab, cg, itemsize, nvb)
    assert run in (_implicit._RUN, 2 * _implicit._RUN, _implicit._RUN_MAX)
    assert part == _implicit._channel_parts(tab, cg, itemsize, nvb, _implicit._RUN)
    assert part == _implicit._channel_parts(tab, cg, itemsize, nvb, run)
    if run < _implicit._RUN_MAX:
        assert _implicit._channel_parts(tab, cg, itemsize, nvb, 2 * run) < part


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("cout", [24, 30])
def test_stem_shape_and_image_chunks(rng, calls, monkeypatch, cout, dtype):
    """A 7x7 stride-2 stem on RGB (the bench's shape, smaller), one image's planes per worker
    at a time (three images: with two workers, chunks of two and one); on AVX2, 24 output
    channels take the narrow blocks, 30 the wide ones."""
    monkeypatch.setattr(_implicit, "_WORKER_PLANE_BYTES", 1)
    x = rng.standard_normal((3, 3, 40, 37)).astype(dtype)
    w = rng.standard_normal((cout, 3, 7, 7)).astype(dtype)
    y = numbaconv.conv(x, w, stride=2, padding=3)
    assert calls[0] == 1
    assert_close(y, conv_ref(x, w, stride=2, padding=3), dtype)
    assert_close(numbaconv.conv(x[0], w, stride=2, padding=3), y[0], dtype)  # unbatched


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
def test_1d_segments_at_stride_1(rng, calls, mode, dtype):
    """1-D at stride 1, many channels: per-job segments (two runs of panels and a short one),
    the padding through the map on both sides of the copied run."""
    nr = _microkernel.TAP_VECTORS * _microkernel.lanes(dtype)
    n = 2 * _implicit._RUN_1D * nr + 37
    x = rng.standard_normal((2, 40, n)).astype(dtype)
    w = rng.standard_normal((24, 40, 3)).astype(dtype)
    b = rng.standard_normal(24).astype(dtype)
    kw = dict(padding=((3, 1),), dilation=2, padding_mode=mode, activation="relu")
    if mode != "zeros":
        kw["padding"] = 2
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


def test_fewer_jobs_than_plane_builds(rng, calls):
    """One output panel of one row, three channels' planes: the builders outnumber the jobs."""
    x = rng.standard_normal((1, 3, 3, 40)).astype(np.float32)
    w = rng.standard_normal((16, 3, 3, 7)).astype(np.float32)
    assert_close(numbaconv.conv(x, w, stride=2), conv_ref(x, w, stride=2), np.float32)
    assert calls[0] == 1


@pytest.mark.parametrize("dtype", DTYPES)
def test_panel_widths(rng, calls, dtype):
    """Every length of the last axis from the path's minimum (16) to two panels and more: last
    panels of one, two and three vectors, whole and not."""
    nr = _microkernel.TAP_VECTORS * _microkernel.lanes(dtype)
    w = rng.standard_normal((16, 2, 3, 3)).astype(dtype)
    for n in range(16, 2 * nr + 2):
        x = rng.standard_normal((1, 2, 3, n + 2)).astype(dtype)
        assert_close(numbaconv.conv(x, w), conv_ref(x, w), dtype)
    assert calls[0] == 2 * nr + 2 - 16


def test_other_windows_take_other_paths(rng, calls, monkeypatch):
    """Many channels (the tile GEMM or Winograd, here with every batch taken as enough
    tiles), 16 at a stride, few taps, few outputs or output channels."""
    monkeypatch.setattr(_winograd, "_MIN_PRODUCTS", 0)
    for xs, ws, st in [((1, 24, 8, 20), (16, 24, 3, 3), 1), ((1, 16, 8, 70), (16, 16, 3, 3), 2),
                       ((1, 16, 70), (16, 16, 3), 2),
                       ((1, 4, 8, 20), (16, 4, 1, 3), 1), ((1, 3, 8, 12), (16, 3, 3, 3), 1),
                       ((1, 3, 8, 20), (8, 3, 3, 3), 1)]:
        x = rng.standard_normal(xs).astype(np.float32)
        w = rng.standard_normal(ws).astype(np.float32)
        assert_close(numbaconv.conv(x, w, stride=st), conv_ref(x, w, stride=st), np.float32)
    assert calls[0] == 0


@pytest.mark.parametrize("mode", ["zeros", "reflect"])
def test_phase_plane_and_offsets(rng, mode):
    """``plane[rowbase + koff[(c, t)] + j]`` is the padded input that tap ``t`` of output ``j``
    reads, checked against ``numpy.pad`` for every output row, tap and position."""
    cg, size, k, stride, dil, pad = 2, (5, 17), (3, 4), (2, 3), (1, 2), ((2, 1), (3, 2))
    win = conv_window(size, k, stride, pad, dil)
    tab = kernel_tables(win, mode)
    x = rng.standard_normal((cg,) + size)
    koff, vls, plen = _implicit._offsets(tab, cg)
    planes = np.zeros(cg * plen)
    vrows = numbaconv._core.virtual_row_table(tab.geom, tab.maps)
    s, vl = stride[1], tab.geom[_implicit.G_VLEN, 1]
    scratch = np.empty(s * vls)
    for c in range(cg):
        _implicit.phase_rows(x[c].ravel(), tab.geom, tab.maps, vrows, s, vls,
                             planes[c * plen:(c + 1) * plen], scratch, 0.0)
    xp = np.pad(x, ((0, 0),) + pad, mode={"zeros": "constant", "reflect": "reflect"}[mode])
    orows = numbaconv._core.output_row_table(tab.geom)
    taps = list(np.ndindex(*k))
    for oy in range(win.out_shape[0]):
        base = (orows[oy] // vl) * s * vls
        for c in range(cg):
            for t, (ty, tx) in enumerate(taps):
                got = planes[base + koff[c * len(taps) + t]:][:win.out_shape[1]]
                want = xp[c, oy * stride[0] + ty * dil[0],
                          tx * dil[1]::stride[1]][:win.out_shape[1]]
                np.testing.assert_array_equal(got, want)


@pytest.fixture
def flat_choices(monkeypatch):
    """A list of the blocks per job in flat mode (0: the row jobs) that each call chose."""
    chosen = []
    run = _implicit.flat_blocks

    def spy(*args):
        chosen.append(run(*args))
        return chosen[-1]

    monkeypatch.setattr(_implicit, "flat_blocks", spy)
    return chosen


@pytest.fixture
def flat(flat_choices, monkeypatch):
    """Flat mode for any weights: :func:`flat_choices`."""
    monkeypatch.setattr(_implicit, "_FLAT_WEIGHT_BYTES", 0)
    return flat_choices


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("d", [2, 3])
def test_flat_mode_matches_reference(rng, calls, flat, d, mode, dtype):
    """Flat mode: panels across output rows (and planes of rows past a 3-D slab's), groups,
    19 output channels a group (a block cut short), dilation, bias and activation."""
    shape = {2: (5, 19), 3: (3, 4, 18)}[d]
    kernel = {2: (3, 3), 3: (2, 3, 3)}[d]
    dilation = (2, 1, 1)[-d:] if mode == "zeros" else 1
    x = rng.standard_normal((2, 6) + shape).astype(dtype)
    w = rng.standard_normal((38, 3) + kernel).astype(dtype)
    b = rng.standard_normal(38).astype(dtype)
    kw = dict(padding=1, dilation=dilation, groups=2, padding_mode=mode, activation="gelu")
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1 and flat[-1] > 0
    assert_close(y, conv_ref(x, w, b, **kw), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_mode_many_channels_few_positions(rng, calls, flat, monkeypatch, dtype):
    """The late layers of a CNN: too few Winograd tiles, so the implicit GEMM in flat mode,
    images a chunk at a time; the row jobs give the same result."""
    monkeypatch.setattr(_implicit, "_WORKER_PLANE_BYTES", 1)
    x = rng.standard_normal((3, 40, 6, 12)).astype(dtype)
    w = rng.standard_normal((20, 40, 3, 3)).astype(dtype)
    b = rng.standard_normal(20).astype(dtype)
    kw = dict(padding=1, padding_mode="replicate", activation="relu")
    y = numbaconv.conv(x, w, b, **kw)
    assert calls[0] == 1 and flat[-1] > 0
    assert_close(y, conv_ref(x, w, b, **kw), dtype)
    monkeypatch.setattr(_implicit, "_FLAT_WEIGHT_BYTES", 10**12)
    assert_close(numbaconv.conv(x, w, b, **kw), y, dtype)
    assert calls[0] == 2 and flat[-1] == 0


def test_flat_mode_only_at_stride_1_beyond_1d(rng, calls, flat):
    x = rng.standard_normal((1, 6, 5, 40)).astype(np.float32)
    numbaconv.conv(x, rng.standard_normal((16, 6, 3, 3)).astype(np.float32), stride=(1, 2))
    numbaconv.conv(x[:, :, 0], rng.standard_normal((16, 6, 7)).astype(np.float32))
    assert calls[0] == 2 and flat == [0, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_flat_mode_for_narrow_rows(rng, calls, flat_choices, dtype):
    """Rows at most half a vector long take flat mode whatever the weights' size; longer
    rows with small weights keep the row jobs."""
    half = _microkernel.VECTOR_BYTES // 2 // np.dtype(dtype).itemsize  # half a vector
    w = rng.standard_normal((16, 20, 3, 3)).astype(dtype)
    for n, flat_taken in [(half, True), (half + 1, False)]:
        x = rng.standard_normal((1, 20, 5, n)).astype(dtype)
        assert_close(numbaconv.conv(x, w, padding=1), conv_ref(x, w, padding=1), dtype)
        assert (flat_choices[-1] > 0) == flat_taken, n
    assert calls[0] == 2
