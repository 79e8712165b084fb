"""YOLO detection folders, as Ultralytics and Roboflow export them, read as multi-label data: an image's labels are
the classes of its boxes (an image without a label file, or with an empty one, has none).

- with a data.yaml (`names:` a list or {id: name}; `train:`, `val:`, `test:` folders or lists of images, relative
  to `path:` or to the file's folder; Roboflow writes `../train/images`): the splits it names;
- without one: classes.txt (one name per line, LabelImg's YOLO export) beside images/ and labels/, split into
  images/train and images/val, or not split.
A box's label file is the image's path with the last `images` folder turned into `labels` and the extension into
.txt; each line is `<class id> <x> <y> <w> <h>` (or a polygon after the id). Data without a validation split is
split by a hash of the image paths (holdout.py, --val-split share).
"""
import math
import os

import yaml

from src_files.data.files import require_file
from src_files.data.holdout import hold_out, val_share
from src_files.data.image_list import ImageList, relative_ids
from src_files.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.webp', '.tif', '.tiff')
YAML_NAMES = ('data.yaml', 'data.yml', 'dataset.yaml')
_HINT = ("a YOLO folder is data.yaml (names:, train:, val:) with images/ and labels/, or classes.txt beside images/ "
         "and labels/ (Datasets.md, 'YOLO')")


def find_yaml(data):
    """The data.yaml of --data (the file itself, or one in the folder), None if there is none."""
    if os.path.isfile(data):
        return data if data.lower().endswith(('.yaml', '.yml')) else None
    return next((os.path.join(data, n) for n in YAML_NAMES if os.path.isfile(os.path.join(data, n))), None)


def is_yolo(data):
    """Whether --data is a YOLO folder (or its data.yaml)."""
    if find_yaml(data):
        return True
    return os.path.isdir(data) and os.path.isfile(os.path.join(data, 'classes.txt')) and all(
        os.path.isdir(os.path.join(data, name)) for name in ('images', 'labels'))


def _read_yaml(path):
    try:
        with open(path, encoding='utf-8') as f:
            content = yaml.safe_load(f)  # (plain data only: no object a file could construct)
    except (OSError, yaml.YAMLError) as error:
        raise UserError(f"cannot read {path} as YAML ({str(error).splitlines()[0]}); {_HINT}") from None
    if not isinstance(content, dict) or 'names' not in content:
        raise UserError(f"{path} has no 'names:' list of classes; {_HINT}")
    return content


def _names(content, path):
    names = content['names']
    if isinstance(names, dict):
        if sorted(names) != list(range(len(names))):
            raise UserError(f"{path}: the ids of 'names:' must be 0 to {len(names) - 1}; {_HINT}")
        names = [names[i] for i in range(len(names))]
    if not isinstance(names, list) or not names:
        raise UserError(f"{path}: 'names:' must be a list of class names or {{id: name}}; {_HINT}")
    names = [str(name) for name in names]
    if 'nc' in content and content['nc'] != len(names):
        raise UserError(f"{path}: nc is {content['nc']} but 'names:' lists {len(names)} classes; correct one")
    return names


def _images_of(entry, base, where):
    """The image files of a data.yaml split entry: a folder (searched recursively), a .txt list of images, or a
    list of these, relative to `base` (a '../' that leads out of it is read inside it, as Roboflow means it)."""
    if isinstance(entry, list):
        return [path for item in entry for path in _images_of(item, base, where)]
    entry = str(entry)
    candidates = [os.path.join(base, entry)]
    if entry.startswith('../'):
        candidates.append(os.path.join(base, entry[3:]))
    path = next((os.path.normpath(p) for p in candidates if os.path.exists(p)), None)
    if path is None:
        raise UserError(f"{where}: '{entry}' not found (looked for {', '.join(candidates)}); {_HINT}")
    if os.path.isfile(path):
        listed = [line.strip() for line in _lines(path) if line.strip()]
        return [os.path.normpath(os.path.join(os.path.dirname(path), p)) for p in listed]
    found = [os.path.join(folder, name) for folder, _, names in os.walk(path) for name in names
             if name.lower().endswith(IMAGE_EXTENSIONS)]
    return sorted(found)


