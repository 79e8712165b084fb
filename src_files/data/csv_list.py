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


ONE_HOT_CELLS = {'0': 0, '1': 1, '-1': -1, '': -1, '0.0': 0, '1.0': 1, '-1.0': -1}  # -1 / empty: not labelled
_TAG_COLUMNS = {'labels', 'label', 'tags', 'tag', 'classes', 'class', 'categories', 'category'}


def _read_lines(path):
    require_file(path, "label CSV", _FORMAT)
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:  # -sig: Excel's "CSV UTF-8" starts with a BOM
            reader = csv.reader(f)
            return [(reader.line_num, [cell.strip() for cell in row]) for row in reader if ''.join(row).strip()]
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot parse {path} as CSV ({error}); {_FORMAT}") from None


def _is_one_hot(lines, header):
    """Whether the rows are a one-hot table `image,<class>,<class>,...` of 0 / 1 cells (-1 or empty: unknown)."""
    if not lines:
        return False
    width = len(lines[0][1])
    body = lines[1:] if header else lines
    if width < 2 or not body or any(len(fields) != width for _, fields in body):
        return False
    cells = [cell for _, fields in body for cell in fields[1:]]
    return all(cell in ONE_HOT_CELLS for cell in cells) and any(cell in ('1', '1.0') for cell in cells)


def read_label_table(path):
    """(rows (line number, image path, positive names, unknown names), layout, classes): the rows of a label CSV in
    either layout, a few words on the layout found (printed before training) and the classes a one-hot header names
    (None for tags):

    - one-hot: a header `image,<class>,<class>,...` and cells 1 (positive), 0 (negative), -1 or empty (not
      labelled), as Roboflow and many tools export multi-label sets; the classes are the header's names;
    - tags: `image,labels` with the labels of an image in one cell, separated by ';', '|', ',' (in a quoted cell) or
      spaces (the Kaggle Planet layout: 'clear primary road'), or written as a list; several rows of one image add
      up. Spaces separate tags when some tag appears in several different cells; otherwise a cell with spaces is
      one name ('traffic light').
    A table of 0 / 1 cells without a header naming its classes is refused (it would otherwise become classes '0'
    and '1')."""
    lines = _read_lines(path)
    if not lines:
        return [], 'tags', None
    first = lines[0][1]
    header = any(cell.lower() in _HEADER_NAMES for cell in first[:2])
    skip = 1 if header and first[0] == '' else 0  # the index column pandas writes by default
    lines = [(line, fields[skip:]) for line, fields in lines]
    if not header and _is_one_hot(lines[1:], False) and not _is_one_hot(lines, False):
        header = True  # (a header of class names whose image column has another name)
    if _is_one_hot(lines, header):
        if not header:
            raise UserError(f"{path} looks like a one-hot table (0 / 1 cells) without a header line naming its "
                            f"classes: add one, 'image,<class 1>,<class 2>,...'")
        names = lines[0][1][1:]
        if len(names) == 1 and names[0].lower() in _TAG_COLUMNS:
            raise UserError(f"{path}: the column '{names[0]}' holds only 0 / 1: is it one class (one-hot: name the "
                            f"column after the class) or labels named '0' and '1' (write them as names)?")
        rows = [(line, fields[0], [n for n, c in zip(names, fields[1:]) if ONE_HOT_CELLS[c] == 1],
                 [n for n, c in zip(names, fields[1:]) if ONE_HOT_CELLS[c] == -1]) for line, fields in lines[1:]]
        return rows, f"one-hot, {len(names)} classes from the header", list(names)
    cells = []
    for line, fields in lines[1:] if header else lines:
        cell, extra = _label_cell(fields[1:])
        if any(extra) and not header:
            raise UserError(f"{path} line {line}: {len(fields)} fields; {_FORMAT} (add a header line "
                            f"'image,labels,...' to keep extra columns, which are then ignored)")
        cells.append((line, fields[0] if fields else '', cell))
    separators, layout = _tag_separators([cell for _, _, cell in cells])
    return [(line, image, parse_label_list(cell, separators), []) for line, image, cell in cells], layout, None


