"""Multi-label datasets from label CSVs, as labelling tools export them: one-hot tables or tag lists, in
train.csv + val.csv, in per-split folders (train/, valid/) or in one file for all images (split by its split
column, or by a hash of the image paths)."""
import collections
import csv
import os

from src_files.data.files import check_images_exist, require_dir, require_file
from src_files.data.holdout import hold_out, val_share
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


SPLIT_COLUMNS = {'split', 'set', 'subset'}  # a header column naming each row's split (train / val / test)
SEPARATOR_NAMES = {';': "';'", '|': "'|'", ',': "',' (quoted cells)", ' ': "spaces"}


def label_separator(value):
    """The separator character of --label-sep `value` (';', '|', ',', or 'space'); None for None (detected)."""
    if value is None:
        return None
    sep = ' ' if value in ('space', 'spaces', ' ') else value
    if sep not in SEPARATOR_NAMES:
        raise UserError(f"--label-sep {value!r}: choose ';', '|', ',' or space")
    return sep


def _split_column(lines, header, path):
    """(lines without the split column, each line's split value or None): a header column named split / set /
    subset holds each row's split."""
    if not header:
        return lines, [None] * len(lines)
    names = [cell.lower() for cell in lines[0][1]]
    found = [i for i, name in enumerate(names) if name in SPLIT_COLUMNS]
    if not found or found[0] == 0:
        return lines, [None] * len(lines)
    column = found[0]
    for line, fields in lines[1:]:
        if len(fields) <= column:
            raise UserError(f"{path} line {line}: no value in the '{lines[0][1][column]}' column; write train, val "
                            f"or test there")
    return ([(line, fields[:column] + fields[column + 1:]) for line, fields in lines],
            [None] + [fields[column].lower() for _, fields in lines[1:]])


def read_label_table(path, label_sep=None):
    """(rows (line number, image path, positive names, unknown names, split or None), layout, classes): the rows of
    a label CSV in either layout, a few words on the layout found (printed before training) and the classes a
    one-hot header names (None for tags):

    - one-hot: a header `image,<class>,<class>,...` and cells 1 (positive), 0 (negative), -1 or empty (not
      labelled), as Roboflow and many tools export multi-label sets; the classes are the header's names;
    - tags: `image,labels` with the labels of an image in one cell, separated by ';', '|', ',' (in a quoted cell) or
      spaces (the Kaggle Planet layout: 'clear primary road'), or written as a list; several rows of one image add
      up. Spaces separate tags when some tag appears in several different cells; otherwise a cell with spaces is
      one name ('traffic light'). `label_sep` (--label-sep) forces the separator.
    A header column named split (or set, subset) gives each row's split. A table of 0 / 1 cells without a header
    naming its classes is refused (it would otherwise become classes '0' and '1')."""
    lines = _read_lines(path)
    if not lines:
        return [], 'tags', None
    first = lines[0][1]
    header = any(cell.lower() in _HEADER_NAMES for cell in first[:2])
    skip = 1 if header and first[0] == '' else 0  # the index column pandas writes by default
    lines = [(line, fields[skip:]) for line, fields in lines]
    if not header and _is_one_hot(lines[1:], False) and not _is_one_hot(lines, False):
        header = True  # (a header of class names whose image column has another name)
    lines, split_of = _split_column(lines, header, path)
    if _is_one_hot(lines, header):
        if not header:
            raise UserError(f"{path} looks like a one-hot table (0 / 1 cells) without a header line naming its "
                            f"classes: add one, 'image,<class 1>,<class 2>,...'")
        names = lines[0][1][1:]
        if len(names) == 1 and names[0].lower() in _TAG_COLUMNS:
            raise UserError(f"{path}: the column '{names[0]}' holds only 0 / 1: is it one class (one-hot: name the "
                            f"column after the class) or labels named '0' and '1' (write them as names)?")
        rows = [(line, fields[0], [n for n, c in zip(names, fields[1:]) if ONE_HOT_CELLS[c] == 1],
                 [n for n, c in zip(names, fields[1:]) if ONE_HOT_CELLS[c] == -1], split)
                for (line, fields), split in zip(lines[1:], split_of[1:])]
        return rows, f"one-hot, {len(names)} classes from the header", list(names)
    cells = []
    body = zip(lines[1:], split_of[1:]) if header else zip(lines, split_of)
    for (line, fields), split in body:
        cell, extra = _label_cell(fields[1:])
        if any(extra) and not header:
            raise UserError(f"{path} line {line}: {len(fields)} fields; {_FORMAT} (add a header line "
                            f"'image,labels,...' to keep extra columns, which are then ignored)")
        cells.append((line, fields[0] if fields else '', cell, split))
    if label_sep is None:
        separators, layout = _tag_separators([cell for _, _, cell, _ in cells])
    else:
        separators, layout = label_sep, f"tags separated by {SEPARATOR_NAMES[label_sep]} (--label-sep)"
    rows = [(line, image, parse_label_list(cell, separators), [], split) for line, image, cell, split in cells]
    names = {name for _, _, found, _, _ in rows for name in found}
    if label_sep is None and names and all(name.lstrip('-').isdigit() for name in names):
        raise UserError(f"{path}: every label is a number ({', '.join(sorted(names, key=int)[:4])}...): class ids "
                        f"or class names? Write ids as the class names (or as a one-hot table with a header of "
                        f"names); if the numbers are the names, pass --label-sep to read them as written")
    return rows, layout, None


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
    return [(line, image, names) for line, image, names, _, _ in read_label_table(path)[0]]


