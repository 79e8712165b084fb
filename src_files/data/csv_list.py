"""A generic multi-label dataset from a CSV of `image,labels` rows, for custom data."""
import csv
import os

from src_files.data.files import check_images_exist, require_dir, require_file
from src_files.data.image_list import ImageList, relative_ids
from src_files.data.labels import is_list_cell, parse_label_list
from src_files.errors import UserError

_FORMAT = "expected rows 'image,labels' with labels separated by ';' or '|', or written as a list"
_HEADER_NAMES = {'image', 'images', 'path', 'file', 'filename', 'file_name', 'image_path', 'image_name'}


def _label_cell(fields):
    """(label cell, extra fields) from the fields after the image path.

    An unquoted `[a, b]` arrives split over several fields: they are joined back up to the closing bracket.
    """
    if fields and fields[0].startswith('[') and not fields[0].endswith(']'):
        for end in range(1, len(fields)):
            if fields[end].endswith(']'):
                return ','.join(fields[:end + 1]), fields[end + 1:]
    return (fields[0] if fields else ''), fields[1:]


def read_label_csv(path):
    """Rows (line number, image path, label names); an optional header line is skipped.

    With a header, columns after the labels are ignored; without one, a filled extra field is an error (it
    would otherwise be taken for labels or dropped unseen). A pandas index column (unnamed) is dropped.
    """
    require_file(path, "label CSV", _FORMAT)
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            reader = csv.reader(f)
            lines = [(reader.line_num, [cell.strip() for cell in row]) for row in reader if ''.join(row).strip()]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot parse {path} as CSV ({error}); {_FORMAT}") from None
    header = bool(lines) and any(cell.lower() in _HEADER_NAMES for cell in lines[0][1][:2])
    skip = 1 if header and lines[0][1][0] == '' else 0  # the index column pandas writes by default
    rows = []
    for line, fields in lines[1:] if header else lines:
        fields = fields[skip:]
        cell, extra = _label_cell(fields[1:])
        if any(extra) and not header:
            raise UserError(f"{path} line {line}: {len(fields)} fields; {_FORMAT} (add a header line "
                            f"'image,labels,...' to keep extra columns, which are then ignored)")
        if ',' in cell and not is_list_cell(cell):
            raise UserError(f"{path} line {line}: the label cell '{cell}' holds a comma; {_FORMAT}")
        rows.append((line, fields[0] if fields else '', parse_label_list(cell, ';|')))
    return rows


def _unknown_label(csv_file, line, name, classes_from):
    """The message for a label that is not among the class names."""
    where = f"{csv_file} line {line}: label '{name}'"
    if classes_from:
        return (f"{where} is not one of the classes of {classes_from}; correct or remove the label, or add an "
                f"image of that class to it")
    return f"{where} is not one of the given class names; correct or remove the label, or give class names with it"


def csv_class_names(csv_file):
    """The sorted label names of `csv_file` (the default class list of a MultiLabelCsv of it)."""
    return sorted({name for _, _, names in read_label_csv(csv_file) for name in names})


class MultiLabelCsv(ImageList):
    """Images listed in `csv_file` (paths relative to `root`, default the CSV's folder) with their labels.

    `class_names` fixes the class order (e.g. to match a checkpoint); by default it is the sorted set of labels.
    Images without labels are kept as all-negative examples. `classes_from` names where `class_names` come from
    (e.g. the training list), for the message about a label that is not among them. Image ids: the paths as
    written in the CSV (relative to `root`).
    """

    def __init__(self, csv_file, root=None, class_names=None, transform=None, classes_from=None):
        rows = read_label_csv(csv_file)
        root = os.path.dirname(os.path.abspath(csv_file)) if root is None else root
        require_dir(root, "image folder", f"image paths in {csv_file} are relative to it")
        if not rows:
            raise UserError(f"{csv_file} lists no images; {_FORMAT}")
        if class_names is None:
            class_names = sorted({name for _, _, names in rows for name in names})
        index = {name: i for i, name in enumerate(class_names)}
        labels_of = {}  # an image listed on several rows (one label per row) gets all their labels
        for line, image, names in rows:
            if not image:
                raise UserError(f"{csv_file} line {line}: no image path; {_FORMAT}")
            unknown = [name for name in names if name not in index]
            if unknown:
                raise UserError(_unknown_label(csv_file, line, unknown[0], classes_from))
            labels_of.setdefault(image, set()).update(index[name] for name in names)
        label_ids = [sorted(ids) for ids in labels_of.values()]
        paths = [os.path.join(root, image) for image in labels_of]
        check_images_exist(paths, f"image paths in {csv_file} are relative to {root}")
        super().__init__(paths, label_ids, class_names, transform, image_ids=relative_ids(paths, root))
