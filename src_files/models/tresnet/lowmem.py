"""Opt-in memory-saving variants of the reference TResNet modules (tresnet.py), swapped in by module.

Each variant subclasses its reference module and adds no parameters, buffers or submodules, so swapping an
instance's class keeps its parameters, buffers and state-dict keys (and an optimizer's state) as they are, and
swapping back restores the reference module. The math is the same; only what autograd keeps for backward, or
where a mask is applied in backward, changes.

to_lowmem (train.py --lowmem):
    NormAct2d  -> LowMemNormAct2d: InPlaceABN-style norm that keeps only its output (layers/abn_inplace.py).
    Bottleneck -> LowMemBottleneck: recomputes the squeeze-excite product in backward (layers/gated_conv.py).
chain_block_relus (block-by-block compilation, layers/relu_handoff.py):
    every residual block but the last ends with a PassingReLU, whose backward mask is applied by the next block,
    a ChainedBasicBlock / ChainedBottleneck / ChainedLowMemBottleneck, from the tensor it keeps anyway.
"""
import torch
from torch import nn

from .layers import NormAct2d, gated_conv2d, inplace_abn, mask_grad_by_sign, relu_passing_grad
from .tresnet import BasicBlock, Bottleneck


class LowMemNormAct2d(NormAct2d):
    """NormAct2d that keeps only its output for backward while gradients are recorded (layers/abn_inplace.py)."""

    def forward(self, x):
        if not torch.is_grad_enabled():
            return super().forward(x)
        if self.training:
            self.num_batches_tracked.add_(1)
        slope = self.activation_param if self.activation == 'leaky_relu' else None
        return inplace_abn(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                           self.momentum, self.eps, slope)


class LowMemBottleneck(Bottleneck):
    """Bottleneck whose last convolution keeps the squeeze-excite input and gate for backward, not their product
    (layers/gated_conv.py), while gradients are recorded."""

    def forward(self, x):
        if self.se is None or not torch.is_grad_enabled():
            return super().forward(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        out = self.conv3[1](gated_conv2d(out, self.se.gate(out), self.conv3[0]))  # = conv3(se(out))
        out = out + shortcut
        return self.relu(out)


class PassingReLU(nn.ReLU):
    """A block's final ReLU that passes its gradient on unmasked: the next block (a Chained* block) masks it."""

    def forward(self, x):
        return relu_passing_grad(x)


class _MasksIncomingGrad:
    """Mixin for the block after one that ends with a PassingReLU: applies that ReLU's backward mask to the
    gradient of its input, from the input's sign."""

    def forward(self, x):
        return super().forward(mask_grad_by_sign(x))


class ChainedBasicBlock(_MasksIncomingGrad, BasicBlock):
    pass


class ChainedBottleneck(_MasksIncomingGrad, Bottleneck):
    pass


class ChainedLowMemBottleneck(_MasksIncomingGrad, LowMemBottleneck):
    pass


# reference (or chained) class -> its low-memory variant; and block class -> its chained variant
LOWMEM_VARIANTS = {NormAct2d: LowMemNormAct2d, Bottleneck: LowMemBottleneck, ChainedBottleneck: ChainedLowMemBottleneck}
CHAINED_VARIANTS = {BasicBlock: ChainedBasicBlock, Bottleneck: ChainedBottleneck,
                    LowMemBottleneck: ChainedLowMemBottleneck}


def _swap(module, variants, enabled):
    """Set `module`'s class to its variant (enabled) or back to the class it is a variant of. Exact classes only:
    a class not in `variants` is left alone."""
    table = variants if enabled else {variant: base for base, variant in variants.items()}
    module.__class__ = table.get(type(module), type(module))


def to_lowmem(model, enabled=True):
    """Swap every NormAct2d and Bottleneck in `model` (`model` itself included) for its memory-saving variant, or
    back with enabled=False. In place; returns `model`."""
    for m in model.modules():
        _swap(m, LOWMEM_VARIANTS, enabled)
    return model


set_memory_efficient = to_lowmem  # the name train.py calls


def chain_block_relus(model, enabled=True):
    """Each residual block but the last leaves the backward mask of its final ReLU to the block after it, which
    takes it from its input, a tensor its compiled graph keeps anyway (layers/relu_handoff.py); enabled=False
    swaps back. Same outputs and gradients; for block-by-block compilation. In place; returns `model`."""
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    for i, block in enumerate(blocks):
        _swap(block, CHAINED_VARIANTS, enabled and i > 0)
        _swap(block.relu, {nn.ReLU: PassingReLU}, enabled and i < len(blocks) - 1)
    return model
