"""relu(conv2d(x) + residual) as one operator: the end of a Bottleneck block at inference, after norm folding.

On CUDA it is cuDNN's fused convolution + bias + add + ReLU (`torch.cudnn_convolution_add_relu`): the
convolution's output goes straight into the sum, so the block's widest tensor is written once instead of written,
read back and written again by a separate pass (torch.compile cannot fuse into cuDNN's convolutions). Elsewhere
it is the plain composition, the same math. A custom op, so that torch.compile keeps it as one call instead of
failing on an ATen op that has no shape function.
"""
from typing import List, Optional

import torch
import torch.nn.functional as F


def _conv2d_add_relu(x: torch.Tensor, weight: torch.Tensor, bias: Optional[torch.Tensor], residual: torch.Tensor,
                     stride: List[int], padding: List[int]) -> torch.Tensor:
    if x.is_cuda and torch.backends.cudnn.is_acceptable(x) and x.dtype == weight.dtype == residual.dtype:
        out = torch.cudnn_convolution_add_relu(x, weight, residual, 1.0, bias, stride, padding, [1, 1], 1)
    else:
        out = F.relu(F.conv2d(x, weight, bias, stride, padding) + residual)
    if out.stride() != residual.stride():  # the layout the shape function promises (residual's)
        out = torch.empty_like(residual).copy_(out)
    return out


if hasattr(torch.library, 'custom_op'):  # PyTorch >= 2.4
    conv2d_add_relu = torch.library.custom_op('ml_decoder::conv2d_add_relu', mutates_args=())(_conv2d_add_relu)

    @conv2d_add_relu.register_fake
    def _(x, weight, bias, residual, stride, padding):
        return torch.empty_like(residual)
else:  # older PyTorch: a plain function (eager only)
    conv2d_add_relu = _conv2d_add_relu
