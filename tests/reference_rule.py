"""The deterministic weight/input generator that produced the reference numbers (tests/reference/README)."""
import math
import zlib

import torch


def fill_tensor(key, shape, dtype):
    shape = tuple(shape)
    g = torch.Generator().manual_seed(zlib.crc32(key.encode()))
    if key.endswith('num_batches_tracked'):
        return torch.tensor(0)
    if key.endswith('running_var'):
        t = torch.rand(shape, generator=g, dtype=torch.float64) + 0.5
    elif key.endswith('running_mean'):
        t = torch.randn(shape, generator=g, dtype=torch.float64) * 0.1
    elif len(shape) <= 1:
        t = torch.randn(shape, generator=g, dtype=torch.float64) * (0.5 if key.endswith('weight') else 0.1)
    else:
        fan_in = shape[1] * math.prod(shape[2:]) if len(shape) == 4 else shape[1]
        t = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
    return t.to(getattr(torch, dtype))


def reference_state_dict(layout):
    return {key: fill_tensor(key, shape, dtype) for key, shape, dtype in layout}


def reference_input(batch, size):
    return torch.rand((batch, 3, size, size), generator=torch.Generator().manual_seed(12345), dtype=torch.float64)


def reference_wordvecs(n):
    return torch.randn((n, 300), generator=torch.Generator().manual_seed(777), dtype=torch.float64)


def rel_err(a, b):
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    return ((a - b).norm() / b.norm()).item()
