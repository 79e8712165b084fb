"""One entry point for every folder layout: multi-label COCO (2014/2017), VOC, CSV lists, YOLO detection folders
and Open Images, and single-label ImageFolder trees and CIFAR-100.

`load_datasets(data_dir, data_format)` returns the training and validation datasets, the class list and the task
the layout sets ('multi-label' or 'single-label'); `detect_format` tells the layout from the folder's files;
`describe(splits)` is what the scripts print about what was read: a line, and a note naming the classes without a
positive in a split.
"""
import os
from dataclasses import dataclass
from typing import Optional

import numpy as np

from src_files.data import coco, openimages, single_label, voc, yolo
from src_files.data.csv_list import MultiLabelCsv, csv_splits, is_csv_data, single_csv
from src_files.data.files import require_dir
from src_files.data.holdout import val_share
from src_files.data.image_list import ImageList
from src_files.errors import UserError

FORMATS = ('auto', 'coco', 'voc', 'csv', 'yolo', 'openimages', 'cifar100', 'imagefolder')
SINGLE_LABEL_FORMATS = ('cifar100', 'imagefolder')
_LOOKED_FOR = {
    'coco': "annotations/instances_{train,val}2014.json with train2014/ and val2014/ (or the same with 2017)",
    'voc': "Annotations/ and JPEGImages/ (and ImageSets/Main/)",
    'csv': "train.csv and val.csv, train/ and valid/ with a CSV each, or one CSV",
    'yolo': "data.yaml, or classes.txt with images/ and labels/",
    'openimages': (f"{openimages.DESCRIPTIONS} and *-human-imagelabels.csv (optionally with the {openimages.PREFIX} "
                   f"prefix)"),
    'cifar100': f"{single_label.CIFAR_FOLDER}/ with train, test and meta",
    'imagefolder': "train/<class>/<images> and val/<class>/<images>",
}
# The split names of the formats with fixed splits (VOC, CSV and YOLO data take --train-split / --val-split names,
# and a --val-split share where they name no split)
_OWN_SPLITS = {'coco': ({'train'}, {'val'}), 'openimages': ({'train'}, {'validation', 'val'}),
               'imagefolder': ({'train'}, {'val'}), 'cifar100': ({'train'}, {'test'})}


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
    layout: str = ''  # a few words on the variant read (CSV: one-hot or tags and their separator)
    held_out: str = ''  # how the validation images were chosen, where the data names no split
    assignment: Optional[list] = None  # then: (image, 'train' | 'val') rows, written to split.csv by train.py


def _is_openimages(data_dir):
    return openimages.find_file(data_dir, openimages.DESCRIPTIONS) is not None and any(
        name.endswith('-human-imagelabels.csv') for name in os.listdir(data_dir))


def _layout_of(data_dir):
    """The first format whose files `data_dir` holds (or that a label file passed as --data is), None if none."""
    if os.path.isfile(data_dir):
        return 'csv' if is_csv_data(data_dir) else 'yolo' if yolo.find_yaml(data_dir) else None
    checks = (('coco', lambda: coco.coco_year(data_dir) is not None), ('voc', lambda: voc.is_voc(data_dir)),
              ('yolo', lambda: yolo.is_yolo(data_dir)),
              ('csv', lambda: not single_csv(data_dir) and is_csv_data(data_dir)),
              ('openimages', lambda: _is_openimages(data_dir)),
              ('cifar100', lambda: single_label.cifar_folder(data_dir) is not None),
              ('imagefolder', lambda: single_label.has_imagefolder(data_dir)),
              ('csv', lambda: is_csv_data(data_dir)))  # (one CSV for all images: looked for last)
    return next((name for name, matches in checks if matches()), None)


# Files that only one layout has: a folder holding some of them is that layout with a file missing, and its
# reader then names what is missing (better than "cannot tell the layout").
_PARTIAL = {'coco': ('annotations', 'train2014', 'val2014', 'train2017', 'val2017'),
            'voc': ('Annotations', 'JPEGImages', 'ImageSets'), 'csv': ('train.csv', 'val.csv'),
            'yolo': ('classes.txt', 'labels')}


def _partial_layout(data_dir):
    names = set(os.listdir(data_dir))
    found = [fmt for fmt, marks in _PARTIAL.items() if names & set(marks)]
    if any(name.endswith('-human-imagelabels.csv') or name.endswith(openimages.DESCRIPTIONS) for name in names):
        found.append('openimages')
    return found[0] if len(found) == 1 else None


