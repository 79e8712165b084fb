"""Single-label datasets: an ImageFolder tree and the python version of CIFAR-100.

Both return (image, class index) pairs (the index collates to int64) and have `class_names`, `image_ids` (the
rows of a scores file), `labels` (int64 [N]) and `task = 'single-label'`.

- imagefolder: DIR/train/<class>/* and DIR/val/<class>/* (torchvision's ImageFolder layout, listed with its
  find_classes / make_dataset); the classes are the sorted training folders, the validation folders a subset.
- cifar100: DIR/cifar-100-python/{train,test,meta}, the files of the official release, read here without any
  download. They are pickles; `read_data_pickle` unpickles them with a restricted unpickler that rebuilds only
  dicts, lists, strings, numbers and numpy arrays: a data file is data, never code.
"""
import os
import pickle

import numpy as np
from PIL import Image
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS, find_classes, make_dataset

from src_files.data.files import load_rgb, require_dir
from src_files.data.image_list import relative_ids
from src_files.errors import UserError

SINGLE_LABEL = 'single-label'
_IMAGEFOLDER = "the imagefolder layout is DIR/train/<class>/<images> and DIR/val/<class>/<images>"
CIFAR_FOLDER = 'cifar-100-python'
CIFAR_FILES = ('train', 'test', 'meta')
_CIFAR_HINT = ("download the python version, cifar-100-python.tar.gz, from https://www.cs.toronto.edu/~kriz/"
               "cifar.html and extract it into {dir}, so that {dir}/cifar-100-python/ holds train, test and meta")


class SingleLabelImages(Dataset):
    """(image, class index) from image files (`paths`) or from uint8 arrays [N, H, W, 3] (`arrays`)."""

    task = SINGLE_LABEL

    def __init__(self, labels, class_names, image_ids, transform=None, paths=None, arrays=None):
        self.labels = np.asarray(labels, dtype=np.int64)
        self.class_names = list(class_names)
        self.image_ids = list(image_ids)
        self.transform = transform
        self.paths, self.arrays = paths, arrays
        assert len(self.labels) == len(self.image_ids) == len(paths if paths is not None else arrays)
        assert not len(self.labels) or 0 <= self.labels.min() <= self.labels.max() < len(self.class_names)

    def __len__(self):
        return len(self.labels)

    def without(self, drop):
        """A copy without the images whose indices are in `drop` (unreadable files left out)."""
        keep = [i for i in range(len(self)) if i not in drop]
        return SingleLabelImages(self.labels[keep], self.class_names, [self.image_ids[i] for i in keep],
                                 self.transform, paths=[self.paths[i] for i in keep])

    def target(self, index):
        """The class index of image `index`."""
        return int(self.labels[index])

    def __getitem__(self, index):
        if self.paths is not None:
            image = load_rgb(self.paths[index], upright=True)  # (the user's photos: EXIF orientation)
        else:
            image = Image.fromarray(self.arrays[index])
        if self.transform is not None:
            image = self.transform(image)
        return image, int(self.labels[index])


# ---------------------------------------------------------------------------------------------- ImageFolder

def _class_folders(folder):
    try:
        return find_classes(folder)[0]
    except FileNotFoundError:
        raise UserError(f"no class folder in {folder} ({_IMAGEFOLDER})") from None


def _list_images(data_dir, split, class_to_idx, class_names, transform, allow_empty):
    folder = os.path.join(data_dir, split)
    try:
        samples = make_dataset(folder, class_to_idx, extensions=IMG_EXTENSIONS, allow_empty=allow_empty)
    except FileNotFoundError as error:  # a class folder without an image file
        raise UserError(f"{folder}: {str(error).splitlines()[0]} ({_IMAGEFOLDER})") from None
    if not samples:
        raise UserError(f"no image in {folder} ({_IMAGEFOLDER}; extensions {', '.join(IMG_EXTENSIONS)})")
    paths = [path for path, _ in samples]
    return SingleLabelImages([label for _, label in samples], class_names, relative_ids(paths, data_dir),
                             transform, paths=paths)


def imagefolder_datasets(data_dir, train_transform, val_transform, need_train):
    """(train or None, val, class names): the classes are the sorted folders of DIR/train (of DIR/val when there
    is no DIR/train and the training split is not needed)."""
    require_dir(data_dir, "ImageFolder data folder", _IMAGEFOLDER)
    train_dir, val_dir = os.path.join(data_dir, 'train'), os.path.join(data_dir, 'val')
    require_dir(val_dir, "validation folder", _IMAGEFOLDER)
    if need_train or os.path.isdir(train_dir):
        require_dir(train_dir, "training folder", _IMAGEFOLDER)
        class_names = _class_folders(train_dir)
    else:
        class_names = _class_folders(val_dir)
    class_to_idx = {name: i for i, name in enumerate(class_names)}
    val_classes = _class_folders(val_dir)
    extra = [name for name in val_classes if name not in class_to_idx]
    if extra:
        raise UserError(f"{os.path.join(val_dir, extra[0])}: no such class folder in {train_dir} ({len(extra)} "
                        f"validation class(es) without training images; the classes are the training folders)")
    train = _list_images(data_dir, 'train', class_to_idx, class_names, train_transform, False) if need_train else None
    val = _list_images(data_dir, 'val', {name: class_to_idx[name] for name in val_classes}, class_names,
                       val_transform, True)
    return train, val, class_names


