"""Every image decoded once before training, so that a corrupt file is named before the first step instead of
stopping the run when its batch comes up, hours in.

`check_images(splits, workers, skip)` decodes the training and validation images in `workers` loader processes,
under a progress bar. Unreadable ones are listed (a few, then a count) and the run stops; with skip=True
(--skip-bad-images) they are left out and counted. train.py runs it by default on data of up to AUTO_LIMIT images
(BENCHMARKS.md, "Data loading", times the check); --check-images on / off.
"""
import dataclasses

from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src_files.data.files import load_rgb
from src_files.errors import UserError

AUTO_LIMIT = 5000  # --check-images auto: data with at most this many images is checked
SHOWN = 3  # unreadable files named in the message; the others are counted


class _Decode(Dataset):
    """Item i: '' if paths[i] decodes, else the reason it does not."""

    def __init__(self, paths, upright):
        self.paths, self.upright = paths, upright

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, index):
        try:
            load_rgb(self.paths[index], upright=self.upright)
        except UserError as error:
            return str(error)
        return ''


def unreadable(dataset, workers, desc):
    """[(index, reason)] of the images of `dataset` (an ImageList or SingleLabelImages) that do not decode."""
    paths = getattr(dataset, 'paths', None)
    if paths is None:  # (CIFAR-100: arrays, nothing to decode)
        return []
    loader = DataLoader(_Decode(paths, getattr(dataset, 'upright', True)), batch_size=32, num_workers=workers,
                        collate_fn=list)
    found, index = [], 0
    for reasons in tqdm(loader, desc=desc, unit='batch', leave=False, dynamic_ncols=True):
        found += [(index + i, reason) for i, reason in enumerate(reasons) if reason]
        index += len(reasons)
    return found


def wanted(mode, splits):
    """Whether --check-images `mode` ('auto', 'on', 'off') checks `splits`."""
    size = sum(len(d) for d in (splits.train, splits.val) if d is not None)
    return mode == 'on' or (mode == 'auto' and size <= AUTO_LIMIT)


def check_if_wanted(mode, splits, workers, skip=False):
    """check_images where --check-images `mode` asks for it -> (splits, a line saying what was done, or '')."""
    return check_images(splits, workers, skip) if wanted(mode, splits) else (splits, '')


def check_images(splits, workers, skip=False):
    """`splits` with every image decoded once: a UserError naming the unreadable ones, or (skip) `splits` without
    them; -> (splits, a line saying what was done)."""
    bad = {name: unreadable(dataset, workers, f"checking {name} images")
           for name, dataset in (('training', splits.train), ('validation', splits.val)) if dataset is not None}
    count = sum(len(found) for found in bad.values())
    checked = sum(len(d) for d in (splits.train, splits.val) if d is not None)
    if not count:
        return splits, f"checked {checked} images: all readable"
    reasons = [reason for found in bad.values() for _, reason in found]
    shown = '; '.join(reasons[:SHOWN]) + (f"; and {count - SHOWN} more" if count > SHOWN else '')
    if not skip:
        raise UserError(f"{count} of {checked} images cannot be read: {shown} (replace or remove them, or pass "
                        f"--skip-bad-images to go on without them)")
    parts = {}
    for name, dataset in (('train', splits.train), ('val', splits.val)):
        found = bad.get('training' if name == 'train' else 'validation', [])
        drop = {i for i, _ in found}
        parts[name] = dataset.without(drop) if drop else dataset
    return (dataclasses.replace(splits, train=parts['train'], val=parts['val']),
            f"checked {checked} images: {count} cannot be read and were left out (--skip-bad-images): {shown}")
