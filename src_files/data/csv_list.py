"""A generic multi-label dataset from a CSV of `image,labels` rows, for custom data."""
import csv
import os

from src_files.data.files import check_images_exist, require_dir, require_file
from src_files.data.image_list import ImageList
from src_files.data.labels import parse_label_list
from src_files.errors import UserError

_FORMAT = "expected rows 'image,labels' with labels separated by ';' or '|', or written as a list"
_HEADER_NAMES = {'image', 'images', 'path', 'file', 'filename', 'file_name', 'image_path', 'image_name'}


def read_label_csv(path):
    """Rows (line number, image path, label names); an optional header line is skipped."""
    require_file(path, "label CSV", _FORMAT)
    rows = []
    try:
        with open(path, newline='', encoding='utf-8') as f:
            reader = csv.reader(f)
            for row in reader:
                if row and row[0].strip():
                    # An unquoted `[a, b]` arrives split over several fields: rejoin everything after the image.
                    rows.append((reader.line_num, row[0].strip(), parse_label_list(','.join(row[1:]), ';|')))
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot parse {path} as CSV ({error}); {_FORMAT}") from None
    if rows and rows[0][1].lower() in _HEADER_NAMES:
        rows.pop(0)
    return rows


class MultiLabelCsv(ImageList):
    """Images listed in `csv_file` (paths relative to `root`, default the CSV's folder) with their labels.

    `class_names` fixes the class order (e.g. to match a checkpoint); by default it is the sorted set of labels.
    Images without labels are kept as all-negative examples.
    """

    def __init__(self, csv_file, root=None, class_names=None, transform=None):
        rows = read_label_csv(csv_file)
        root = os.path.dirname(os.path.abspath(csv_file)) if root is None else root
        require_dir(root, "image folder", f"image paths in {csv_file} are relative to it")
        if not rows:
            raise UserError(f"{csv_file} lists no images; {_FORMAT}")
        if class_names is None:
            class_names = sorted({name for _, _, names in rows for name in names})
        index = {name: i for i, name in enumerate(class_names)}
        label_ids = []
        for line, _, names in rows:
            unknown = [name for name in names if name not in index]
            if unknown:
                raise UserError(f"{csv_file} line {line}: label '{unknown[0]}' is not one of the given class names")
            label_ids.append(sorted({index[name] for name in names}))
        paths = [os.path.join(root, image) for _, image, _ in rows]
        check_images_exist(paths, f"image paths in {csv_file} are relative to {root}")
        super().__init__(paths, label_ids, class_names, transform)
