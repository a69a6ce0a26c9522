"""Shared fixtures: a fresh random seed each session (printed, and settable)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

SEED = int(os.environ.get("NUMBACONV_TEST_SEED", np.random.SeedSequence().entropy % 2**32))


def pytest_report_header(config):
    return f"numbaconv test seed: NUMBACONV_TEST_SEED={SEED}"


@pytest.fixture
def rng(request):
    """Fresh random inputs each session, reproducible from the printed seed."""
    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])
