"""conv(x * gate) that keeps x and the gate for the backward pass, not their product.

In a TResNet Bottleneck the squeeze-excite output x * gate feeds the last 1x1 convolution, which would keep it
for its weight gradient, while x (the previous norm's output) is kept anyway. Recomputing the product in the
backward pass (one elementwise multiply) saves one activation per block. Same math as the two ops it replaces.
"""
import torch
import torch.nn.functional as F


class GatedConvFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, gate, weight, stride, padding, dilation, groups):
        ctx.save_for_backward(x, gate, weight)
        ctx.conv_args = stride, padding, dilation, groups
        product = x * gate
        ctx.product_dtype = product.dtype
        return F.conv2d(product, weight, None, stride, padding, dilation, groups)

    @staticmethod
    def backward(ctx, dy):
        x, gate, weight = ctx.saved_tensors
        stride, padding, dilation, groups = ctx.conv_args
        # The convolution ran in its output's dtype (autocast may have cast its inputs): so does its backward,
        # and the gradients go back to their inputs' dtypes, as autocast's casts would send them.
        dtype = dy.dtype
        # gate * x, not x * gate: under torch.compile the forward's identical x * gate would be merged with this
        # one (common-subexpression elimination) and kept for backward after all (tests/test_benchmarks.py).
        scaled = (gate * x).to(dtype)
        d_scaled, d_weight, _ = torch.ops.aten.convolution_backward(
            dy, scaled, weight.to(dtype), None, list(stride), list(padding), list(dilation), False, [0, 0],
            groups, [True, ctx.needs_input_grad[2], False])
        d_scaled = d_scaled.to(ctx.product_dtype)
        d_x = (d_scaled * gate).to(x.dtype)
        d_gate = (d_scaled * x).sum_to_size(gate.shape).to(gate.dtype) if ctx.needs_input_grad[1] else None
        d_weight = d_weight.to(weight.dtype) if d_weight is not None else None
        return d_x, d_gate, d_weight, None, None, None, None


def gated_conv2d(x, gate, conv):
    """conv(x * gate) for a bias-free nn.Conv2d `conv`, keeping x and gate (not x * gate) for backward."""
    if conv.bias is not None or conv.padding_mode != 'zeros' or isinstance(conv.padding, str):
        raise ValueError('gated_conv2d supports bias-free convolutions with numeric zero padding')
    return GatedConvFunction.apply(x, gate, conv.weight, conv.stride, conv.padding, conv.dilation, conv.groups)
