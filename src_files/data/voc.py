"""PASCAL VOC 2007/2012 (Annotations/, JPEGImages/, ImageSets/Main/) as a multi-label dataset; also the VOC
exports of labelling tools (LabelImg, CVAT), which often leave ImageSets/ out: their images are split by a hash of
their paths (holdout.py).

A class is positive for an image when it has an object of it that is not difficult; when all its objects are
difficult the class is UNKNOWN for the image. Classes: the sorted object names of the training split's XMLs.
"""
import logging
import os
import xml.etree.ElementTree as ET

from src_files.data.files import require_dir, require_file
from src_files.data.holdout import hold_out, val_share
from src_files.data.image_list import ImageList, relative_ids
from src_files.errors import UserError

LOG = logging.getLogger(__name__)

FOLDERS = ('Annotations', 'JPEGImages', os.path.join('ImageSets', 'Main'))
_HINT = "expected a VOC folder: Annotations/, JPEGImages/ and ImageSets/Main/<split>.txt"


def is_voc(data_dir):
    """Whether `data_dir` holds the VOC folders (ImageSets/ may be missing, as in LabelImg's or CVAT's exports)."""
    return all(os.path.isdir(os.path.join(data_dir, folder)) for folder in FOLDERS[:2])


def default_splits(data_dir):
    """(train split, val split): trainval and test where ImageSets/Main/test.txt exists, else train (trainval if
    there is no train.txt) and val.

    (VOC2012 publishes no test labels; its trainval holds val, so training on it would score seen images.)
    """
    main = os.path.join(data_dir, FOLDERS[2])
    if os.path.isfile(os.path.join(main, 'test.txt')):
        return 'trainval', 'test'
    return ('train' if os.path.isfile(os.path.join(main, 'train.txt')) else 'trainval'), 'val'


def read_split_ids(data_dir, split):
    """(split file, image ids listed in ImageSets/Main/<split>.txt)."""
    path = os.path.join(data_dir, FOLDERS[2], f'{split}.txt')
    require_file(path, "VOC split file", f"{_HINT}; --train-split/--val-split name the split files")
    with open(path, encoding='utf-8') as f:
        ids = [line.split()[0] for line in f if line.strip()]
    if not ids:
        raise UserError(f"VOC split file {path} lists no image id; {_HINT}")
    return path, ids


def parse_annotation(xml_path):
    """(<filename> or None, [(object name, difficult)]) of one VOC annotation file."""
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as error:
        raise UserError(f"cannot parse VOC annotation {xml_path} (line {error.position[0]}: {error}); fix or "
                        f"re-download the file") from None
    except OSError as error:
        raise UserError(f"cannot read VOC annotation {xml_path} ({error})") from None
    objects = []
    for obj in root.findall('object'):
        name = (obj.findtext('name') or '').strip()
        difficult = (obj.findtext('difficult') or '0').strip()
        if not name or difficult not in ('0', '1'):
            raise UserError(f"VOC annotation {xml_path}: an object without a <name> or with <difficult> "
                            f"'{difficult}' (expected 0 or 1); fix the file")
        objects.append((name, difficult == '1'))
    filename = (root.findtext('filename') or '').strip()
    return filename or None, objects


def _missing(split_file, ids, missing, what):
    return UserError(f"{split_file}: image id '{missing[0]}' has no {what} ({len(missing)} of {len(ids)} ids "
                     f"missing; fix the split file or add the files)")


def read_annotations(data_dir, split):
    """(split file, ids, [(xml path, filename, objects)] per id) of a split."""
    return annotations_of(data_dir, *read_split_ids(data_dir, split))


def annotations_of(data_dir, split_file, ids):
    """(split file, ids, [(xml path, filename, objects)] per id) of the ids a split file (or the folder) lists."""
    folder = os.path.join(data_dir, 'Annotations')
    listing = set(os.listdir(folder))
    missing = [i for i in ids if f'{i}.xml' not in listing]
    if missing:
        raise _missing(split_file, ids, missing, f"annotation file in {folder}")
    paths = [os.path.join(folder, f'{i}.xml') for i in ids]
    return split_file, ids, [(path, *parse_annotation(path)) for path in paths]


