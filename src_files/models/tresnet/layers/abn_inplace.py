"""Memory-saving training path of the norm-activation layer, as the compiled InPlaceABN package does it.

A plain batch norm + activation keeps two tensors per layer for the backward pass (the norm's input and the
activation's output). This one keeps only its output y, which the next convolution keeps anyway, and recovers
the norm's input from it: z = act^-1(y), x = (z - b) / (|w| + eps) / inv_std + mean. Then ATen's own batch-norm
backward does the rest, so the extra cost is a few elementwise passes. Same math as NormAct2d; the gradients
differ only by the rounding of the stored output (exact in float32/float64).
"""
import torch
import torch.nn.functional as F


def _channel(t):
    return t.view(1, -1, 1, 1)


class InPlaceABNFunction(torch.autograd.Function):
    """y = act(batch_norm(x)) keeping only y; returns (y, mean, inv_std), the statistics it normalised with.

    Nothing is mutated here, and backward writes no out= tensor under torch.compile: the caller updates the
    running statistics from the returned ones. This keeps the compiled model one graph, not one per layer.
    """

    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, eps, slope):
        scale = weight.abs() + eps
        if training:  # batch statistics; no running statistics passed, so none are updated
            y, mean, inv_std = torch.ops.aten.native_batch_norm(x, scale, bias, None, None, True, 0.0, eps)
        else:
            mean, inv_std = running_mean.clone(), torch.rsqrt(running_var + eps)
            y = torch.ops.aten.native_batch_norm(x, scale, bias, mean, running_var.clone(), False, 0.0, eps)[0]
        if slope is not None:
            y = F.leaky_relu(y, slope, inplace=True)
        ctx.mark_non_differentiable(mean, inv_std)
        ctx.save_for_backward(y, weight, bias, mean, inv_std)
        ctx.training, ctx.eps, ctx.slope = training, eps, slope
        return y, mean, inv_std

    @staticmethod
    def backward(ctx, dy, _d_mean, _d_inv_std):
        y, weight, bias, mean, inv_std = ctx.saved_tensors
        if ctx.slope is not None:  # undo the leaky ReLU (slope > 0): its inverse is a leaky ReLU of slope 1/slope
            dz = torch.ops.aten.leaky_relu_backward(dy, y, ctx.slope, True)
            z = F.leaky_relu(y, 1.0 / ctx.slope)
        else:
            dz, z = dy, y
        scale = weight.abs() + ctx.eps
        a = 1.0 / (scale * inv_std)  # x = z * a + c per channel, computed in float32, stored in y's dtype
        c = mean - bias * a
        if torch.compiler.is_compiling():  # fused into one pass anyway; no out= (see the class docstring)
            x = torch.addcmul(_channel(c), z, _channel(a)).to(y.dtype)
        else:  # eager: one pass, no float32 copy of the activation
            x = torch.addcmul(_channel(c), z, _channel(a), out=torch.empty_like(y))
        # Mixed precision as in the forward: bf16/fp16 activations, float32 parameters and statistics. The
        # running-statistics arguments are read only in eval mode, where mean / inv_std are exactly them.
        dx, d_scale, d_bias = torch.ops.aten.native_batch_norm_backward(
            dz, x, scale, mean, 1.0 / inv_std.square() - ctx.eps, mean, inv_std, ctx.training, ctx.eps,
            [True, True, True])
        d_weight = torch.where(weight < 0, -d_scale, d_scale)  # d|w|/dw = +1 at w = 0, as the compiled package
        return dx, d_weight, d_bias, None, None, None, None, None


def inplace_abn(x, weight, bias, running_mean, running_var, training, momentum, eps, slope):
    """InPlaceABNFunction, then the running-statistics update (as F.batch_norm: the unbiased batch variance,
    recovered from the returned 1 / sqrt(var + eps))."""
    y, mean, inv_std = InPlaceABNFunction.apply(x, weight, bias, running_mean, running_var, training, eps, slope)
    if training:
        with torch.no_grad():
            n = x.numel() // x.shape[1]
            var = (inv_std.square().reciprocal() - eps) * (n / max(n - 1, 1))
            running_mean.lerp_(mean.to(running_mean.dtype), momentum)
            running_var.lerp_(var.to(running_var.dtype), momentum)
    return y
