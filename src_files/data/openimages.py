"""Open Images V6 image-level labels as a multi-label dataset with partial labels.

Files (each with or without the `oidv6-` prefix): class-descriptions.csv (LabelName,DisplayName; with or without
a header), {train,validation}-annotations-human-imagelabels.csv (ImageID,Source,LabelName,Confidence), optional
classes-trainable.txt; images {split}/{ImageID}.jpg. Confidence 1 is positive, 0 a verified negative, an
unlisted class UNKNOWN. The label files hold 10^7 rows: they are read by pandas into category codes and turned
into per-image index arrays with numpy, with no Python object per row.
"""
import os
from collections.abc import Sequence

import numpy as np
import pandas as pd

from src_files.data.files import check_images_exist, require_dir
from src_files.data.image_list import ImageList, IndexLists
from src_files.errors import UserError

PREFIX = 'oidv6-'
DESCRIPTIONS = 'class-descriptions.csv'
TRAINABLE = 'classes-trainable.txt'
SPLITS = {'train': 'train-annotations-human-imagelabels.csv',
          'validation': 'validation-annotations-human-imagelabels.csv'}
_HEADER = 'ImageID,Source,LabelName,Confidence'
_HINT = (f"expected Open Images V6 files (optionally with the {PREFIX} prefix): {DESCRIPTIONS}, "
         f"{SPLITS['train']}, {SPLITS['validation']}, images train/<ImageID>.jpg and validation/<ImageID>.jpg")


class JoinedPaths(Sequence):
    """`folder/<id><suffix>` of each id, made on access (10^6 paths kept as one list of ids)."""

    def __init__(self, folder, ids, suffix='.jpg'):
        self.folder, self.ids, self.suffix = folder, ids, suffix

    def __len__(self):
        return len(self.ids)

    def __getitem__(self, index):
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        return os.path.join(self.folder, f'{self.ids[index]}{self.suffix}')


def find_file(data_dir, name):
    """Path of `name` or `oidv6-name` in `data_dir` (None if neither exists)."""
    for candidate in (name, PREFIX + name):
        if os.path.isfile(os.path.join(data_dir, candidate)):
            return os.path.join(data_dir, candidate)
    return None


def _required(data_dir, name, what):
    path = find_file(data_dir, name)
    if path is None:
        raise UserError(f"Open Images {what} not found: {os.path.join(data_dir, name)} (nor with the {PREFIX} "
                        f"prefix); {_HINT}")
    return path


def _read_csv(path, **kwargs):
    try:
        return pd.read_csv(path, **kwargs)
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as error:
        reason = str(error).strip().splitlines()[0][:200] if str(error).strip() else type(error).__name__
        raise UserError(f"cannot read {path} ({reason}); {_HINT} (label files with the header {_HEADER})") from None


def _codes(table, path, column):
    """(int codes [rows], pd.Index of str values) of a column read as 'category'.

    pandas infers a category column whose values all look like numbers as numbers ('0001' -> 1): such a column
    is read again as text.
    """
    values = table[column].cat
    if pd.api.types.is_string_dtype(values.categories) or not len(values.categories):
        return values.codes.to_numpy(), values.categories
    codes, uniques = pd.factorize(_read_csv(path, usecols=[column], dtype={column: str})[column])
    return codes, pd.Index(uniques.astype(str))


def read_descriptions(path):
    """(pd.Index of LabelNames, their DisplayNames) of a class-descriptions file, with or without a header."""
    table = _read_csv(path, header=None, names=['LabelName', 'DisplayName'], dtype=str, keep_default_na=False)
    if len(table) and table.iloc[0, 0] == 'LabelName':
        table = table.iloc[1:]
    mids = pd.Index(table['LabelName'].str.strip())
    first = ~mids.duplicated()
    return mids[first], table['DisplayName'].to_numpy()[first]


def _check_labels(path, codes, labels, known, first_line=2):
    """UserError naming the first line of `path` whose label is empty or not among `known`."""
    bad = np.flatnonzero(~labels.isin(known))
    bad_rows = codes < 0 if not len(bad) else (codes < 0) | np.isin(codes, bad)
    if bad_rows.any():
        row = int(np.argmax(bad_rows))
        what = f"LabelName '{labels[codes[row]]}' is not in the class-descriptions file" if codes[row] >= 0 else \
            "no LabelName"
        raise UserError(f"{path} line {row + first_line}: {what} ({int(bad_rows.sum())} rows like it); use the "
                        f"files of one Open Images version")


