"""A dataset of image files with multi-label targets, the common shape of every dataset in this package."""
import torch
from torch.utils.data import Dataset

from src_files.data.files import load_rgb


class ImageList(Dataset):
    """`(image, target)` pairs from image paths and per-image lists of class indices.

    Targets are built per item: a dense [N, C] table would take gigabytes for NUS-WIDE (10^5 images x 925).
    """

    def __init__(self, paths, label_ids, class_names, transform=None):
        assert len(paths) == len(label_ids)
        self.paths = list(paths)
        self.label_ids = [list(ids) for ids in label_ids]
        self.class_names = list(class_names)
        self.transform = transform

    def __len__(self):
        return len(self.paths)

    def target(self, index):
        """Float32 multi-hot vector [C] of image `index`."""
        target = torch.zeros(len(self.class_names), dtype=torch.float32)
        target[self.label_ids[index]] = 1.0
        return target

    def __getitem__(self, index):
        image = load_rgb(self.paths[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, self.target(index)
