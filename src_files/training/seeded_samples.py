"""Per-sample augmentation seeds, so that a resumed run augments exactly as the uninterrupted run would have."""
import random

import numpy as np
import torch
from torch.utils.data import Dataset, get_worker_info

from src_files.training.seeds import derive_seed


class SeededSamples(Dataset):
    """`dataset`, whose sample `index` in epoch `epoch` draws its random augmentation from (seed, epoch, index).

    Without this the draws come from each data-loading process's RNG, and so depend on --workers (and on which
    process loads which batch): resuming with another worker count, or on a machine with more cores, would
    augment differently. The caller's RNG states are put back after each sample (with --workers 0 the samples
    are drawn in the training process, whose RNGs also drive dropout).
    """

    def __init__(self, dataset, seed):
        self.dataset = dataset
        self.seed = seed
        # in shared memory: loader processes kept from one epoch to the next (persistent_workers) read it too
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    @property
    def epoch(self):
        return int(self._epoch)

    def set_epoch(self, epoch):
        self._epoch.fill_(epoch)

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index):
        """`index`, or a tuple (index, *more keys) from a sampler that yields an image several times per epoch
        (recipes.RepeatedOrder): the keys then tell its copies apart."""
        index, *keys = index if isinstance(index, tuple) else (index,)
        if get_worker_info() is not None:  # a data-loading process: nothing else draws from its RNGs
            self._seed(index, keys)
            return self.dataset[index]
        python_state, numpy_state = random.getstate(), np.random.get_state()  # (numpy's: about 0.1 ms)
        with torch.random.fork_rng(devices=[]):  # the CPU generator only: transforms draw from it
            try:
                self._seed(index, keys)
                return self.dataset[index]
            finally:
                random.setstate(python_state)
                np.random.set_state(numpy_state)

    def _seed(self, index, keys=()):
        sample_seed = derive_seed(self.seed, 'augment', self.epoch, index, *keys)
        random.seed(sample_seed)  # (our augmentations draw from `random` only; other transforms may use the others)
        np.random.seed(sample_seed % 2 ** 32)
        torch.default_generator.manual_seed(sample_seed)
