"""One entry point for every folder layout: multi-label COCO (2014/2017), VOC, CSV lists and Open Images, and
single-label ImageFolder trees and CIFAR-100.

`load_datasets(data_dir, data_format)` returns the training and validation datasets, the class list and the task
the layout sets ('multi-label' or 'single-label'); `detect_format` tells the layout from the folder's files;
`describe(splits)` is what the scripts print about what was read: a line, and a note naming the classes without a
positive in a split.
"""
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from src_files.data import coco, openimages, single_label, voc
from src_files.data.csv_list import MultiLabelCsv, csv_class_names
from src_files.data.files import require_dir
from src_files.data.image_list import ImageList
from src_files.errors import UserError

FORMATS = ('auto', 'coco', 'voc', 'csv', 'openimages', 'cifar100', 'imagefolder')
SINGLE_LABEL_FORMATS = ('cifar100', 'imagefolder')
_LOOKED_FOR = {
    'coco': "annotations/instances_{train,val}2014.json with train2014/ and val2014/ (or the same with 2017)",
    'voc': "Annotations/, JPEGImages/ and ImageSets/Main/",
    'csv': "train.csv and val.csv",
    'openimages': (f"{openimages.DESCRIPTIONS} and *-human-imagelabels.csv (optionally with the {openimages.PREFIX} "
                   f"prefix)"),
    'cifar100': f"{single_label.CIFAR_FOLDER}/ with train, test and meta",
    'imagefolder': "train/<class>/<images> and val/<class>/<images>",
}
# The split names each format reads (besides VOC, whose --train-split/--val-split choose among ImageSets/Main)
_OWN_SPLITS = {'coco': ({'train'}, {'val'}), 'csv': ({'train'}, {'val'}),
               'openimages': ({'train'}, {'validation', 'val'}), 'imagefolder': ({'train'}, {'val'}),
               'cifar100': ({'train'}, {'test'})}


@dataclass
class DataSplits:
    """The splits of a dataset folder; `class_names` come from the training split (OpenImages: MIDs, whose
    readable names are `display_names`; elsewhere the two are the same). `task`: 'multi-label' (targets [C]:
    1 / 0 / -1 unknown) or 'single-label' (targets: a class index)."""
    train: Optional[ImageList]
    val: ImageList
    format: str
    class_names: list
    display_names: list
    task: str = 'multi-label'


def _is_openimages(data_dir):
    return openimages.find_file(data_dir, openimages.DESCRIPTIONS) is not None and any(
        name.endswith('-human-imagelabels.csv') for name in os.listdir(data_dir))


def _layout_of(data_dir):
    """The first format whose files `data_dir` holds, None if none."""
    checks = {'coco': lambda: coco.coco_year(data_dir) is not None, 'voc': lambda: voc.is_voc(data_dir),
              'csv': lambda: all(os.path.isfile(os.path.join(data_dir, f)) for f in ('train.csv', 'val.csv')),
              'openimages': lambda: _is_openimages(data_dir),
              'cifar100': lambda: single_label.cifar_folder(data_dir) is not None,
              'imagefolder': lambda: single_label.has_imagefolder(data_dir)}
    return next((name for name, matches in checks.items() if matches()), None)


# Files that only one layout has: a folder holding some of them is that layout with a file missing, and its
# reader then names what is missing (better than "cannot tell the layout").
_PARTIAL = {'coco': ('annotations', 'train2014', 'val2014', 'train2017', 'val2017'),
            'voc': ('Annotations', 'JPEGImages', 'ImageSets'), 'csv': ('train.csv', 'val.csv')}


def _partial_layout(data_dir):
    names = set(os.listdir(data_dir))
    found = [fmt for fmt, marks in _PARTIAL.items() if names & set(marks)]
    if any(name.endswith('-human-imagelabels.csv') or name.endswith(openimages.DESCRIPTIONS) for name in names):
        found.append('openimages')
    return found[0] if len(found) == 1 else None


def detect_format(data_dir):
    """'coco', 'voc', 'csv', 'openimages', 'cifar100' or 'imagefolder': the layout of `data_dir`, from its files."""
    require_dir(data_dir, "data folder", "pass the dataset folder with --data")
    found = _layout_of(data_dir) or _partial_layout(data_dir)
    if found:
        return found
    looked_for = '; '.join(f"{name}: {what}" for name, what in _LOOKED_FOR.items())
    subfolders = sorted(e.path for e in os.scandir(data_dir) if e.is_dir())
    inner = next(((path, _layout_of(path)) for path in subfolders if _layout_of(path)), None)
    hint = f" ({inner[0]} holds the {inner[1]} layout: pass that folder?)" if inner else ''
    raise UserError(f"cannot tell the layout of {data_dir}; looked for {looked_for}{hint}. Lay the folder out as "
                    f"one of these (Datasets.md) or pass --data-format")


def _check_splits(data_format, train_split, val_split):
    own_train, own_val = _OWN_SPLITS[data_format]
    for flag, value, own in (('--train-split', train_split, own_train), ('--val-split', val_split, own_val)):
        if value is not None and value not in own:
            raise UserError(f"{flag} {value}: the flag is for VOC only (it names an ImageSets/Main split file); "
                            f"{data_format} data has fixed splits, so leave it out")


