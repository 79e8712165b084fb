"""infer.py's inputs and outputs: the images of --pic-path, per-class thresholds (--thresholds) and the
predictions file (--output, CSV or JSON).

--pic-path is an image, a folder (searched recursively for image files, sorted) or a text file listing image
paths one per line (relative to its folder).

The thresholds file is JSON, read as data: an object {class name: threshold in [0, 1]}; classes it leaves out use
--thr. The predictions file is written row by row as batches finish (a folder of 10^5 images is never held in
memory), to a temporary file renamed onto FILE at the end: an interrupted run, or a full disk, leaves no
half-written file under FILE and no temporary file.
"""
import csv
import json
import math
import os

import numpy as np

from src_files.errors import UserError
from src_files.files import check_writable, temporary_name, write_error

OUTPUT_FORMATS = ('.csv', '.json')
IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm')
LIST_EXTENSIONS = ('.txt', '.lst', '.list')  # --pic-path files that list images, one path per line


def list_images(pic_path):
    """(image paths, the folder outputs name them relative to, or None for a single image) of --pic-path."""
    pic_path = str(pic_path)
    if os.path.isdir(pic_path):
        paths = sorted(os.path.join(folder, name) for folder, _, names in os.walk(pic_path) for name in names
                       if name.lower().endswith(IMAGE_EXTENSIONS))
        if not paths:
            raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder {pic_path}")
        return paths, pic_path
    if not os.path.isfile(pic_path):
        raise UserError(f"image not found: {pic_path} (give an image file, a folder or a list of images with "
                        f"--pic-path)")
    if pic_path.lower().endswith(LIST_EXTENSIONS):
        return read_image_list(pic_path)
    return [pic_path], None


def read_image_list(list_path):
    """The image paths a text file lists (one per line; blank lines and lines starting with # are skipped)."""
    folder = os.path.dirname(list_path) or os.curdir
    try:
        with open(list_path, encoding='utf-8') as f:
            lines = [line.strip() for line in f]
    except (OSError, UnicodeDecodeError) as error:
        raise UserError(f"cannot read the image list {list_path}: {getattr(error, 'strerror', None) or error}") \
            from None
    paths = [os.path.join(folder, line) for line in lines if line and not line.startswith('#')]
    if not paths:
        raise UserError(f"the image list {list_path} names no image (one path per line)")
    return paths, folder


def relative_names(paths, root):
    """Each image's path relative to `root` (its name alone where it lies outside, or without a root)."""
    names = []
    for path in paths:
        rel = os.path.relpath(path, root) if root else '..'
        names.append(os.path.basename(path) if rel.startswith('..') else rel)
    return names


def _no_duplicates(pairs):
    seen = {}
    for key, value in pairs:
        if key in seen:
            raise ValueError(f"the class {key!r} is given twice")
        seen[key] = value
    return seen


def _load_json(path):
    try:
        with open(path, encoding='utf-8') as f:
            return json.load(f, object_pairs_hook=_no_duplicates)
    except OSError as error:
        raise UserError(f"cannot read --thresholds {path}: {error.strerror or error}") from None
    except json.JSONDecodeError as error:
        raise UserError(f"--thresholds {path} is not valid JSON ({error.msg} at line {error.lineno})") from None
    except (UnicodeDecodeError, ValueError) as error:
        raise UserError(f"--thresholds {path} is not a usable thresholds file ({error})") from None


