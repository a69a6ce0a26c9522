"""numbaconv: JIT-compiled N-D convolutions for NumPy, on one Numba sliding-window core.

Every operation takes arrays shaped ``(N, C, *spatial)`` (or unbatched
``(C, *spatial)``) with any number of spatial axes, follows
``torch.nn.functional``'s semantics, and runs as a parallel Numba kernel.
Importing compiles nothing; each kernel compiles on first use (once per
dtype, whatever the rank) and is cached on disk.
"""

from .activations import elu, gelu, leaky_relu, relu, sigmoid, silu, softmax, tanh
from .convolution import (
    conv,
    conv1d,
    conv2d,
    conv3d,
    depthwise_conv,
    pointwise_conv,
    separable_conv,
)
from .deformable import deform_conv, deform_conv1d, deform_conv2d, deform_conv3d
from .params import param_count
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

__version__ = "0.1.0"

__all__ = [
    "adaptive_avg_pool",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "global_avg_pool",
    "global_max_pool",
    "max_unpool",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "elu",
    "gelu",
    "leaky_relu",
    "relu",
    "sigmoid",
    "silu",
    "softmax",
    "tanh",
    "avg_pool",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "lp_pool",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "max_pool",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "conv",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "deform_conv",
    "deform_conv1d",
    "deform_conv2d",
    "deform_conv3d",
    "depthwise_conv",
    "param_count",
    "pointwise_conv",
    "separable_conv",
]
