"""A dataset of image files with multi-label targets, the common shape of every dataset in this package.

Targets are float32 vectors [C] with partial labels: 1 = positive, 0 = negative, UNKNOWN (-1) = not labelled
(a VOC difficult object, a class OpenImages did not verify).
"""
import itertools
import os
from collections.abc import Sequence

import numpy as np
import torch
from torch.utils.data import Dataset

from src_files.data.files import load_rgb

UNKNOWN = -1.0


class IndexLists(Sequence):
    """Per-image lists of class indices, stored CSR-style: int64 `offsets` [N + 1] and int32 `indices`.

    `lists[i]` is a read-only int32 array; 10^6 images x a few labels take a few MB instead of a Python list
    per image.
    """

    def __init__(self, offsets, indices):
        self.offsets = np.asarray(offsets, dtype=np.int64)
        self.indices = np.asarray(indices, dtype=np.int32)
        self.indices.flags.writeable = False
        assert self.offsets.ndim == 1 and len(self.offsets) >= 1 and self.offsets[-1] == len(self.indices)

    @classmethod
    def from_lists(cls, lists):
        """From any per-image iterables of class indices (a list of lists, of sets, ...)."""
        if isinstance(lists, IndexLists):
            return lists
        lists = [ids if isinstance(ids, (list, tuple, np.ndarray)) else list(ids) for ids in lists]
        lengths = np.fromiter(map(len, lists), dtype=np.int64, count=len(lists))
        offsets = np.concatenate([[0], np.cumsum(lengths)])
        indices = np.fromiter(itertools.chain.from_iterable(lists), dtype=np.int32, count=int(offsets[-1]))
        return cls(offsets, indices)

    def __len__(self):
        return len(self.offsets) - 1

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        return self.indices[self.offsets[index]:self.offsets[index + 1]]

    def counts(self):
        """Number of indices of each image, int64 [N]."""
        return np.diff(self.offsets)


def relative_ids(paths, root):
    """Each path relative to `root`, with forward slashes (the image ids written to score files)."""
    prefix = os.path.join(root, '')
    return [(p[len(prefix):] if p.startswith(prefix) else os.path.relpath(p, root)).replace(os.sep, '/')
            for p in paths]


class ImageList(Dataset):
    """`(image, target)` pairs from image paths and per-image lists of class indices.

    `label_ids[i]`: the positives of image i; `unknown_ids[i]` (optional): classes UNKNOWN for it; with
    `negative_ids` the image's other classes are UNKNOWN unless listed there (verified negatives), without it
    they are negative. Targets are built per item: a dense [N, C] table would take gigabytes for NUS-WIDE
    (10^5 images x 925) and OpenImages (10^6 x 9605).
    """

    upright = False  # turn images by their EXIF orientation (the user's own layouts: CSV, VOC exports)

    def __init__(self, paths, label_ids, class_names, transform=None, unknown_ids=None, negative_ids=None,
                 image_ids=None):
        self.paths = paths if isinstance(paths, Sequence) and not isinstance(paths, (list, tuple)) else list(paths)
        self.class_names = list(class_names)
        self.transform = transform
        self.label_ids = self._checked(label_ids)
        self.unknown_ids = None if unknown_ids is None else self._checked(unknown_ids)
        self.negative_ids = None if negative_ids is None else self._checked(negative_ids)
        self.image_ids = list(self.paths) if image_ids is None else list(image_ids)
        assert len(self.image_ids) == len(self.paths)
        self.unlabelled = int((self.label_ids.counts() == 0).sum())
        self.dropped_unlabelled = 0

    def _checked(self, lists):
        lists = IndexLists.from_lists(lists)
        assert len(lists) == len(self.paths), (len(lists), len(self.paths))
        assert not len(lists.indices) or 0 <= lists.indices.min() <= lists.indices.max() < len(self.class_names)
        return lists

    def __len__(self):
        return len(self.paths)

    def without(self, drop):
        """A copy without the images whose indices are in `drop` (unreadable files left out)."""
        keep = [i for i in range(len(self)) if i not in drop]

        def pick(lists):
            return None if lists is None else [lists[i] for i in keep]
        subset = ImageList([self.paths[i] for i in keep], pick(self.label_ids), self.class_names, self.transform,
                           pick(self.unknown_ids), pick(self.negative_ids), [self.image_ids[i] for i in keep])
        subset.upright = self.upright
        return subset

    def target(self, index):
        """Float32 vector [C] of image `index`: 1 positive, 0 negative, UNKNOWN (-1) unknown."""
        if self.negative_ids is None:
            target = np.zeros(len(self.class_names), dtype=np.float32)
        else:
            target = np.full(len(self.class_names), UNKNOWN, dtype=np.float32)
            target[self.negative_ids[index]] = 0.0
        if self.unknown_ids is not None:
            target[self.unknown_ids[index]] = UNKNOWN
        target[self.label_ids[index]] = 1.0
        return torch.from_numpy(target)

    def __getitem__(self, index):
        image = load_rgb(self.paths[index], upright=self.upright)
        if self.transform is not None:
            image = self.transform(image)
        return image, self.target(index)
