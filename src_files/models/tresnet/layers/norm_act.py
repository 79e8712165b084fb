"""A pure-PyTorch stand-in for the compiled `inplace_abn` package's InPlaceABN (same parameters, same math).

InPlaceABN scales by |weight| + eps, not by weight: eval computes
    y = act((x - running_mean) / sqrt(running_var + eps) * (|w| + eps) + b)
and training uses batch statistics and updates the running variance with the unbiased batch variance, as
BatchNorm does. So it is BatchNorm with the scale |w| + eps, followed by the activation.
Its memory-saving variant for training (abn_inplace.py) is LowMemNormAct2d in ../lowmem.py.
"""
import torch
from torch import nn
import torch.nn.functional as F


def abn_scale(weight, eps):
    """|w| + eps, with d|w|/dw = +1 at w = 0 as the compiled package has it (torch.abs gives 0 there, which
    would freeze the zero-initialised norms). Plain tensor ops, so torch.compile fuses it."""
    return torch.where(weight < 0, -weight, weight) + eps


class NormAct2d(nn.Module):
    """InPlaceABN-compatible batch norm + activation ('leaky_relu' with `activation_param` slope, or 'identity')."""

    def __init__(self, num_features, activation='leaky_relu', activation_param=0.01, eps=1e-5, momentum=0.1):
        super().__init__()
        if activation not in ('leaky_relu', 'identity'):
            raise ValueError(f'unsupported activation {activation!r}')
        self.num_features = num_features
        self.activation = activation
        self.activation_param = activation_param
        self.eps = eps
        self.momentum = momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))
        self.register_buffer('num_batches_tracked', torch.tensor(0, dtype=torch.long))

    def forward(self, x):
        if self.training:
            self.num_batches_tracked.add_(1)
        x = F.batch_norm(x, self.running_mean, self.running_var, abn_scale(self.weight, self.eps), self.bias,
                         self.training, self.momentum, self.eps)
        if self.activation == 'leaky_relu':
            # In place, as InPlaceABN: batch_norm's backward needs its input, not its output, so the output
            # can be overwritten and autograd keeps one tensor here instead of two.
            return F.leaky_relu(x, self.activation_param, inplace=True)
        return x

    def make_activation(self):
        """The activation alone, as a module (what remains once the norm is folded into its convolution)."""
        if self.activation == 'leaky_relu':
            return nn.LeakyReLU(self.activation_param)
        return nn.Identity()

    def extra_repr(self):
        return f'{self.num_features}, eps={self.eps}, momentum={self.momentum}, activation={self.activation}' + (
            f'({self.activation_param})' if self.activation == 'leaky_relu' else '')
