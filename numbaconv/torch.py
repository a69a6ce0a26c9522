"""PyTorch interop: numbaconv's operations as differentiable ``torch`` functions.

Needs the optional ``torch`` extra (``pip install numbaconv[torch]``); import
this module explicitly (``import numbaconv.torch``). Each function takes and
returns CPU tensors and works with ``torch.autograd``: the forward runs
numbaconv's kernel, the backward its ``*_backward`` function, computing only
the gradients autograd asks for. Tensors are shared with NumPy without
copies (``Tensor.numpy()`` / ``torch.from_numpy``) where their memory allows;
non-contiguous tensors are copied once by the kernels' layout rule.

Beyond ``torch.nn.functional``: any number of spatial dimensions, every
padding mode in every rank, and deformable convolution in 1-D, 2-D and 3-D.

Examples
--------
>>> import torch, numbaconv.torch as nct
>>> x = torch.randn(2, 3, 8, 8, 8, 8, dtype=torch.float64, requires_grad=True)  # 4-D
>>> w = torch.randn(4, 3, 3, 3, 3, 3, dtype=torch.float64, requires_grad=True)
>>> y = nct.conv(x, w, padding=1, padding_mode="reflect")
>>> y.sum().backward()
>>> x.grad.shape, w.grad.shape
(torch.Size([2, 3, 8, 8, 8, 8]), torch.Size([4, 3, 3, 3, 3, 3]))
"""

from __future__ import annotations

import numpy as np
import torch

import numbaconv

__all__ = ["adaptive_avg_pool", "adaptive_max_pool", "avg_pool", "conv", "conv_transpose",
           "deform_conv", "lp_pool", "max_pool"]


def _np(t: torch.Tensor | None) -> np.ndarray | None:
    """The tensor's memory as an array (no copy for a CPU tensor)."""
    if t is None:
        return None
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"expected a torch.Tensor, got {type(t).__name__}")
    if t.device.type != "cpu":
        raise ValueError(f"numbaconv.torch works on CPU tensors, got device {t.device}")
    return t.detach().numpy()


def _t(a: np.ndarray | None) -> torch.Tensor | None:
    return None if a is None else torch.from_numpy(np.ascontiguousarray(a))


class _Conv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, args):
        ctx.save_for_backward(x, weight, bias)
        ctx.args = args
        return _t(numbaconv.conv(_np(x), _np(weight), _np(bias), *args))

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        need = ctx.needs_input_grad
        r = numbaconv.conv_backward(_np(grad), _np(x), _np(weight), _np(bias), *ctx.args,
                                    input_grad=need[0], weight_grad=need[1],
                                    bias_grad=need[2])
        return _t(r.input), _t(r.weight), _t(r.bias), None


def conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
         stride: int | tuple[int, ...] = 1, padding: object = 0,
         dilation: int | tuple[int, ...] = 1, groups: int = 1,
         padding_mode: str = "zeros") -> torch.Tensor:
    """:func:`numbaconv.conv` for tensors, differentiable in ``x``, ``weight`` and ``bias``.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> x = torch.ones(1, 1, 5, requires_grad=True)
    >>> y = nct.conv(x, torch.ones(1, 1, 3), padding=1, padding_mode="circular")
    >>> y.sum().backward(); x.grad
    tensor([[[3., 3., 3., 3., 3.]]])
    """
    return _Conv.apply(x, weight, bias, (stride, padding, dilation, groups, padding_mode))


class _ConvTranspose(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, args):
        ctx.save_for_backward(x, weight, bias)
        ctx.args = args
        return _t(numbaconv.conv_transpose(_np(x), _np(weight), _np(bias), args[0], args[1],
                                           args[2], args[3], args[4], None, args[5]))

    @staticmethod
    def backward(ctx, grad):
        x, weight, bias = ctx.saved_tensors
        need = ctx.needs_input_grad
        r = numbaconv.conv_transpose_backward(_np(grad), _np(x), _np(weight), _np(bias),
                                              *ctx.args, input_grad=need[0],
                                              weight_grad=need[1], bias_grad=need[2])
        return _t(r.input), _t(r.weight), _t(r.bias), None


def conv_transpose(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
                   stride: int | tuple[int, ...] = 1, padding: object = 0,
                   output_padding: int | tuple[int, ...] = 0, groups: int = 1,
                   dilation: int | tuple[int, ...] = 1,
                   output_size: tuple[int, ...] | None = None) -> torch.Tensor:
    """:func:`numbaconv.conv_transpose` for tensors, differentiable.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> nct.conv_transpose(torch.ones(1, 2, 3), torch.ones(2, 1, 2), stride=2).shape
    torch.Size([1, 1, 6])
    """
    return _ConvTranspose.apply(x, weight, bias, (stride, padding, output_padding, groups,
                                                  dilation, output_size))


