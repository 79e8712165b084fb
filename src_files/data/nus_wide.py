"""NUS-WIDE in the zero-shot layout of the published code: data.csv, benchmark_81_v0.json, wordvec_array.pth."""
import csv
import json
import os
from dataclasses import dataclass

import torch

from src_files.data.files import check_images_exist, require_dir, require_file
from src_files.data.image_list import ImageList
from src_files.data.labels import parse_label_list
from src_files.errors import UserError, why_torch_load_failed
from src_files.safe_load import torch_load

SPLITS = ('train', 'val')
WORDVEC_DIM = 300
_SWAP_NOTE = ("the published README swapped the download links of data.csv and wordvec_array.pth, "
              "so check that each file holds what its name says")


@dataclass
class NusWideZsl:
    """The three evaluation views of NUS-WIDE zsl and the word vectors (columns) of their classes."""
    train_set: ImageList
    zsl_val_set: ImageList
    gzsl_val_set: ImageList
    train_wordvecs: torch.Tensor  # [300, n_seen]
    test_wordvecs: torch.Tensor  # [300, n_unseen]
    gzsl_wordvecs: torch.Tensor  # [300, n_seen + n_unseen], seen first, like gzsl targets
    seen_classes: list
    unseen_classes: list


def read_data_csv(path):
    """Rows (relative image path, label names, split) of data.csv, with or without a header line."""
    require_file(path, "NUS-WIDE label file", _SWAP_NOTE)
    with open(path, 'rb') as f:
        head = f.read(2)
        if head == b'PK' or head[:1] == b'\x80':  # zip or pickle: a torch file
            raise UserError(f"{path} is a torch file, not a CSV: {_SWAP_NOTE}")
    rows = []
    try:
        with open(path, newline='', encoding='utf-8-sig') as f:  # -sig: a BOM (Excel, pandas utf-8-sig) is dropped
            reader = csv.reader(f)
            for row in reader:
                if row:
                    rows.append((reader.line_num, row))
    except (UnicodeDecodeError, csv.Error) as error:
        raise UserError(f"cannot parse {path} as CSV ({error}); {_SWAP_NOTE}") from None
    drop_index = False
    if rows and _is_header(rows[0][1]):  # pandas writes one
        drop_index = rows.pop(0)[1][0].strip() == ''  # an unnamed first column is a pandas index
    entries = []
    for line, row in rows:
        row = row[1:] if drop_index else row
        if len(row) < 3:
            raise UserError(f"{path} line {line}: expected image path, label list, split; found {len(row)} fields")
        split = row[-1].strip().lower()
        if split not in SPLITS:  # dropping the row would shrink the data unseen
            raise UserError(f"{path} line {line}: split '{row[-1].strip()}' is not one of {', '.join(SPLITS)}")
        # An unquoted `[a, b]` reaches us as several fields: everything between path and split is labels.
        entries.append((row[0].strip(), parse_label_list(','.join(row[1:-1])), split))
    return entries


def _is_header(row):
    """A first line of column names: its last field is no split, and its labels are no bracketed list."""
    return row[-1].strip().lower() not in SPLITS and not (len(row) > 1 and row[1].strip().startswith('['))


def read_benchmark(path):
    """(seen classes, unseen classes), each sorted, from benchmark_81_v0.json."""
    require_file(path, "NUS-WIDE benchmark file", "it lists the seen ('train class') and unseen ('test class') names")
    try:
        with open(path, encoding='utf-8-sig') as f:
            split = json.load(f)
        seen, unseen = sorted(set(split['train class'])), sorted(set(split['test class']))
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as error:
        raise UserError(f"not a valid benchmark file: {path} (needs lists 'train class' and 'test class'; "
                        f"{type(error).__name__}: {error})") from None
    both = sorted(set(seen) & set(unseen))
    if both:
        raise UserError(f"{path}: classes {both[:5]} are both seen ('train class') and unseen ('test class')")
    return seen, unseen