def label_file(image_path):
    """The label .txt of an image: the last images/ folder of its path turned into labels/."""
    parts = image_path.split(os.sep)
    at = max((i for i, part in enumerate(parts[:-1]) if part == 'images'), default=None)
    if at is None:
        raise UserError(f"{image_path} is not under an images/ folder, so it has no labels/ folder; {_HINT}")
    parts[at] = 'labels'
    return os.path.splitext(os.sep.join(parts))[0] + '.txt'


def _lines(path):
    """The lines of a text file; a one-line error for one that is not UTF-8 text."""
    try:
        with open(path, encoding='utf-8') as f:
            return f.read().splitlines()
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read {path} as text ({error}); {_HINT}") from None


def read_labels(path, num_classes):
    """The sorted class ids of the boxes in a label file (none if it does not exist)."""
    if not os.path.isfile(path):
        return []
    ids = set()
    for number, line in enumerate(_lines(path), 1):
        fields = line.split()
        if not fields:
            continue
        try:
            value = float(fields[0])
        except ValueError:
            value = -1.0
        class_id = int(value) if math.isfinite(value) else -1
        if not 0 <= class_id < num_classes or value != class_id:
            raise UserError(f"{path} line {number}: class id '{fields[0]}' is not one of 0 to "
                            f"{num_classes - 1}; correct the label or the class list")
        ids.add(class_id)
    return sorted(ids)


def _layout(data):
    """(root, class names, {split: image paths}, words on where they come from) of a YOLO folder."""
    path = find_yaml(data)
    if path is not None:
        content = _read_yaml(path)
        folder = os.path.dirname(os.path.abspath(path))
        base = os.path.join(folder, str(content.get('path') or ''))
        splits = {key: _images_of(content[key], base, f"{path} '{key}:'") for key in ('train', 'val', 'test')
                  if content.get(key)}
        if 'train' not in splits:
            raise UserError(f"{path} names no 'train:' images; {_HINT}")
        return os.path.normpath(base), _names(content, path), splits, os.path.basename(path)
    classes_file = os.path.join(data, 'classes.txt')
    require_file(classes_file, "YOLO class list", _HINT)
    names = [line.strip() for line in _lines(classes_file) if line.strip()]
    images = os.path.join(data, 'images')
    split_dirs = {key: os.path.join(images, key) for key in ('train', 'val', 'test')
                  if os.path.isdir(os.path.join(images, key))}
    if 'train' in split_dirs:
        splits = {key: _images_of(folder, data, classes_file) for key, folder in split_dirs.items()}
    else:
        splits = {'train': _images_of(images, data, classes_file)}
    return os.path.abspath(data), names, splits, 'classes.txt'


def yolo_datasets(data, train_transform=None, val_transform=None, train_split=None, val_split=None,
                  need_train=True):
    """(train set or None, val set, class names, held-out line or '', split.csv rows or None, layout words)."""
    root, names, splits, source = _layout(data)
    share = val_share(val_split)
    train_name = train_split or 'train'
    val_name = val_split if share is None and val_split else ('val' if 'val' in splits else None)
    for flag, name in (('--train-split', train_name), ('--val-split', val_name)):
        if name is not None and name not in splits:
            raise UserError(f"{flag} {name}: the YOLO data names the splits {', '.join(splits)}")
    if share is not None and 'val' in splits and val_split is not None:
        raise UserError(f"--val-split {val_split}: the YOLO data has its own validation images; name a split "
                        f"({', '.join(splits)}) or leave the flag out")
    held_out, assignment = '', None
    train_paths = splits[train_name]
    if not train_paths:
        raise UserError(f"the YOLO training split of {data} holds no image; {_HINT}")
    if val_name is None:  # no validation images: a share of the training ones, by a hash of their paths
        train_idx, val_idx, held_out, assignment = hold_out(relative_ids(train_paths, root), val_split, data)
        val_paths = [train_paths[i] for i in val_idx]
        train_paths = [train_paths[i] for i in train_idx]
    else:
        val_paths = splits[val_name]
        if not val_paths:
            raise UserError(f"the YOLO split '{val_name}' of {data} holds no image; {_HINT}")

    def dataset(paths, transform):
        labels = [read_labels(label_file(p), len(names)) for p in paths]
        images = ImageList(paths, labels, names, transform, image_ids=relative_ids(paths, root))
        images.upright = True  # (the user's own photos: EXIF orientation applied)
        return images
    train = dataset(train_paths, train_transform) if need_train else None
    layout = f"classes from {source}, labels = the classes of each image's boxes"
    return train, dataset(val_paths, val_transform), names, held_out, assignment, layout
