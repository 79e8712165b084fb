"""The dataset flags of train.py and validate.py and what both do with them: load the splits, say what they hold,
match a checkpoint's classes to the data's by name, and write a scores file."""
import csv
import logging
import os

import numpy as np

from src_files.errors import UserError

LOG = logging.getLogger(__name__)

FORMATS = ('auto', 'coco', 'voc', 'csv', 'openimages', 'cifar100', 'imagefolder')


def add_data_args(parser, training):
    g = parser.add_argument_group('data (layouts in Datasets.md)')
    g.add_argument('--data-format', choices=FORMATS, default='auto',
                   help="layout of --data: multi-label coco (2014 or 2017), voc (VOC2007/2012 or a VOC-format "
                        "export), csv (train.csv + val.csv), openimages (V6 image-level labels); single-label "
                        "cifar100 (cifar-100-python/, the official python version) or imagefolder "
                        "(train/<class>/*, val/<class>/*); auto = from the folder's files")
    g.add_argument('--train-split', default=None, metavar='NAME',
                   help="voc: the ImageSets/Main split to train on, which also fixes the class list (default "
                        "trainval where test.txt exists, else train, or trainval if there is no train.txt)")
    g.add_argument('--val-split', default=None, metavar='NAME',
                   help="voc: the ImageSets/Main split to score (default test where test.txt exists, else val)")
    if training:
        g.add_argument('--unknown-as-negative', action='store_true', default=False,
                       help="train on unknown labels (VOC difficult objects, labels OpenImages did not verify) as "
                            "negatives, as the published OpenImages recipe did; default: they add nothing to the "
                            "loss")


def load(args, train_transform, val_transform, need_train=True):
    """DataSplits of args.data in args.data_format (train None when need_train is False)."""
    from src_files.data.formats import load_datasets
    return load_datasets(args.data, args.data_format, train_transform, val_transform,
                         train_split=args.train_split, val_split=args.val_split, need_train=need_train)


def describe(splits):
    """One line on what was read: format, classes, images, and the images without any label."""
    train, val = splits.train, splits.val
    kind = ' (single-label)' if getattr(splits, 'task', 'multi-label') == 'single-label' else ''
    line = f"data: {splits.format}{kind}, {len(splits.class_names)} classes"
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


def _normalised(name):
    return str(name).strip().lower()


def match_classes(model_classes, splits, model_path, num_outputs):
    """Column of the model's output for each class of the data, in the data's order (None: the identity).

    A checkpoint that names its classes is matched by name (the data's class names, or their display names such
    as OpenImages' for its label ids); one that does not must have as many outputs as the data has classes.
    """
    data_classes = list(splits.class_names)
    named = model_classes and model_classes != [str(i) for i in range(len(model_classes))]
    if not named:
        if num_outputs != len(data_classes):
            raise UserError(f"the model scores {num_outputs} classes but {splits.format} data has "
                            f"{len(data_classes)}: give the checkpoint of a model trained on these classes")
        return None
    column_of = {}
    for i, name in enumerate(model_classes):
        column_of.setdefault(_normalised(name), i)
    displays = list(getattr(splits, 'display_names', None) or data_classes)
    columns, missing = [], []
    for name, display in zip(data_classes, displays):
        column = column_of.get(_normalised(name), column_of.get(_normalised(display)))
        (missing.append(name) if column is None else columns.append(column))
    if missing:
        raise UserError(f"{len(missing)} of the {len(data_classes)} classes of the data are not among the "
                        f"{len(model_classes)} classes of {model_path} (e.g. {missing[0]!r}; the model has "
                        f"{model_classes[0]!r}, ...): score it on data with the classes it was trained on")
    if columns != list(range(num_outputs)):
        LOG.info(f"note: the classes of {model_path} are in another order than the data's (or a superset of them): "
                 f"the scores are matched by class name")
        return np.asarray(columns)
    return None


def unknown_note(targets):
    """The line saying how many label entries were unknown (None when there were none)."""
    unknown = int((np.asarray(targets) < 0).sum())
    if not unknown:
        return None
    return (f"{unknown} of {np.size(targets)} label entries ({100 * unknown / np.size(targets):.1f}%) are unknown "
            f"and left out of each class's AP and counts")


def write_scores(path, image_ids, class_names, scores):
    """CSV `image,<class 1>,...`: one row per image, its probability for each class."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + '.tmp'
    with open(tmp, 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(['image'] + list(class_names))
        for image, row in zip(image_ids, np.asarray(scores, dtype=np.float64)):
            writer.writerow([image] + [f'{value:.7g}' for value in row])
    os.replace(tmp, path)
