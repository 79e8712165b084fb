"""Exponential moving average of a model's weights (the whole state dict, buffers included)."""
from copy import deepcopy

import torch
import torch.nn as nn


def unwrap_model(model):
    """The plain module inside DistributedDataParallel / DataParallel (``.module``) and torch.compile
    (``._orig_mod``) wrappers, so that state-dict keys match the EMA copy."""
    while True:
        if isinstance(model, (nn.parallel.DistributedDataParallel, nn.DataParallel)):
            model = model.module
        elif hasattr(model, '_orig_mod'):
            model = model._orig_mod
        else:
            return model


class ModelEma(nn.Module):
    """Keeps ``module``, an eval-mode copy of the model, with ema = decay * ema + (1 - decay) * model for
    floating-point tensors; integer buffers (e.g. ``num_batches_tracked``) are copied."""

    def __init__(self, model, decay=0.9997, device=None):
        super().__init__()
        self.module = deepcopy(unwrap_model(model))
        self.module.eval()
        self.decay = decay
        self.device = device
        if device is not None:
            self.module.to(device=device)

    def _pairs(self, model):
        """(ema tensor, model tensor) pairs, split into floating-point and other tensors."""
        src = unwrap_model(model).state_dict()
        floats, others = [], []
        for key, ema_v in self.module.state_dict().items():
            model_v = src[key].detach().to(device=ema_v.device, dtype=ema_v.dtype)
            (floats if ema_v.is_floating_point() else others).append((ema_v, model_v))
        return floats, others

    @torch.no_grad()
    def update(self, model):
        floats, others = self._pairs(model)
        if floats:
            # lerp_(end, w): ema += w * (model - ema), i.e. decay * ema + (1 - decay) * model.
            torch._foreach_lerp_([e for e, _ in floats], [m for _, m in floats], 1.0 - self.decay)
        for ema_v, model_v in others:
            ema_v.copy_(model_v)

    @torch.no_grad()
    def set(self, model):
        """Copy the model's current weights into the EMA (e.g. after loading a checkpoint)."""
        floats, others = self._pairs(model)
        for ema_v, model_v in floats + others:
            ema_v.copy_(model_v)
