"""Fold every InPlaceABN-compatible norm layer into the convolution before it (inference only).

conv(x) followed by (x - mean) / sqrt(var + eps) * (|w| + eps) + b is one convolution with
weight * s and bias b - mean * s, where s = (|w| + eps) / sqrt(var + eps). The activation stays.
"""
import torch
from torch import nn

from .tresnet.layers import NormAct2d


@torch.no_grad()
def fold_conv_norm(conv: nn.Conv2d, norm: NormAct2d) -> nn.Conv2d:
    scale = (norm.weight.abs() + norm.eps) / torch.sqrt(norm.running_var + norm.eps)
    fused = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
                      conv.dilation, conv.groups, bias=True, padding_mode=conv.padding_mode,
                      device=conv.weight.device, dtype=conv.weight.dtype)
    # (a pointwise product keeps the weight's memory format: a channels-last model stays channels-last)
    fused.weight = nn.Parameter(conv.weight * scale.reshape(-1, 1, 1, 1), requires_grad=conv.weight.requires_grad)
    conv_bias = conv.bias if conv.bias is not None else torch.zeros_like(norm.bias)
    fused.bias.copy_((conv_bias - norm.running_mean) * scale + norm.bias)
    return fused


def fold_norm_layers(model: nn.Module) -> nn.Module:
    """Replace every Sequential(Conv2d, NormAct2d) in `model` by Sequential(Conv2d with bias, activation).

    Works in place and returns the model, in eval mode (folded norms no longer track batch statistics).
    """
    for module in model.modules():
        if isinstance(module, nn.Sequential) and len(module) == 2 and isinstance(module[0], nn.Conv2d) \
                and isinstance(module[1], NormAct2d):
            norm = module[1]
            module[0] = fold_conv_norm(module[0], norm)
            module[1] = norm.make_activation()
    return model.eval()

