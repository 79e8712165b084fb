"""Optimizer parameter groups."""


def add_weight_decay(model, weight_decay=1e-4, skip_list=()):
    """Two param groups as in the published helper: no decay for biases, 0/1-D parameters (norm weights) and
    names in ``skip_list``; ``weight_decay`` for the rest. Frozen parameters are left out."""
    decay, no_decay = [], []
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if param.ndim <= 1 or name.endswith('.bias') or name in skip_list:
            no_decay.append(param)
        else:
            decay.append(param)
    return [{'params': no_decay, 'weight_decay': 0.0},
            {'params': decay, 'weight_decay': weight_decay}]