def _image_paths(data_dir, split_file, ids, annotations):
    """JPEGImages/<id>.jpg, or else JPEGImages/<the XML's filename>, of each id."""
    folder = os.path.join(data_dir, 'JPEGImages')
    listing = set(os.listdir(folder))
    names = [f'{i}.jpg' if f'{i}.jpg' in listing or not filename else filename
             for i, (_, filename, _) in zip(ids, annotations)]
    missing = [i for i, name in zip(ids, names) if name not in listing]
    if missing:
        raise _missing(split_file, ids, missing, f"image in {folder} (as <id>.jpg or the XML's <filename>)")
    return [os.path.join(folder, name) for name in names]


def voc_dataset(data_dir, split_file, ids, annotations, class_names, transform=None):
    """ImageList of a split's images over `class_names`: positives, and UNKNOWN for all-difficult classes."""
    index = {name: i for i, name in enumerate(class_names)}
    label_ids, unknown_ids = [], []
    for xml_path, _, objects in annotations:
        for name, _ in objects:
            if name not in index:
                raise UserError(f"VOC annotation {xml_path}: object '{name}' is not one of the {len(index)} classes "
                                f"of the training split; correct the name or train on a split that has it")
        positive = {index[name] for name, difficult in objects if not difficult}
        label_ids.append(sorted(positive))
        unknown_ids.append(sorted({index[name] for name, difficult in objects if difficult} - positive))
    paths = _image_paths(data_dir, split_file, ids, annotations)
    dataset = ImageList(paths, label_ids, class_names, transform, unknown_ids=unknown_ids,
                        image_ids=relative_ids(paths, data_dir))
    dataset.upright = True  # (VOC exports of the user's own photos: EXIF orientation applied)
    return dataset


def _split_by_hash(data_dir, val_split, train_split):
    """(train part, val part, held-out line, split.csv rows) of the images of a VOC folder without ImageSets/Main
    (every annotation file), or of its training split when --val-split is a share."""
    main = os.path.join(data_dir, FOLDERS[2])
    if os.path.isdir(main):
        split_file, ids = read_split_ids(data_dir, train_split or default_splits(data_dir)[0])
    else:
        folder = os.path.join(data_dir, 'Annotations')
        split_file, ids = folder, sorted(n[:-4] for n in os.listdir(folder) if n.lower().endswith('.xml'))
        if not ids:
            raise UserError(f"{folder} holds no .xml annotation; {_HINT}")
    _, ids, annotations = annotations_of(data_dir, split_file, ids)
    keys = relative_ids(_image_paths(data_dir, split_file, ids, annotations), data_dir)
    train_idx, val_idx, line, rows = hold_out(keys, val_split, data_dir)

    def part(indices):
        return split_file, [ids[i] for i in indices], [annotations[i] for i in indices]
    return part(train_idx), part(val_idx), line, rows


def voc_datasets(data_dir, train_transform=None, val_transform=None, train_split=None, val_split=None,
                 need_train=True):
    """(train set or None, val set, class names, held-out line or '', split.csv rows or None) of a VOC folder;
    classes from the training split's XMLs. Without ImageSets/Main, or with a share as --val-split, the images are
    split by a hash of their paths."""
    require_dir(data_dir, "VOC data folder", _HINT)
    for folder in FOLDERS[:2]:
        require_dir(os.path.join(data_dir, folder), "VOC folder", _HINT)
    share = val_share(val_split)
    held_out, assignment = '', None
    if share is not None or not os.path.isdir(os.path.join(data_dir, FOLDERS[2])):
        if val_split is not None and share is None:
            raise UserError(f"--val-split {val_split}: {data_dir} has no ImageSets/Main split files; give a share "
                            f"of the images (e.g. 0.1) or leave the flag out")
        train, val, held_out, assignment = _split_by_hash(data_dir, val_split, train_split)
        train_split, val_split = 'train', 'val'
    else:
        default_train, default_val = default_splits(data_dir)
        train_split, val_split = train_split or default_train, val_split or default_val
        train, val = read_annotations(data_dir, train_split), read_annotations(data_dir, val_split)
    class_names = sorted({name for _, _, objects in train[2] for name, _ in objects})
    if not class_names:
        raise UserError(f"the VOC training split {train[0]} has no object in its annotations; {_HINT}")
    shared = set(train[1]) & set(val[1])
    if need_train and shared:
        LOG.warning(f"warning: {len(shared)} images are in both the training split {train_split} and the "
                    f"validation split {val_split} of {data_dir}: their scores are not a held-out measure")
    train_set = voc_dataset(data_dir, *train, class_names, train_transform) if need_train else None
    return (train_set, voc_dataset(data_dir, *val, class_names, val_transform), class_names, held_out,
            assignment)