def detect_format(data_dir):
    """'coco', 'voc', 'csv', 'yolo', 'openimages', 'cifar100' or 'imagefolder': the layout of `data_dir`, from its
    files (a CSV or data.yaml passed as --data: csv or yolo)."""
    if os.path.isfile(data_dir):
        found = _layout_of(data_dir)
        if found is None:
            raise UserError(f"--data {data_dir} is a file but not a label CSV (.csv) or a YOLO data.yaml; pass one "
                            f"of these, or the dataset folder")
        return found
    require_dir(data_dir, "data folder", "pass the dataset folder (or a label CSV file) with --data")
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
            raise UserError(f"{flag} {value}: the flag is for VOC, CSV and YOLO data (a split name, or a share "
                            f"held out); {data_format} data has fixed splits, so leave it out")


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


def _csv(data, train_transform, val_transform, need_train, train_split, val_split, val_csv, label_sep):
    found = csv_splits(data, val_csv, train_split, val_split, label_sep)
    classes = found['classes']
    if not classes:
        raise UserError(f"{found['train'][0]} has no label; its rows need 'image,labels' with at least one label")
    train_file, root, table = found['train']
    train = MultiLabelCsv(train_file, root, classes, train_transform, table=table) if need_train else None
    val_file, val_root, val_table = found['val']
    val = MultiLabelCsv(val_file, val_root, classes, val_transform, classes_from=found['classes_from'],
                        table=val_table)
    return DataSplits(train, val, 'csv', list(classes), list(classes), layout=table[1],
                      held_out=found['held_out'], assignment=found['assignment'])


def load_datasets(data_dir, data_format='auto', train_transform=None, val_transform=None, train_split=None,
                  val_split=None, need_train=True, val_csv=None, label_sep=None):
    """DataSplits of `data_dir` (a folder, or a label CSV / data.yaml); with need_train=False the training images
    are neither checked nor loaded (train is None), but the class list is still the training split's.
    train_split/val_split: split names (VOC, CSV split column, YOLO), or as val_split a share to hold out where the
    data names no split; val_csv, label_sep: CSV data only (--val-csv, --label-sep)."""
    if data_format not in FORMATS:
        raise UserError(f"unknown data format '{data_format}'; choose one of {', '.join(FORMATS)}")
    if data_format == 'auto':
        data_format = detect_format(data_dir)
    if data_format != 'csv' and (val_csv or label_sep):
        flag = '--val-csv' if val_csv else '--label-sep'
        raise UserError(f"{flag} is for label CSVs; {data_dir} is {data_format} data")
    if data_format == 'csv':
        return _csv(data_dir, train_transform, val_transform, need_train, train_split, val_split, val_csv,
                    label_sep)
    if data_format == 'voc':
        train, val, class_names, held_out, assignment = voc.voc_datasets(
            data_dir, train_transform, val_transform, train_split, val_split, need_train)
        return DataSplits(train, val, 'voc', class_names, list(class_names), held_out=held_out, assignment=assignment)
    if data_format == 'yolo':
        train, val, class_names, held_out, assignment, layout = yolo.yolo_datasets(
            data_dir, train_transform, val_transform, train_split, val_split, need_train)
        return DataSplits(train, val, 'yolo', class_names, list(class_names), layout=layout, held_out=held_out,
                          assignment=assignment)
    if val_share(val_split) is None:
        _check_splits(data_format, train_split, val_split)
    else:
        raise UserError(f"--val-split {val_split}: a share is held out only from data without its own validation "
                        f"split (one label CSV, VOC without ImageSets, YOLO); {data_format} data has one")
    if data_format in SINGLE_LABEL_FORMATS:
        read = single_label.cifar100_datasets if data_format == 'cifar100' else single_label.imagefolder_datasets
        train, val, class_names = read(data_dir, train_transform, val_transform, need_train)
        return DataSplits(train, val, data_format, list(class_names), list(class_names), single_label.SINGLE_LABEL)
    if data_format == 'openimages':
        parts = openimages.openimages_datasets(data_dir, train_transform, val_transform, need_train)
    else:
        parts = _coco(data_dir, train_transform, val_transform, need_train)
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
    held_out = [splits.held_out] if getattr(splits, 'held_out', '') else []
    return '\n'.join([_data_line(splits)] + held_out + empty_classes(splits))


def _data_line(splits):
    train, val = splits.train, splits.val
    kind = ' (single-label)' if getattr(splits, 'task', 'multi-label') == 'single-label' else ''
    layout = getattr(splits, 'layout', '')
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
