"""Shared fixtures: a fresh random seed each session (printed, and settable)."""

from __future__ import annotations

import os
import zlib

import numpy as np
import pytest

SEED = int(os.environ.get("NUMBACONV_TEST_SEED", np.random.SeedSequence().entropy % 2**32))
# pytest-xdist's workers start after this import, with this environment: one seed for all
os.environ["NUMBACONV_TEST_SEED"] = str(SEED)


def pytest_report_header(config):
    return f"numbaconv test seed: NUMBACONV_TEST_SEED={SEED}"


@pytest.fixture
def rng(request):
    """Fresh random inputs each session, reproducible from the printed seed."""
    return np.random.default_rng([SEED, zlib.crc32(request.node.nodeid.encode())])


@pytest.fixture
def count_calls(monkeypatch):
    """``count_calls(module, name)``: a one-element list counting calls of ``module.name``."""

    def install(module, name):
        n = [0]
        run = getattr(module, name)

        def spy(*args, **kwargs):
            n[0] += 1
            return run(*args, **kwargs)

        monkeypatch.setattr(module, name, spy)
        return n

    return install
