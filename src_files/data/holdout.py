"""Which images are held out for validation when the data names no split (one label CSV for all images, a VOC
folder without ImageSets/, a YOLO folder without a validation set).

An image is held out when a hash of its path (as the labels write it) falls in the first `share` of the hash
range: the same image is always on the same side, whatever else the folder holds, in whatever order, on every
machine. train.py writes the result to split.csv in its output folder; validate.py with the same --val-split
scores the same images.

--val-split takes either a share (`0.1`, the default here) or a split name (a VOC ImageSets/Main file, a value of
a CSV `split` column, a key of a YOLO data.yaml): `val_share` tells which.
"""
import csv
import hashlib
import io
import os

from src_files.errors import UserError
from src_files.files import atomic_write_text

DEFAULT_SHARE = 0.1
SPLIT_FILE = 'split.csv'  # (in train.py's output folder: image,split per row)


def val_share(value):
    """The share of images --val-split `value` holds out, or None when it names a split."""
    if value is None:
        return None
    try:
        share = float(value)
    except ValueError:
        return None
    if not 0 < share < 1:
        raise UserError(f"--val-split {value}: a share of the images must be between 0 and 1 (e.g. 0.1), or name a "
                        f"split")
    return share


def is_held_out(key, share):
    """Whether the image with path `key` is in the held-out `share` (a deterministic hash of the path)."""
    digest = hashlib.sha256(key.replace('\\', '/').encode('utf-8')).digest()
    return int.from_bytes(digest[:8], 'big') < share * 2 ** 64


def split_by_hash(keys, share, where):
    """(training indices, validation indices) of images named `keys`; a one-line error when a side is empty."""
    val = [i for i, key in enumerate(keys) if is_held_out(key, share)]
    held = set(val)
    train = [i for i in range(len(keys)) if i not in held]
    if not val or not train:
        side = 'no validation image' if not val else 'no training image'
        raise UserError(f"--val-split {share:g} leaves {side} among the {len(keys)} images of {where}; choose "
                        f"another share, or give the split (Datasets.md, 'One file for all images')")
    return train, val


def hold_out(keys, val_split, where):
    """(training indices, validation indices, the data line's words on it, split.csv rows (image, 'train' | 'val'))
    of the images named `keys`, split by --val-split `val_split` (a share; None: DEFAULT_SHARE)."""
    share = val_share(val_split) or DEFAULT_SHARE
    train, val = split_by_hash(keys, share, where)
    how = f"--val-split {share:g}" if val_split is not None else f"the default --val-split {share:g}"
    line = (f"validation: {len(val)} of {len(keys)} images held out by a hash of their path ({how}; the same images "
            f"on every run, listed in {SPLIT_FILE} of the output folder)")
    return train, val, line, [(keys[i], 'train') for i in train] + [(keys[i], 'val') for i in val]


def write_split_file(out_dir, rows):
    """split.csv (header image,split) in `out_dir`; its path."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator='\n')
    writer.writerow(['image', 'split'])
    writer.writerows(rows)
    path = os.path.join(out_dir, SPLIT_FILE)
    atomic_write_text(buffer.getvalue(), path)
    return path
