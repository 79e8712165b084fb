"""A ReLU whose backward mask is applied by the block that consumes its output (same values, same gradients).

Compiled block by block, a residual block that ends with a ReLU keeps the ReLU's mask for backward (one byte per
output element), while the next block keeps the ReLU's output for its own backward anyway (its convolution's
input): the compiler cannot see across the two. With `relu_passing_grad` at the end of one block and
`mask_grad_by_sign` at the start of the next, the mask is taken from the tensor the next block keeps, and
no mask is kept. Valid only where the output feeds nothing but the next block (tresnet/lowmem.py's
chain_block_relus).
"""
import torch
import torch.nn.functional as F


class _ReLUPassingGrad(torch.autograd.Function):
    """relu(x) in forward; backward passes the gradient through unmasked (the consumer masks it)."""

    @staticmethod
    def forward(ctx, x):
        return F.relu(x)

    @staticmethod
    def backward(ctx, grad):
        return grad


class _MaskGradBySign(torch.autograd.Function):
    """Identity in forward on a ReLU output y; backward keeps the gradient where y > 0, as the ReLU's would."""

    @staticmethod
    def forward(ctx, y):
        ctx.save_for_backward(y)
        return y.view_as(y)

    @staticmethod
    def backward(ctx, grad):
        y, = ctx.saved_tensors
        return torch.where(y > 0, grad, torch.zeros_like(grad))


def relu_passing_grad(x):
    return _ReLUPassingGrad.apply(x)


def mask_grad_by_sign(y):
    return _MaskGradBySign.apply(y)