def class_list(data_dir, known):
    """The class MIDs: the lines of classes-trainable.txt, else the sorted labels of the training file."""
    path = find_file(data_dir, TRAINABLE)
    if path is not None:
        with open(path, encoding='utf-8') as f:
            names = np.array([line.strip() for line in f if line.strip()], dtype=object)
        if not len(names):
            raise UserError(f"{path} lists no class; write one LabelName per line, or remove it to train on the "
                            f"labels of the training file")
        _check_labels(path, np.arange(len(names)), pd.Index(names), known, first_line=1)
        if len(set(names)) < len(names):
            raise UserError(f"{path} lists a class twice ('{pd.Index(names)[pd.Index(names).duplicated()][0]}'); "
                            f"keep one line per class")
        return list(names)
    train_file = _required(data_dir, SPLITS['train'], "training label file")
    table = _read_csv(train_file, usecols=['LabelName'], dtype={'LabelName': 'category'})
    codes, labels = _codes(table, train_file, 'LabelName')
    _check_labels(train_file, codes, labels, known)
    return sorted(labels)


def _sorted_unique(keys):
    """np.unique by sorting (numpy's hash-based unique is several times slower on 10^6 int64 keys)."""
    keys = np.sort(keys)
    return keys[np.concatenate([[True], keys[1:] != keys[:-1]])] if len(keys) else keys


def _index_lists(keys, num_classes, num_images):
    """IndexLists from sorted unique keys image * num_classes + class."""
    counts = np.bincount(keys // num_classes, minlength=num_images)
    return IndexLists(np.concatenate([[0], np.cumsum(counts)]), keys % num_classes)


def read_image_labels(label_file, class_names, known):
    """(ImageIDs in first-appearance order, positives, verified negatives) of a label file, over `class_names`.

    Rows of other classes (not trainable) are ignored, and so are images left without a row; a class listed both
    with Confidence 1 and 0 for an image is positive.
    """
    table = _read_csv(label_file, usecols=['ImageID', 'LabelName', 'Confidence'],
                      dtype={'ImageID': 'category', 'LabelName': 'category', 'Confidence': 'float32'})
    label_codes, labels = _codes(table, label_file, 'LabelName')
    _check_labels(label_file, label_codes, labels, known)
    image_codes, image_names = _codes(table, label_file, 'ImageID')
    confidence = table['Confidence'].to_numpy()
    bad = (image_codes < 0) | ~np.isin(confidence, (0.0, 1.0))
    if bad.any():
        row = int(np.argmax(bad))
        raise UserError(f"{label_file} line {row + 2}: expected an ImageID and a Confidence of 0 or 1, found "
                        f"'{table['ImageID'].iloc[row]}', {confidence[row]}; {_HINT}")
    classes = pd.Index(class_names).get_indexer(labels).astype(np.int64)[label_codes]
    keep = classes >= 0
    images, first_codes = pd.factorize(image_codes[keep])
    image_ids = image_names[first_codes].tolist()
    keys = images.astype(np.int64) * len(class_names) + classes[keep]
    positive = confidence[keep] == 1
    pos_keys, neg_keys = _sorted_unique(keys[positive]), _sorted_unique(keys[~positive])
    if len(pos_keys):  # positive wins: drop the negatives that are also positive
        at = np.minimum(np.searchsorted(pos_keys, neg_keys), len(pos_keys) - 1)
        neg_keys = neg_keys[pos_keys[at] != neg_keys]
    num_images = len(image_ids)
    return (image_ids, _index_lists(pos_keys, len(class_names), num_images),
            _index_lists(neg_keys, len(class_names), num_images))


def openimages_split(data_dir, split, class_names, known, transform=None, check_images=True):
    """ImageList of `split` ('train' or 'validation'); `check_images=False` skips the image existence check."""
    label_file = _required(data_dir, SPLITS[split], f"{split} label file")
    image_ids, positives, negatives = read_image_labels(label_file, class_names, known)
    if not image_ids:
        raise UserError(f"{label_file} has no row of the {len(class_names)} classes; {_HINT}")
    paths = JoinedPaths(os.path.join(data_dir, split), image_ids)
    if check_images:
        require_dir(os.path.join(data_dir, split), "Open Images image folder", _HINT)
        check_images_exist(paths, f"{label_file} lists images {os.path.join(data_dir, split, '<ImageID>.jpg')}")
    return ImageList(paths, positives, class_names, transform, negative_ids=negatives, image_ids=image_ids)


def openimages_datasets(data_dir, train_transform=None, val_transform=None, need_train=True, check_images=True):
    """(train set or None, val set, class MIDs, their display names) of an Open Images folder."""
    require_dir(data_dir, "Open Images data folder", _HINT)
    known, display = read_descriptions(_required(data_dir, DESCRIPTIONS, "class-descriptions file"))
    class_names = class_list(data_dir, known)
    display_names = [str(display[i]) for i in known.get_indexer(class_names)]
    train = (openimages_split(data_dir, 'train', class_names, known, train_transform, check_images)
             if need_train else None)
    val = openimages_split(data_dir, 'validation', class_names, known, val_transform, check_images)
    return train, val, class_names, display_names
