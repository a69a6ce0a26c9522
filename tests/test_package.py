"""The package's namespace: public names load on first use, and what type checkers read
agrees with what runs."""

from __future__ import annotations

import ast
import importlib
import sys
from pathlib import Path

import pytest
from checks import in_fresh_process

import numbaconv


def test_import_loads_neither_numba_nor_a_submodule():
    loaded = in_fresh_process(
        "import json, sys, numbaconv\n"
        "print(json.dumps(sorted(m for m in sys.modules\n"
        "                        if m.split('.')[0] in ('numba', 'numpy')\n"
        "                        or m.startswith('numbaconv.'))))"
    )
    assert loaded == []


def test_first_use_of_a_name_loads_it_and_submodules_stay_reachable():
    result = in_fresh_process(
        "import json, sys, numpy as np, numbaconv\n"
        "x, w = np.ones((1, 2, 5, 5), np.float32), np.ones((3, 2, 3, 3), np.float32)\n"
        "y = numbaconv.conv2d(x, w)\n"
        "print(json.dumps([y.shape, float(y.max()), 'numbaconv.convolution' in sys.modules,\n"
        "                  numbaconv._core.__name__, numbaconv.pooling.__name__]))"
    )
    assert result == [[1, 3, 3, 3], 18.0, True, "numbaconv._core", "numbaconv.pooling"]


@pytest.mark.parametrize("name", numbaconv.__all__)
def test_every_public_name_is_its_submodules_object(name):
    module = importlib.import_module(f"numbaconv.{numbaconv._MODULE_OF[name]}")
    assert getattr(numbaconv, name) is getattr(module, name)
    assert name in dir(numbaconv)


def test_no_public_name_is_also_a_submodule():
    # importing a submodule binds its name in the package, over a function of that name
    modules = {path.stem for path in Path(numbaconv.__file__).parent.glob("*.py")}
    assert not modules & set(numbaconv.__all__)


def test_star_import_gives_every_public_name():
    namespace: dict = {}
    exec("from numbaconv import *", namespace)
    assert set(numbaconv.__all__) <= set(namespace)


def test_unknown_names_are_attribute_errors():
    assert not hasattr(numbaconv, "no_such_function")
    with pytest.raises(AttributeError, match="no_such_function"):
        numbaconv.no_such_function  # noqa: B018
    if "numbaconv.torch" not in sys.modules:  # PyTorch's bridge loads only when imported
        assert not hasattr(numbaconv, "torch")


def test_type_checkers_read_the_same_names():
    tree = ast.parse(Path(numbaconv.__file__).read_text())
    block = next(node for node in tree.body if isinstance(node, ast.If)
                 and getattr(node.test, "id", None) == "TYPE_CHECKING")
    imported = {(node.module, alias.name) for node in block.body
                if isinstance(node, ast.ImportFrom) for alias in node.names}
    assert imported == {(module, name) for name, module in numbaconv._MODULE_OF.items()}