def _unknown_label(csv_file, line, name, classes_from):
    """The message for a label that is not among the class names."""
    where = f"{csv_file} line {line}: label '{name}'"
    if classes_from:
        return (f"{where} is not one of the classes of {classes_from}; correct or remove the label, or add an "
                f"image of that class to it")
    return f"{where} is not one of the given class names; correct or remove the label, or give class names with it"


def table_class_names(rows, layout, classes):
    """The classes of read_label_table's result: a one-hot header's, in its order, else the sorted label names."""
    return list(classes) if classes is not None else sorted({name for _, _, names, _, _ in rows for name in names})


def csv_class_names(csv_file, label_sep=None):
    """The class list of a MultiLabelCsv of `csv_file` (the default)."""
    return table_class_names(*read_label_table(csv_file, label_sep))


class MultiLabelCsv(ImageList):
    """Images listed in `csv_file` (paths relative to `root`, default the CSV's folder) with their labels.

    `class_names` fixes the class order (e.g. to match a checkpoint); by default it is the sorted set of labels.
    Images without labels are kept as all-negative examples. `classes_from` names where `class_names` come from
    (e.g. the training list), for the message about a label that is not among them. `table`: the file's
    read_label_table result, or some of its rows (one split of a file for all images). Image ids: the paths as
    written in the CSV (relative to `root`).
    """

    upright = True  # (the user's own photos: EXIF orientation applied)

    def __init__(self, csv_file, root=None, class_names=None, transform=None, classes_from=None, table=None,
                 label_sep=None):
        rows, self.layout, header_classes = table or read_label_table(csv_file, label_sep)
        root = os.path.dirname(os.path.abspath(csv_file)) if root is None else root
        require_dir(root, "image folder", f"image paths in {csv_file} are relative to it")
        if not rows:
            raise UserError(f"{csv_file} lists no images; {_FORMAT}")
        if class_names is None:
            class_names = table_class_names(rows, self.layout, header_classes)
        index = {name: i for i, name in enumerate(class_names)}
        labels_of, unknown_of = {}, {}  # an image listed on several rows (one label per row) gets all their labels
        for line, image, names, unknowns, _ in rows:
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


# ----------------------------------------------------------------------------------------------------------
# Where the label files of a CSV dataset are, and how a file for all images is split.

VAL_FOLDERS = ('valid', 'val', 'validation')  # (Roboflow's export writes train/, valid/, test/)
VAL_NAMES = ('val', 'valid', 'validation', 'test')  # split values scored by default, the first present


def _csv_files(folder):
    return sorted(e.path for e in os.scandir(folder) if e.is_file() and e.name.lower().endswith('.csv')) \
        if os.path.isdir(folder) else []


def split_folder_csvs(data_dir):
    """(train CSV, val CSV) of a folder holding train/ and valid/ (or val/) with one CSV each, as Roboflow exports
    a multi-label set (train/_classes.csv beside the images); None otherwise."""
    train = _csv_files(os.path.join(data_dir, 'train'))
    val = next((found for found in (_csv_files(os.path.join(data_dir, name)) for name in VAL_FOLDERS) if found), [])
    return (train[0], val[0]) if len(train) == 1 and len(val) == 1 else None


_OTHER_LAYOUTS = ('-human-imagelabels.csv', 'class-descriptions.csv')  # (the files of an Open Images folder)


def single_csv(data_dir):
    """The folder's one CSV file (a file for all images), None if it has none or several."""
    found = [path for path in _csv_files(data_dir) if not path.endswith(_OTHER_LAYOUTS)]
    return found[0] if len(found) == 1 and len(_csv_files(data_dir)) == 1 else None


