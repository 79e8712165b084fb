"""Memory-saving training path of the norm-activation layer, as the compiled InPlaceABN package does it.

A plain batch norm + activation keeps two tensors per layer for the backward pass (the norm's input and the
activation's output). This one keeps only its output y, which the next convolution keeps anyway, and recovers
the normalised input from it: z = act^-1(y), x_hat = (z - b) / (|w| + eps). Same math as NormAct2d; the
gradients differ only by the rounding of the stored output (exact in float32/float64).
"""
import torch
import torch.nn.functional as F


def _channel(t):
    return t.view(1, -1, 1, 1)


class InPlaceABNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps, slope):
        compute = torch.promote_types(x.dtype, torch.float32)
        xc = x.to(compute)
        if training:
            var, mean = torch.var_mean(xc, dim=(0, 2, 3), correction=0)
            n = x.numel() // x.shape[1]
            with torch.no_grad():
                running_mean.lerp_(mean.to(running_mean.dtype), momentum)
                running_var.lerp_((var * n / max(n - 1, 1)).to(running_var.dtype), momentum)
        else:
            mean, var = running_mean.to(compute), running_var.to(compute)
        inv_std = torch.rsqrt(var + eps)
        scale = weight.to(compute).abs() + eps
        a = inv_std * scale
        y = xc * _channel(a) + _channel(bias.to(compute) - mean * a)
        if slope is not None:
            y = F.leaky_relu(y, slope)
        y = y.to(x.dtype)
        ctx.save_for_backward(y, weight, bias, inv_std)
        ctx.training, ctx.eps, ctx.slope, ctx.x_dtype = training, eps, slope, x.dtype
        return y

    @staticmethod
    def backward(ctx, dy):
        y, weight, bias, inv_std = ctx.saved_tensors
        compute = inv_std.dtype
        y, dy = y.to(compute), dy.to(compute)
        if ctx.slope is not None:  # invert the leaky ReLU (slope > 0)
            negative = y < 0
            z = torch.where(negative, y / ctx.slope, y)
            dz = torch.where(negative, dy * ctx.slope, dy)
        else:
            z, dz = y, dy
        scale = weight.to(compute).abs() + ctx.eps
        x_hat = (z - _channel(bias.to(compute))) / _channel(scale)
        d_bias = dz.sum((0, 2, 3))
        d_scale = (dz * x_hat).sum((0, 2, 3))
        if ctx.training:
            n = dz.numel() // dz.shape[1]
            dx = _channel(scale * inv_std) * (dz - _channel(d_bias / n) - x_hat * _channel(d_scale / n))
        else:
            dx = dz * _channel(scale * inv_std)
        d_weight = torch.where(weight < 0, -d_scale, d_scale)  # d|w|/dw = +1 at w = 0, as the compiled package
        return (dx.to(ctx.x_dtype), d_weight.to(weight.dtype),
                d_bias.to(bias.dtype), None, None, None, None, None, None)
