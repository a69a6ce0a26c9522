"""numbaconv: JIT-compiled N-D convolutions for NumPy, on one Numba sliding-window core.

Every operation takes arrays shaped ``(N, C, *spatial)`` (or unbatched
``(C, *spatial)``) with any number of spatial axes, follows
``torch.nn.functional``'s semantics, and runs as a parallel Numba kernel.
Importing compiles nothing; each kernel compiles on first use (once per
dtype, whatever the rank) and is cached on disk.

Importing is cheap: the submodules, and Numba with them, load on the first use
of a name below (module ``__getattr__``, as in SciPy's and NumPy's SPEC 1). A
script that imports numbaconv and never convolves pays nothing for it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

#: the public names, by the submodule that defines them. No name may also be a submodule's:
#: importing that submodule, from anywhere, would bind the module here over the function.
_EXPORTS: dict[str, tuple[str, ...]] = {
    "activations": (
        "elu", "gelu", "leaky_relu", "relu", "sigmoid", "silu", "softmax", "tanh",
    ),
    "activations_backward": (
        "ActivationGrads", "elu_backward", "gelu_backward", "leaky_relu_backward", "relu_backward",
        "sigmoid_backward", "silu_backward", "softmax_backward", "tanh_backward",
    ),
    "convolution": (
        "conv", "conv1d", "conv2d", "conv3d", "depthwise_conv", "pointwise_conv", "separable_conv",
    ),
    "convolution_backward": (
        "ConvGrads", "SeparableConvGrads", "conv1d_backward", "conv2d_backward", "conv3d_backward",
        "conv_backward", "conv_transpose1d_backward", "conv_transpose2d_backward",
        "conv_transpose3d_backward", "conv_transpose_backward", "depthwise_conv_backward",
        "pointwise_conv_backward", "separable_conv_backward",
    ),
    "deform_backward": (
        "DeformConvGrads", "deform_conv1d_backward", "deform_conv2d_backward",
        "deform_conv3d_backward", "deform_conv_backward",
    ),
    "deformable": (
        "deform_conv", "deform_conv1d", "deform_conv2d", "deform_conv3d",
    ),
    "params": (
        "param_count",
    ),
    "pool_backward": (
        "PoolGrads", "adaptive_avg_pool1d_backward", "adaptive_avg_pool2d_backward",
        "adaptive_avg_pool3d_backward", "adaptive_avg_pool_backward",
        "adaptive_max_pool1d_backward", "adaptive_max_pool2d_backward",
        "adaptive_max_pool3d_backward", "adaptive_max_pool_backward", "avg_pool1d_backward",
        "avg_pool2d_backward", "avg_pool3d_backward", "avg_pool_backward",
        "global_avg_pool_backward", "global_max_pool_backward", "lp_pool1d_backward",
        "lp_pool2d_backward", "lp_pool3d_backward", "lp_pool_backward", "max_pool1d_backward",
        "max_pool2d_backward", "max_pool3d_backward", "max_pool_backward", "max_unpool1d_backward",
        "max_unpool2d_backward", "max_unpool3d_backward", "max_unpool_backward",
    ),
    "pooling": (
        "adaptive_avg_pool", "adaptive_avg_pool1d", "adaptive_avg_pool2d", "adaptive_avg_pool3d",
        "adaptive_max_pool", "adaptive_max_pool1d", "adaptive_max_pool2d", "adaptive_max_pool3d",
        "avg_pool", "avg_pool1d", "avg_pool2d", "avg_pool3d", "global_avg_pool", "global_max_pool",
        "lp_pool", "lp_pool1d", "lp_pool2d", "lp_pool3d", "max_pool", "max_pool1d", "max_pool2d",
        "max_pool3d", "max_unpool", "max_unpool1d", "max_unpool2d", "max_unpool3d",
    ),
    "transposed": (
        "conv_transpose", "conv_transpose1d", "conv_transpose2d", "conv_transpose3d",
    ),
}
_MODULE_OF = {name: module for module, names in _EXPORTS.items() for name in names}

#: submodules that only an explicit import loads (``numbaconv.torch`` needs PyTorch)
_EXPLICIT_ONLY = frozenset({"torch"})

__all__ = sorted(_MODULE_OF)


def __getattr__(name: str) -> Any:
    """A public name, or a submodule (``numbaconv._core``), imported on first use."""
    module = _MODULE_OF.get(name)
    if module is not None:
        value = getattr(importlib.import_module(f".{module}", __name__), name)
        globals()[name] = value  # later lookups do not come here
        return value
    if not name.startswith("__") and name not in _EXPLICIT_ONLY:
        try:  # importing a submodule binds it here, as an eager import did
            return importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as err:
            if err.name != f"{__name__}.{name}":
                raise  # the submodule exists but needs something missing
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # what type checkers and IDEs read (tests/test_package.py checks it)
    from .activations import elu, gelu, leaky_relu, relu, sigmoid, silu, softmax, tanh
    from .activations_backward import (
        ActivationGrads,
        elu_backward,
        gelu_backward,
        leaky_relu_backward,
        relu_backward,
        sigmoid_backward,
        silu_backward,
        softmax_backward,
        tanh_backward,
    )
    from .convolution import (
        conv,
        conv1d,
        conv2d,
        conv3d,
        depthwise_conv,
        pointwise_conv,
        separable_conv,
    )
    from .convolution_backward import (
        ConvGrads,
        SeparableConvGrads,
        conv1d_backward,
        conv2d_backward,
        conv3d_backward,
        conv_backward,
        conv_transpose1d_backward,
        conv_transpose2d_backward,
        conv_transpose3d_backward,
        conv_transpose_backward,
        depthwise_conv_backward,
        pointwise_conv_backward,
        separable_conv_backward,
    )
    from .deform_backward import (
        DeformConvGrads,
        deform_conv1d_backward,
        deform_conv2d_backward,
        deform_conv3d_backward,
        deform_conv_backward,
    )
    from .deformable import deform_conv, deform_conv1d, deform_conv2d, deform_conv3d
    from .params import param_count
    from .pool_backward import (
        PoolGrads,
        adaptive_avg_pool1d_backward,
        adaptive_avg_pool2d_backward,
        adaptive_avg_pool3d_backward,
        adaptive_avg_pool_backward,
        adaptive_max_pool1d_backward,
        adaptive_max_pool2d_backward,
        adaptive_max_pool3d_backward,
        adaptive_max_pool_backward,
        avg_pool1d_backward,
        avg_pool2d_backward,
        avg_pool3d_backward,
        avg_pool_backward,
        global_avg_pool_backward,
        global_max_pool_backward,
        lp_pool1d_backward,
        lp_pool2d_backward,
        lp_pool3d_backward,
        lp_pool_backward,
        max_pool1d_backward,
        max_pool2d_backward,
        max_pool3d_backward,
        max_pool_backward,
        max_unpool1d_backward,
        max_unpool2d_backward,
        max_unpool3d_backward,
        max_unpool_backward,
    )
    from .pooling import (
        adaptive_avg_pool,
        adaptive_avg_pool1d,
        adaptive_avg_pool2d,
        adaptive_avg_pool3d,
        adaptive_max_pool,
        adaptive_max_pool1d,
        adaptive_max_pool2d,
        adaptive_max_pool3d,
        avg_pool,
        avg_pool1d,
        avg_pool2d,
        avg_pool3d,
        global_avg_pool,
        global_max_pool,
        lp_pool,
        lp_pool1d,
        lp_pool2d,
        lp_pool3d,
        max_pool,
        max_pool1d,
        max_pool2d,
        max_pool3d,
        max_unpool,
        max_unpool1d,
        max_unpool2d,
        max_unpool3d,
    )
    from .transposed import (
        conv_transpose,
        conv_transpose1d,
        conv_transpose2d,
        conv_transpose3d,
    )