def _folder_csvs(folder):
    """(training CSV, validation CSV or None for one file of all images) that a folder holds: train.csv + val.csv,
    per-split folders with one CSV each, or one CSV; None if none of these."""
    pair = os.path.join(folder, 'train.csv'), os.path.join(folder, 'val.csv')
    if all(os.path.isfile(f) for f in pair):
        return pair
    one = single_csv(folder)
    return split_folder_csvs(folder) or ((one, None) if one else None)


def is_csv_data(data):
    """Whether `data` is a label CSV file, or a folder holding label CSVs (_folder_csvs)."""
    if os.path.isfile(data):
        return data.lower().endswith('.csv')
    return os.path.isdir(data) and _folder_csvs(data) is not None


def csv_files(data, val_csv=None):
    """(training CSV, validation CSV or None for one file of all images) of --data and --val-csv."""
    if os.path.isfile(data):
        return data, val_csv
    require_dir(data, "CSV data folder", "pass a folder holding train.csv and val.csv, or one label CSV file")
    found = _folder_csvs(data)
    if found is None:
        found = _csv_files(data)
        listed = ': ' + ', '.join(map(os.path.basename, found[:4])) if found else ''
        raise UserError(f"{data} holds {len(found) or 'no'} CSV files{listed}; name them train.csv and val.csv, or "
                        f"pass the one file for all images with --data FILE.csv")
    return found[0], val_csv or found[1]


def _split_rows(path, rows, train_split, val_split):
    """(training rows, validation rows, a line on the split) of a file whose rows name their split."""
    values = collections.Counter(split for *_, split in rows)
    if val_share(val_split) is not None:
        raise UserError(f"{path} has a split column ({', '.join(sorted(values))}): --val-split names one of its "
                        f"values, not a share")
    val_name = val_split or next((name for name in VAL_NAMES if name in values), None)
    train_name = train_split or 'train'
    for flag, name in (('--train-split', train_name), ('--val-split', val_name)):
        if name not in values:
            raise UserError(f"{path}: no row has split '{name}' (its split column holds "
                            f"{', '.join(sorted(values))}); name one of them with {flag}")
    train = [row for row in rows if row[4] == train_name]
    val = [row for row in rows if row[4] == val_name]
    others = len(rows) - len(train) - len(val)
    line = (f"splits from the file's split column: '{train_name}' trained on, '{val_name}' scored"
            + (f", {others} other rows left out" if others else ''))
    return train, val, line


def csv_splits(data, val_csv=None, train_split=None, val_split=None, label_sep=None):
    """The CSV data of --data: {'train': (csv file, root, table), 'val': (...), 'classes': names, 'held_out': a
    line or '', 'assignment': split.csv rows or None}. A file for all images is split by its split column, else by
    a hash of the image paths (--val-split share, default 0.1)."""
    train_file, val_file = csv_files(data, val_csv)
    train_table = read_label_table(train_file, label_sep)
    rows, layout, header_classes = train_table
    root = os.path.dirname(os.path.abspath(train_file))
    if val_file is not None:
        for flag, name in (('--train-split', train_split), ('--val-split', val_split)):
            if name is not None:
                raise UserError(f"{flag} {name}: {os.path.basename(train_file)} and {os.path.basename(val_file)} are "
                                f"the splits; the flag names values of one file's split column (or a share to hold "
                                f"out of one file)")
        require_file(val_file, "validation CSV", "--val-csv names the label CSV of the validation images")
        val_table = read_label_table(val_file, label_sep)
        return dict(train=(train_file, root, train_table), val=(val_file, os.path.dirname(os.path.abspath(val_file)),
                                                                  val_table),
                    classes=table_class_names(*train_table), classes_from=f"the training list {train_file}",
                    held_out='', assignment=None)
    if not rows:
        raise UserError(f"{train_file} lists no images; {_FORMAT}")
    classes = table_class_names(*train_table)
    if any(row[4] is not None for row in rows):
        train_rows, val_rows, line = _split_rows(train_file, rows, train_split, val_split)
        assignment = None
    else:
        if val_split is not None and val_share(val_split) is None:
            raise UserError(f"--val-split {val_split}: {train_file} has no split column to name; give a share of "
                            f"the images (e.g. 0.1), or add a 'split' column")
        images = list(dict.fromkeys(image for _, image, *_ in rows))
        _, val_ids, line, assignment = hold_out(images, val_split, train_file)
        held = {images[i] for i in val_ids}
        train_rows = [row for row in rows if row[1] not in held]
        val_rows = [row for row in rows if row[1] in held]
    return dict(train=(train_file, root, (train_rows, layout, header_classes)),
                val=(train_file, root, (val_rows, layout, header_classes)), classes=classes,
                classes_from=f"the label file {train_file}", held_out=line, assignment=assignment)