def _tag_separators(cells):
    """(separator characters, layout words) of the tag cells of a file."""
    plain = [c for c in cells if not is_list_cell(c)]
    for chars, name in ((';', "';'"), ('|', "'|'"), (',', "',' (quoted cells)")):
        if any(chars in c for c in plain):
            return ';|,' if chars != '|' else '|', f"tags separated by {name}"
    multi = {c for c in plain if len(c.split()) > 1}
    seen_in = {}
    for c in multi:
        for token in set(c.split()):
            seen_in.setdefault(token, set()).add(c)
    singles = {c for c in plain if c and len(c.split()) == 1}
    if any(len(where) > 1 or token in singles for token, where in seen_in.items()):
        return ' ', "tags separated by spaces"
    return ';|', "tags"


def read_label_csv(path):
    """Rows (line number, image path, label names) of a label CSV (read_label_table, unknown entries left out)."""
    return [(line, image, names) for line, image, names, _ in read_label_table(path)[0]]


def _unknown_label(csv_file, line, name, classes_from):
    """The message for a label that is not among the class names."""
    where = f"{csv_file} line {line}: label '{name}'"
    if classes_from:
        return (f"{where} is not one of the classes of {classes_from}; correct or remove the label, or add an "
                f"image of that class to it")
    return f"{where} is not one of the given class names; correct or remove the label, or give class names with it"


def table_class_names(rows, layout, classes):
    """The classes of read_label_table's result: a one-hot header's, in its order, else the sorted label names."""
    return list(classes) if classes is not None else sorted({name for _, _, names, _ in rows for name in names})


def csv_class_names(csv_file):
    """The class list of a MultiLabelCsv of `csv_file` (the default)."""
    return table_class_names(*read_label_table(csv_file))


class MultiLabelCsv(ImageList):
    """Images listed in `csv_file` (paths relative to `root`, default the CSV's folder) with their labels.

    `class_names` fixes the class order (e.g. to match a checkpoint); by default it is the sorted set of labels.
    Images without labels are kept as all-negative examples. `classes_from` names where `class_names` come from
    (e.g. the training list), for the message about a label that is not among them. Image ids: the paths as
    written in the CSV (relative to `root`).
    """

    upright = True  # (the user's own photos: EXIF orientation applied)

    def __init__(self, csv_file, root=None, class_names=None, transform=None, classes_from=None):
        rows, self.layout, header_classes = read_label_table(csv_file)
        root = os.path.dirname(os.path.abspath(csv_file)) if root is None else root
        require_dir(root, "image folder", f"image paths in {csv_file} are relative to it")
        if not rows:
            raise UserError(f"{csv_file} lists no images; {_FORMAT}")
        if class_names is None:
            class_names = table_class_names(rows, self.layout, header_classes)
        index = {name: i for i, name in enumerate(class_names)}
        labels_of, unknown_of = {}, {}  # an image listed on several rows (one label per row) gets all their labels
        for line, image, names, unknowns in rows:
            if not image:
                raise UserError(f"{csv_file} line {line}: no image path; {_FORMAT}")
            missing = [name for name in names + unknowns if name not in index]
            if missing:
                raise UserError(_unknown_label(csv_file, line, missing[0], classes_from))
            labels_of.setdefault(image, set()).update(index[name] for name in names)
            unknown_of.setdefault(image, set()).update(index[name] for name in unknowns)
        label_ids = [sorted(ids) for ids in labels_of.values()]
        unknown_ids = [sorted(unknown_of[image] - labels_of[image]) for image in labels_of]
        paths = [os.path.join(root, image) for image in labels_of]
        check_images_exist(paths, f"image paths in {csv_file} are relative to {root}")
        super().__init__(paths, label_ids, class_names, transform, image_ids=relative_ids(paths, root),
                         unknown_ids=unknown_ids if any(unknown_ids) else None)
