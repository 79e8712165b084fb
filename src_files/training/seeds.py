"""Every random stream of a training run, derived from --seed by one function.

Each stream is keyed by what it is for ('init', 'order', 'dropout', 'loader', 'augment') and by where it is
used (epoch, rank, image index), through numpy's SeedSequence, which hashes the whole key: two different
keys give unrelated 64-bit seeds, so no stream can restart another one (as `torch.manual_seed(seed)` for the
weights followed by `torch.manual_seed(seed + epoch)` for the dropout of epoch 0 would). The streams depend
on the key only, never on what ran before, so a resumed run draws exactly what the uninterrupted run drew.
"""
import random

import numpy as np
import torch

PURPOSES = ('init', 'order', 'dropout', 'loader', 'augment')


def derive_seed(seed, purpose, *keys):
    """A 63-bit seed for `purpose` ('init', 'order', 'dropout', 'loader', 'augment') at `keys` (ints >= 0)."""
    if purpose not in PURPOSES:
        raise ValueError(f'unknown seed purpose {purpose!r}; one of {PURPOSES}')
    words = np.random.SeedSequence([int(seed), PURPOSES.index(purpose), *map(int, keys)]).generate_state(2)
    return (int(words[0]) << 31) ^ int(words[1])  # < 2**63: fits torch, random and DistributedSampler's seed


def seed_everything(seed):
    """Seed python's `random`, numpy's global RNG and torch's CPU and CUDA generators from one derived seed."""
    random.seed(seed)
    np.random.seed(seed % 2 ** 32)
    torch.manual_seed(seed)  # also every CUDA device
