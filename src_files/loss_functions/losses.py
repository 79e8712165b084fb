"""Asymmetric loss (ASL, Ben-Baruch et al. 2020) in the form used by the published ML-Decoder code.

The multi-label losses return a *sum* over the batch and classes, as published (the learning rate of the
recipes is tuned for that). A target of -1 marks an unknown label (partial annotations such as OpenImages'):
its entry adds nothing to the loss or the gradient, unless ``unknown_as_negative`` trains it as a negative (the
published OpenImages recipe). With 0/1 targets the value is the published one bit for bit. Half-precision logits are computed in float32: ``eps`` = 1e-8 underflows in
float16, which would turn ``log(max(p, eps))`` into ``-inf``. Other dtypes (float32, float64) are kept.
"""
import contextlib

import torch
import torch.nn as nn
import torch.nn.functional as F


def _compute_dtype(x):
    """float32 for half-precision inputs, the input's own dtype otherwise."""
    return torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype


def _split_unknown(x, y, unknown_as_negative):
    """(x, targets with unknown entries set to 0, mask [N, C]: 1 where the entry counts, 0 where it is ignored)."""
    known = (y >= 0).to(y.dtype)
    y = y.clamp(min=0)
    if unknown_as_negative:
        known = torch.ones_like(known)
    return x, y, known


class AsymmetricLoss(nn.Module):
    """Multi-label ASL: focusing weights (1 - pt)^gamma with separate gammas for positives and negatives,
    and a probability margin ``clip`` that discards easy negatives (p < clip)."""

    def __init__(self, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8, disable_torch_grad_focal_loss=True,
                 unknown_as_negative=False):
        super().__init__()
        self.gamma_neg = gamma_neg
        self.gamma_pos = gamma_pos
        self.clip = clip
        self.eps = eps
        self.disable_torch_grad_focal_loss = disable_torch_grad_focal_loss
        self.unknown_as_negative = unknown_as_negative

    def forward(self, x, y):
        """x: logits [N, C]; y: targets [N, C] (1 positive, 0 negative, -1 unknown). Returns the summed loss."""
        dtype = _compute_dtype(x)
        x, y, known = _split_unknown(x.to(dtype), y.to(dtype), self.unknown_as_negative)
        xs_pos = torch.sigmoid(x)
        xs_neg = 1 - xs_pos
        if self.clip is not None and self.clip > 0:
            xs_neg = (xs_neg + self.clip).clamp(max=1)
        loss = y * torch.log(xs_pos.clamp(min=self.eps)) + (1 - y) * torch.log(xs_neg.clamp(min=self.eps))
        if self.gamma_neg > 0 or self.gamma_pos > 0:
            # A local no_grad (not torch.set_grad_enabled) so that the caller's grad mode is never changed.
            with torch.no_grad() if self.disable_torch_grad_focal_loss else contextlib.nullcontext():
                pt = xs_pos * y + xs_neg * (1 - y)
                w = torch.pow(1 - pt, self.gamma_pos * y + self.gamma_neg * (1 - y))
            loss = loss * w
        return -(loss * known).sum()


class AsymmetricLossOptimized(AsymmetricLoss):
    """Same value and gradient as ``AsymmetricLoss`` with fewer temporaries (in-place updates), for large
    class counts. Default ``disable_torch_grad_focal_loss=False`` as published."""

    def __init__(self, gamma_neg=4, gamma_pos=1, clip=0.05, eps=1e-8, disable_torch_grad_focal_loss=False,
                 unknown_as_negative=False):
        super().__init__(gamma_neg, gamma_pos, clip, eps, disable_torch_grad_focal_loss, unknown_as_negative)

    def forward(self, x, y):
        dtype = _compute_dtype(x)
        x, y, known = _split_unknown(x.to(dtype), y.to(dtype), self.unknown_as_negative)
        anti_y = 1 - y
        xs_pos = torch.sigmoid(x)
        xs_neg = 1.0 - xs_pos
        if self.clip is not None and self.clip > 0:
            xs_neg.add_(self.clip).clamp_(max=1)
        loss = y * torch.log(xs_pos.clamp(min=self.eps))
        loss.add_(anti_y * torch.log(xs_neg.clamp(min=self.eps)))
        if self.gamma_neg > 0 or self.gamma_pos > 0:
            with torch.no_grad() if self.disable_torch_grad_focal_loss else contextlib.nullcontext():
                base = 1 - xs_pos * y - xs_neg * anti_y
                w = torch.pow(base, self.gamma_pos * y + self.gamma_neg * anti_y)
            loss.mul_(w)
        return -loss.mul_(known).sum()


class ASLSingleLabel(nn.Module):
    """Single-label ASL: softmax focusing weights (gradient flows through them) and label smoothing ``eps``.
    Targets are integer class indices [N]."""

    def __init__(self, gamma_pos=0, gamma_neg=4, eps=0.1, reduction='mean'):
        super().__init__()
        if reduction not in ('mean', 'sum', 'none'):
            raise ValueError(f"reduction must be 'mean', 'sum' or 'none', got {reduction!r}")
        self.gamma_pos = gamma_pos
        self.gamma_neg = gamma_neg
        self.eps = eps
        self.reduction = reduction

    def forward(self, inputs, target):
        """inputs: logits [N, C]; target: class indices [N]."""
        inputs = inputs.to(_compute_dtype(inputs))
        num_classes = inputs.shape[-1]
        log_preds = F.log_softmax(inputs, dim=-1)
        t = torch.zeros_like(inputs).scatter_(-1, target.long().unsqueeze(-1), 1)
        p = torch.exp(log_preds)
        # base = 1 - p on the target class, p elsewhere.
        base = 1 - p * t - (1 - p) * (1 - t)
        w = torch.pow(base, self.gamma_pos * t + self.gamma_neg * (1 - t))
        if self.eps > 0:
            t = t * (1 - self.eps) + self.eps / num_classes
        loss = -(t * w * log_preds).sum(dim=-1)
        if self.reduction == 'mean':
            return loss.mean()
        if self.reduction == 'sum':
            return loss.sum()
        return loss