def read_wordvecs(path, num_classes):
    """Word vectors [300, num_classes] from a tensor saved as [300, n] or [n, 300], bare or in a dict."""
    require_file(path, "NUS-WIDE word vector file", _SWAP_NOTE)
    try:
        value = torch_load(path)  # (never runs code from the file)
    except Exception as error:  # torch.load raises many types (pickle, zip, runtime) on a foreign file
        raise UserError(f"cannot read word vectors from {path} ({why_torch_load_failed(path, error)}); "
                        f"{_SWAP_NOTE}") from None
    accepted = f"[{WORDVEC_DIM}, {num_classes}] or [{num_classes}, {WORDVEC_DIM}]"
    if isinstance(value, dict):  # keep the one tensor of a fitting shape
        shapes = {key: list(v.shape) for key, v in value.items() if isinstance(v, torch.Tensor)}
        fitting = [value[key] for key, shape in shapes.items()
                   if shape in ([WORDVEC_DIM, num_classes], [num_classes, WORDVEC_DIM])]
        if len(fitting) != 1:
            raise UserError(f"{path} holds a dict with tensors {shapes}; expected exactly one of shape {accepted}")
        value = fitting[0]
    if not isinstance(value, torch.Tensor):
        raise UserError(f"{path} holds a {type(value).__name__}, not a tensor of shape {accepted}")
    shape = list(value.shape)
    if shape == [WORDVEC_DIM, num_classes]:
        return value.float()
    if shape == [num_classes, WORDVEC_DIM]:
        return value.t().float().contiguous()
    raise UserError(f"word vectors in {path} have shape {shape}; expected {accepted} "
                    f"({num_classes} = classes listed in benchmark_81_v0.json)")


def _select(entries, data_dir, split, class_index):
    """Paths and label indices of the `split` images with at least one label in `class_index`."""
    paths, label_ids = [], []
    for rel_path, names, row_split in entries:
        ids = sorted({class_index[name] for name in names if name in class_index})
        if row_split == split and ids:
            paths.append(os.path.join(data_dir, rel_path))
            label_ids.append(ids)
    return paths, label_ids


def is_nus_wide(data_dir):
    """Whether `data_dir` is a NUS-WIDE zsl folder (it holds benchmark_81_v0.json)."""
    return os.path.isfile(os.path.join(data_dir, 'benchmark_81_v0.json'))


def load_nus_wide_zsl(data_dir, train_transform, val_transform, encode=None):
    """Train / zsl-val / gzsl-val sets and word vectors of the NUS-WIDE zsl folder `data_dir`; `encode` (names ->
    [d, n], a text encoder's) replaces wordvec_array.pth, which need not then be there."""
    require_dir(data_dir, "NUS-WIDE data folder",
                "pass the folder holding data.csv, benchmark_81_v0.json, wordvec_array.pth and the images")
    entries = read_data_csv(os.path.join(data_dir, 'data.csv'))
    seen, unseen = read_benchmark(os.path.join(data_dir, 'benchmark_81_v0.json'))
    all_classes = sorted(seen + unseen)  # the column order of wordvec_array.pth
    if encode is None:
        wordvecs = read_wordvecs(os.path.join(data_dir, 'wordvec_array.pth'), len(all_classes))
    else:
        wordvecs = encode(all_classes)
    column = {name: i for i, name in enumerate(all_classes)}
    gzsl = seen + unseen

    views = {}
    for name, split, classes, kind in (('train', 'train', seen, 'seen'), ('zsl', 'val', unseen, 'unseen'),
                                       ('gzsl', 'val', gzsl, 'benchmark')):
        views[name] = _select(entries, data_dir, split, {c: i for i, c in enumerate(classes)})
        if not views[name][0]:
            raise UserError(f"{os.path.join(data_dir, 'data.csv')} has no '{split}' image with one of the "
                            f"{len(classes)} {kind} classes of benchmark_81_v0.json; check that the files match")
    used = sorted(set(views['train'][0]) | set(views['gzsl'][0]))
    check_images_exist(used, f"data.csv paths are relative to {data_dir}")

    def vectors(classes):
        return wordvecs[:, [column[c] for c in classes]].contiguous()

    return NusWideZsl(
        train_set=ImageList(*views['train'], seen, train_transform),
        zsl_val_set=ImageList(*views['zsl'], unseen, val_transform),
        gzsl_val_set=ImageList(*views['gzsl'], gzsl, val_transform),
        train_wordvecs=vectors(seen), test_wordvecs=vectors(unseen), gzsl_wordvecs=vectors(gzsl),
        seen_classes=seen, unseen_classes=unseen)