class _DeformConv(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, offset, weight, bias, mask, args):
        ctx.save_for_backward(x, offset, weight, bias, mask)
        ctx.args = args
        return _t(numbaconv.deform_conv(_np(x), _np(offset), _np(weight), _np(bias), *args,
                                        mask=_np(mask)))

    @staticmethod
    def backward(ctx, grad):
        x, offset, weight, bias, mask = ctx.saved_tensors
        need = ctx.needs_input_grad
        r = numbaconv.deform_conv_backward(
            _np(grad), _np(x), _np(offset), _np(weight), _np(bias), *ctx.args, mask=_np(mask),
            input_grad=need[0], offset_grad=need[1], weight_grad=need[2], bias_grad=need[3],
            mask_grad=need[4])
        return _t(r.input), _t(r.offset), _t(r.weight), _t(r.bias), _t(r.mask), None


def deform_conv(x: torch.Tensor, offset: torch.Tensor, weight: torch.Tensor,
                bias: torch.Tensor | None = None, stride: int | tuple[int, ...] = 1,
                padding: object = 0, dilation: int | tuple[int, ...] = 1,
                mask: torch.Tensor | None = None) -> torch.Tensor:
    """:func:`numbaconv.deform_conv` (1-D, 2-D, 3-D, ...) for tensors, differentiable in
    every tensor argument, as ``torchvision.ops.deform_conv2d``.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> x = torch.ones(1, 2, 6, 6, 6)
    >>> off = torch.zeros(1, 3 * 27, 4, 4, 4, requires_grad=True)
    >>> nct.deform_conv(x, off, torch.ones(3, 2, 3, 3, 3)).shape
    torch.Size([1, 3, 4, 4, 4])
    """
    return _DeformConv.apply(x, offset, weight, bias, mask, (stride, padding, dilation))


class _Pool(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, name, args):
        ctx.save_for_backward(x)
        ctx.name, ctx.args = name, args
        return _t(getattr(numbaconv, name)(_np(x), *args))

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        r = getattr(numbaconv, f"{ctx.name}_backward")(_np(grad), _np(x), *ctx.args)
        return _t(r.input), None, None


def max_pool(x: torch.Tensor, kernel_size, stride=None, padding=0, dilation=1,
             ceil_mode: bool = False) -> torch.Tensor:
    """:func:`numbaconv.max_pool` for tensors, differentiable.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> nct.max_pool(torch.arange(4.0).reshape(1, 1, 4), 2)
    tensor([[[1., 3.]]])
    """
    return _Pool.apply(x, "max_pool", (kernel_size, stride, padding, dilation, ceil_mode))


def avg_pool(x: torch.Tensor, kernel_size, stride=None, padding=0, ceil_mode: bool = False,
             count_include_pad: bool = True, divisor_override: int | None = None,
             dilation=1) -> torch.Tensor:
    """:func:`numbaconv.avg_pool` for tensors, differentiable.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> nct.avg_pool(torch.arange(4.0).reshape(1, 1, 4), 2)
    tensor([[[0.5000, 2.5000]]])
    """
    return _Pool.apply(x, "avg_pool", (kernel_size, stride, padding, ceil_mode,
                                       count_include_pad, divisor_override, dilation))


def lp_pool(x: torch.Tensor, norm_type: float, kernel_size, stride=None,
            ceil_mode: bool = False) -> torch.Tensor:
    """:func:`numbaconv.lp_pool` for tensors, differentiable.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> nct.lp_pool(torch.tensor([[[3.0, 4.0]]]), 2, 2)
    tensor([[[5.]]])
    """
    return _Pool.apply(x, "lp_pool", (norm_type, kernel_size, stride, ceil_mode))


def adaptive_max_pool(x: torch.Tensor, output_size) -> torch.Tensor:
    """:func:`numbaconv.adaptive_max_pool` for tensors, differentiable.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> nct.adaptive_max_pool(torch.arange(5.0).reshape(1, 1, 5), 2)
    tensor([[[2., 4.]]])
    """
    return _Pool.apply(x, "adaptive_max_pool", (output_size,))


def adaptive_avg_pool(x: torch.Tensor, output_size) -> torch.Tensor:
    """:func:`numbaconv.adaptive_avg_pool` for tensors, differentiable.

    Examples
    --------
    >>> import torch, numbaconv.torch as nct
    >>> nct.adaptive_avg_pool(torch.arange(5.0).reshape(1, 1, 5), 2)
    tensor([[[1., 3.]]])
    """
    return _Pool.apply(x, "adaptive_avg_pool", (output_size,))
