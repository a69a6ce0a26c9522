"""examples/train_digits.py: a shortened run learns (loss falls, accuracy clears 90%)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("sklearn")
_PATH = Path(__file__).resolve().parents[1] / "examples" / "train_digits.py"


@pytest.fixture(scope="module")
def example():
    spec = importlib.util.spec_from_file_location("train_digits", _PATH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_short_training_learns(example, rng):
    params, history, acc = example.train(epochs=10, seed=int(rng.integers(1000)),
                                         progress=False)
    assert history[-1] < 0.5 * history[0], history
    assert acc > 0.90, acc
    assert params["w1"].dtype == np.float32


def test_writes_the_pngs(example, tmp_path):
    assert example.main(["--epochs", "1", "--out", str(tmp_path)]) == 0
    for name in ("digits_filters.png", "digits_features.png"):
        data = (tmp_path / name).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and data.endswith(b"IEND\xaeB`\x82")