def _coco(data_dir, train_transform, val_transform, need_train):
    require_dir(data_dir, "COCO data folder", "pass the folder holding annotations/, train2014/ and val2014/")
    year = coco.coco_year(data_dir) or (None if need_train else coco.coco_year(data_dir, ('val',)))
    val = coco.coco_split(data_dir, 'val', val_transform, year)
    train_file = os.path.join(data_dir, 'annotations', f'instances_train{year or coco.YEARS[0]}.json')
    if need_train:
        train = coco.coco_split(data_dir, 'train', train_transform, year)
        class_names = train.class_names
    else:  # the training file's categories only; without it, the val file's (COCO's two files list the same)
        train = None
        class_names = coco.category_names(train_file) if os.path.isfile(train_file) else val.class_names
    if class_names != val.class_names:
        raise UserError(f"{train_file} and the val annotation file list different categories; use the files of "
                        f"one COCO release")
    return train, val, class_names, class_names


def _csv(data_dir, train_transform, val_transform, need_train):
    require_dir(data_dir, "CSV data folder", "pass the folder holding train.csv and val.csv")
    train_file, val_file = os.path.join(data_dir, 'train.csv'), os.path.join(data_dir, 'val.csv')
    train = MultiLabelCsv(train_file, data_dir, transform=train_transform) if need_train else None
    class_names = train.class_names if need_train else csv_class_names(train_file)
    if not class_names:
        raise UserError(f"{train_file} has no label; its rows need 'image,labels' with at least one label")
    val = MultiLabelCsv(val_file, data_dir, class_names, val_transform, classes_from=f"the training list {train_file}")
    return train, val, class_names, class_names


def load_datasets(data_dir, data_format='auto', train_transform=None, val_transform=None, train_split=None,
                  val_split=None, need_train=True):
    """DataSplits of `data_dir`; with need_train=False the training images are neither checked nor loaded (train
    is None), but the class list is still the training split's. train_split/val_split: VOC split names."""
    if data_format not in FORMATS:
        raise UserError(f"unknown data format '{data_format}'; choose one of {', '.join(FORMATS)}")
    if data_format == 'auto':
        data_format = detect_format(data_dir)
    if data_format == 'voc':
        train, val, class_names = voc.voc_datasets(data_dir, train_transform, val_transform, train_split,
                                                   val_split, need_train)
        return DataSplits(train, val, data_format, class_names, list(class_names))
    _check_splits(data_format, train_split, val_split)
    if data_format in SINGLE_LABEL_FORMATS:
        read = single_label.cifar100_datasets if data_format == 'cifar100' else single_label.imagefolder_datasets
        train, val, class_names = read(data_dir, train_transform, val_transform, need_train)
        return DataSplits(train, val, data_format, list(class_names), list(class_names), single_label.SINGLE_LABEL)
    if data_format == 'openimages':
        parts = openimages.openimages_datasets(data_dir, train_transform, val_transform, need_train)
    else:
        parts = (_coco if data_format == 'coco' else _csv)(data_dir, train_transform, val_transform, need_train)
    train, val, class_names, display_names = parts
    return DataSplits(train, val, data_format, list(class_names), list(display_names))


def positive_counts(dataset, num_classes):
    """The number of images that have each class as a positive (multi-label) or as their class (single-label)."""
    if hasattr(dataset, 'label_ids'):
        return np.bincount(dataset.label_ids.indices, minlength=num_classes)
    if hasattr(dataset, 'labels'):
        return np.bincount(np.asarray(dataset.labels, dtype=np.int64), minlength=num_classes)
    return None  # (no dataset, or one that holds no labels)


def empty_classes(splits, most=5):
    """Lines naming the classes with no positive among the training or the validation images, and what that means
    (none when every class has some)."""
    names, n = list(getattr(splits, 'display_names', splits.class_names)), len(splits.class_names)
    lines = []
    for split, dataset in (('training', splits.train), ('validation', splits.val)):
        counts = positive_counts(dataset, n)
        if counts is None or (counts > 0).all():
            continue
        empty = [names[i] for i in np.flatnonzero(counts == 0)]
        shown = ', '.join(empty[:most]) + (f" and {len(empty) - most} more" if len(empty) > most else '')
        if split == 'training':
            meaning = "the model cannot learn them"
        elif splits.task == 'single-label':
            meaning = "they are never the answer, so they do not change top-1"
        else:
            meaning = (f"each counts AP 0 in the mAP, which therefore cannot exceed "
                       f"{100 * (n - len(empty)) / n:.1f}")
        lines.append(f"note: {len(empty)} of {n} classes have no positive among the {split} images ({shown}): "
                     f"{meaning}")
    return lines


def describe(splits):
    """What was read: a line on the format, classes, images and the images without any label, then a note per
    split that leaves classes without a positive."""
    return '\n'.join([_data_line(splits)] + empty_classes(splits))


def _data_line(splits):
    train, val = splits.train, splits.val
    kind = ' (single-label)' if getattr(splits, 'task', 'multi-label') == 'single-label' else ''
    layout = getattr(splits.train if splits.train is not None else splits.val, 'layout', '')
    line = f"data: {splits.format}{f' ({layout})' if layout else ''}{kind}, {len(splits.class_names)} classes"
    if train is not None:
        line += f", {len(train)} training images"
    line += f", {len(val)} validation images"
    if train is not None and getattr(train, 'dropped_unlabelled', 0):
        line += (f"; {train.dropped_unlabelled} training images without any label were left out (the COCO "
                 f"protocol)")
    elif train is not None and getattr(train, 'unlabelled', 0):
        line += (f"; {train.unlabelled} training images without a positive label are kept (as negatives, or "
                 f"unknown where VOC marks them difficult)")
    return line
