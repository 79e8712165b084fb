"""The data of a training run: the splits, how each epoch is drawn, and how the validation split is scored.

- `load_data`: the training and validation splits of --data (train.py's layouts) as a TrainTask: the training
  set, the class names, and `evaluate(module, precision)`, which scores the validation split (mAP, or top-1 with
  top-5 beside it on single-label data). train_zsl_nus.py builds its own TrainTask (ZSL / GZSL mAP).
- `train_loader`: the order from DistributedSampler (--recipe a2: timm's RepeatAugSampler), each image's
  augmentation from SeededSamples, so that every draw depends on (--seed, epoch, image) only: a resumed run sees
  exactly the randomness of the uninterrupted one, whatever --workers it uses.
- `train_transform`: the published augmentation, or timm's for --recipe a2.
"""
import collections
import random
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from timm.data import create_transform
from timm.data.distributed_sampler import RepeatAugSampler
from torch.utils.data import DataLoader, Dataset, DistributedSampler, get_worker_info
from torchvision import transforms

from src_files.data import check
from src_files.data.formats import describe, load_datasets
from src_files.errors import UserError
from src_files.evaluation.predict import eval_loader, predict, topk_accuracy
from src_files.helper_functions.augmentations import train_transform as published_train_transform
from src_files.helper_functions.augmentations import uint8_batches, val_transform
from src_files.helper_functions.metrics import mAP
from src_files.settings import MULTI, SINGLE
from src_files.training.seeds import derive_seed, seed_everything


@dataclass
class TrainTask:
    """What differs between the training scripts."""
    train_set: object
    class_names: list
    # evaluate(module, precision) -> {metric_name: score that picks the best, 'details': {name: value}, 'text': str}
    evaluate: Callable
    setup_model: Optional[Callable] = None  # called on the model (and so on the EMA copy) before training
    title: str = ''
    meta: dict = field(default_factory=dict)  # saved into best.pth
    saved: dict = field(default_factory=dict)  # entries saved into best.pth beside the weights (tensors allowed)
    kind: str = MULTI  # or SINGLE: targets are class indices (the loss follows)
    metric_name: str = 'mAP'  # the score printed per epoch and that picks best.pth ('top1' for single-label)
    extra_curves: tuple = ()  # details also drawn in curves.png (e.g. 'top5')
    describe: str = ''  # a line on what was read
    split_rows: Optional[list] = None  # (image, 'train' | 'val') where the run chose the split: written to split.csv


def load_data(settings, info):
    """(TrainTask, number of classes) of settings.data for train.py."""
    data, model = settings.data, settings.model
    uint8 = uint8_batches(data.uint8_batches, info.device)
    splits = load_datasets(data.root, data.format, train_transform(settings, uint8), val_transform(model.image_size,
                                                                                                   uint8),
                           train_split=data.train_split, val_split=data.val_split, val_csv=data.val_csv,
                           label_sep=data.label_sep)
    splits, checked = check.check_if_wanted(data.check_images, splits, data.workers, data.skip_bad_images)
    train_set, val_set = splits.train, splits.val
    if train_set.class_names != val_set.class_names:
        raise UserError(f"the training and validation splits of {data.root} list different classes")
    num_classes = len(train_set.class_names)
    if model.num_classes is not None and model.num_classes != num_classes:
        raise UserError(f"--num-classes {model.num_classes} does not match the {num_classes} classes of the "
                        f"{splits.format} data in {data.root}")
    single = splits.task == SINGLE
    loader = eval_loader(val_set, info, data.batch_size, data.workers, persistent=True)  # (every epoch, twice)

    def evaluate(module, precision):
        scores, targets = predict(module, val_set, info, data.batch_size, data.workers,
                                  amp_dtype=precision.amp_dtype, channels_last=precision.channels_last,
                                  activation='softmax' if single else 'sigmoid', loader=loader)
        if single:
            accuracy = topk_accuracy(scores, targets)
            return {'top1': accuracy['top1'], 'details': {'top5': accuracy['top5']}}
        return {'mAP': mAP(targets, scores)}

    meta = {'data_format': splits.format, 'task': splits.task}
    if settings.optim.recipe != 'published':
        meta['recipe'] = settings.optim.recipe
    if list(splits.display_names) != list(splits.class_names):
        meta['display_names'] = list(splits.display_names)
    task = TrainTask(train_set=train_set, class_names=train_set.class_names, evaluate=evaluate,
                     split_rows=splits.assignment,
                     title=f"{model.model_name} {model.image_size}px, {num_classes} classes", meta=meta,
                     kind=splits.task, metric_name='top1' if single else 'mAP',
                     extra_curves=('top5',) if single else (),
                     describe=describe(splits) + (f"\n{checked}" if checked else ''))
    return task, num_classes