def has_imagefolder(data_dir):
    """True when DIR/val holds a class folder with an image file (and DIR/train, if present, is a folder)."""
    val_dir = os.path.join(data_dir, 'val')
    if not os.path.isdir(val_dir) or (os.path.exists(os.path.join(data_dir, 'train')) and
                                      not os.path.isdir(os.path.join(data_dir, 'train'))):
        return False
    for entry in sorted(os.scandir(val_dir), key=lambda e: e.name):
        if entry.is_dir():
            return any(name.lower().endswith(IMG_EXTENSIONS) for name in os.listdir(entry.path))
    return False


# ---------------------------------------------------------------------------------------------- CIFAR-100

_ALLOWED_GLOBALS = {('_codecs', 'encode'), ('numpy', 'ndarray'), ('numpy', 'dtype')} | {
    (f'numpy.{core}.{module}', name) for core in ('core', '_core')
    for module, name in (('multiarray', '_reconstruct'), ('multiarray', 'scalar'), ('numeric', '_frombuffer'))}


class _DataUnpickler(pickle.Unpickler):
    """Rebuilds dicts, lists, strings, bytes, numbers and numpy arrays; refuses every other class or function."""

    def find_class(self, module, name):
        if (module, name) in _ALLOWED_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"it asks for {module}.{name}, which a data file does not need")


def read_data_pickle(path):
    """The dict pickled in `path` (keys as str), read by the restricted unpickler above."""
    try:
        with open(path, 'rb') as f:
            obj = _DataUnpickler(f, encoding='latin1').load()  # latin1: the python-2 pickles of the release
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as error:
        raise UserError(f"{path} is not a readable CIFAR-100 python file ({error}); get the files of the "
                        f"official release") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} is not a CIFAR-100 python file: it holds a {type(obj).__name__}, not a dict")
    return {(k.decode('latin1') if isinstance(k, bytes) else k): v for k, v in obj.items()}


def cifar_folder(data_dir):
    """The folder holding CIFAR-100's train, test and meta: DIR/cifar-100-python, or DIR itself; None if neither."""
    for folder in (os.path.join(data_dir, CIFAR_FOLDER), data_dir):
        if all(os.path.isfile(os.path.join(folder, name)) for name in CIFAR_FILES):
            return folder
    return None


def _cifar_split(folder, split, class_names, transform):
    path = os.path.join(folder, split)
    d = read_data_pickle(path)
    data, labels = d.get('data'), d.get('fine_labels')
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072 \
            or labels is None or len(labels) != len(data):
        raise UserError(f"{path} is not a CIFAR-100 python file: expected 'data' uint8 [N, 3072] and N "
                        f"'fine_labels'")
    labels = np.asarray(labels, dtype=np.int64)
    if len(labels) and not 0 <= labels.min() <= labels.max() < len(class_names):
        raise UserError(f"{path}: a fine label is outside 0..{len(class_names) - 1}, the classes of the meta file")
    images = data.reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)  # rows are R, G, B planes of 32 x 32
    ids = [f'{split}/{i:05d}' for i in range(len(labels))]
    return SingleLabelImages(labels, class_names, ids, transform, arrays=np.ascontiguousarray(images))


def cifar100_datasets(data_dir, train_transform, val_transform, need_train):
    """(train or None, test as the validation split, the 100 fine class names in label order)."""
    folder = cifar_folder(data_dir)
    if folder is None:
        where = os.path.join(data_dir, CIFAR_FOLDER)
        missing = next(name for name in CIFAR_FILES if not os.path.isfile(os.path.join(where, name)))
        raise UserError(f"CIFAR-100 file not found: {os.path.join(where, missing)} (nothing is downloaded: "
                        + _CIFAR_HINT.format(dir=data_dir) + ")")
    names = read_data_pickle(os.path.join(folder, 'meta')).get('fine_label_names')
    if not isinstance(names, list) or not names:
        raise UserError(f"{os.path.join(folder, 'meta')} has no 'fine_label_names' list")
    names = [n.decode('latin1') if isinstance(n, bytes) else str(n) for n in names]
    train = _cifar_split(folder, 'train', names, train_transform) if need_train else None
    return train, _cifar_split(folder, 'test', names, val_transform), names