def _check_value(path, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or not 0 <= value <= 1:
        raise UserError(f"--thresholds {path}: the threshold of {name!r} is {json.dumps(value)}; thresholds are "
                        f"probabilities, numbers in [0, 1]")
    return float(value)


def load_thresholds(path):
    """The {class name: threshold} object of a --thresholds file, its values checked (before any model is loaded)."""
    table = _load_json(path)
    if not isinstance(table, dict):
        raise UserError(f"--thresholds {path} must hold a JSON object {{\"class name\": threshold, ...}}, not a "
                        f"{type(table).__name__}")
    return {name: _check_value(path, name, value) for name, value in table.items()}


def class_thresholds(path, table, class_names, default):
    """(thresholds [C] float32, how many classes `table` leaves to `default`); names must be the model's classes."""
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [name for name in table if name not in index]
    if unknown:
        shown = ', '.join(repr(n) for n in unknown[:3]) + (f" and {len(unknown) - 3} more" if len(unknown) > 3 else '')
        known = ', '.join(repr(n) for n in class_names[:5]) + (', ...' if len(class_names) > 5 else '')
        raise UserError(f"--thresholds {path} names {len(unknown)} class(es) the model does not have: {shown} (its "
                        f"{len(class_names)} classes: {known})")
    thresholds = np.full(len(class_names), default, dtype=np.float32)
    for name, value in table.items():
        thresholds[index[name]] = value
    return thresholds, len(class_names) - len(table)


def read_thresholds(path, class_names, default):
    """load_thresholds then class_thresholds."""
    return class_thresholds(path, load_thresholds(path), class_names, default)


def check_threshold(thr):
    """--thr is a probability threshold in [0, 1)."""
    if not 0 <= thr < 1:
        raise UserError(f"--thr is a probability threshold in [0, 1), got {thr}")


def pick_labels(prob, thresholds, top_k):
    """Indices of the classes whose probability exceeds their threshold, best first, at most top_k of them."""
    order = np.argsort(-prob, kind='stable')
    return order[prob[order] > thresholds[order]][:top_k]


def check_output_path(path):
    """The format ('.csv' or '.json') of an --output path, or a one-line error."""
    ext = os.path.splitext(str(path))[1].lower()
    if ext not in OUTPUT_FORMATS:
        raise UserError(f"--output {path}: give a file ending in .csv or .json (the format follows the extension)")
    return ext


class PredictionWriter:
    """Context manager writing one record per image to `path` (CSV `image,labels,scores` with `;`-joined lists,
    or a JSON list with one object per line); removes its temporary file if the run stops or a write fails."""

    def __init__(self, path):
        self.path, self.format = str(path), check_output_path(path)
        self.tmp, self.count, self.file, self.csv = temporary_name(self.path), 0, None, None

    def __enter__(self):
        check_writable(self.path, '--output')  # (before any image is labelled)
        try:
            self.file = open(self.tmp, 'w', encoding='utf-8', newline='')
            if self.format == '.csv':
                self.csv = csv.writer(self.file, lineterminator='\n')
                self.csv.writerow(('image', 'labels', 'scores'))
            else:
                self.file.write('[')
        except OSError as error:
            self._discard()
            raise write_error(self.path, error) from None
        return self

    def write(self, image, labels, scores):
        """One image: its predicted class names and their probabilities, best first."""
        scores = [round(float(s), 6) for s in scores]
        try:
            if self.csv is not None:
                self.csv.writerow((image, ';'.join(labels), ';'.join(repr(s) for s in scores)))
            else:
                record = json.dumps({'image': image, 'labels': list(labels), 'scores': scores}, ensure_ascii=False)
                self.file.write(('\n' if self.count == 0 else ',\n') + record)
        except OSError as error:  # (a full disk: the labels so far are lost anyway, the file would be partial)
            self._discard()
            raise write_error(self.path, error) from None
        self.count += 1

    def __exit__(self, kind, error, trace):
        if kind is None:
            try:
                if self.csv is None:
                    self.file.write('\n]\n')
                self.file.flush()
                os.fsync(self.file.fileno())
                self.file.close()
                os.replace(self.tmp, self.path)
            except OSError as failure:
                self._discard()
                raise write_error(self.path, failure) from None
            return False
        self._discard()
        return False

    def _discard(self):
        """Close and remove the temporary file (on any failure or interruption)."""
        if self.file is not None:
            try:
                self.file.close()
            except OSError:
                pass
        try:
            os.remove(self.tmp)
        except OSError:
            pass