def train_transform(settings, uint8=False):
    """The published augmentation, or with --recipe a2 timm's (RandomResizedCrop + flip + RandAugment, bicubic),
    both giving [0, 1] tensors as the evaluation transform does (`uint8`: their uint8 values, for
    augmentations.to_float); --no-aug: resize only."""
    optim, size = settings.optim, settings.model.image_size
    if optim.recipe != 'a2' or not optim.augment:
        return published_train_transform(size, augment=optim.augment, uint8=uint8)
    primary, secondary, _ = create_transform(size, is_training=True, interpolation='bicubic',
                                             auto_augment=None if optim.rand_aug == 'none' else optim.rand_aug,
                                             color_jitter=None, separate=True)
    last = transforms.PILToTensor() if uint8 else transforms.ToTensor()
    return transforms.Compose([primary, secondary, last])  # (timm's last part, left out, normalises)


# ----------------------------------------------------------------------------------------------------------
# The training loader: each epoch's order and each image's augmentation, drawn from the seed.

def train_loader(settings, info, dataset):
    """The training DataLoader of `dataset`. Its loader processes are kept from one epoch to the next
    (SeededSamples shares the epoch with them): started anew each epoch, they would cost their start-up every
    epoch, and on a CPU each fork makes the next writes to the weights and Adam's state copy their memory pages."""
    optim, data = settings.optim, settings.data
    if optim.recipe == 'a2' and optim.aug_repeats > 1:  # timm's repeated-augmentation sampler
        sampler = RepeatedOrder(dataset, info.world_size, info.rank, optim.aug_repeats, optim.seed)
    else:
        sampler = DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=derive_seed(optim.seed, 'order'), drop_last=False)
    drop_last = optim.recipe == 'a2' and optim.mixing  # (Mixup / CutMix need an even batch, as timm's loader)
    loader = DataLoader(SeededSamples(dataset, optim.seed), batch_size=data.batch_size, sampler=sampler,
                        num_workers=data.workers, pin_memory=info.device.type == 'cuda', drop_last=drop_last,
                        generator=torch.Generator(), persistent_workers=data.workers > 0)
    if len(loader) == 0:
        raise UserError("the training set is empty" if not len(dataset) else
                        f"{len(sampler)} training images per process make no whole batch of --batch-size "
                        f"{data.batch_size} (Mixup / CutMix drop the last, smaller batch): lower --batch-size")
    return loader


def set_epoch(loader, seed, epoch, rank):
    """Every random stream of `epoch`: data order, augmentation, loader processes, and dropout (global RNGs)."""
    seed_everything(derive_seed(seed, 'dropout', epoch, rank))
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    loader.generator.manual_seed(derive_seed(seed, 'loader', epoch, rank))


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
        (RepeatedOrder): the keys then tell its copies apart."""
        index, *keys = index if isinstance(index, tuple) else (index,)
        if get_worker_info() is not None:  # a data-loading process: nothing else draws from its RNGs
            self._seed(index, keys)
            return self.dataset[index]
        python_state, numpy_state = random.getstate(), np.random.get_state()
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


class RepeatedOrder(torch.utils.data.Sampler):
    """timm's RepeatAugSampler (`self.sampler`), its order drawn from --seed, yielding (index, rank, copy) so that
    SeededSamples augments each copy of an image differently (on this process and on the others)."""

    def __init__(self, dataset, num_replicas, rank, num_repeats, seed):
        self.sampler = RepeatAugSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                                        num_repeats=num_repeats)
        self.seed, self.rank = seed, rank

    def set_epoch(self, epoch):
        self.sampler.set_epoch(derive_seed(self.seed, 'order', epoch))  # (timm seeds its shuffle with the epoch)

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        copies = collections.Counter()
        for index in self.sampler:
            yield index, self.rank, copies[index]
            copies[index] += 1
