"""Label CSVs as labelling tools export them (src_files/data/csv_list.py): a one-hot table (Roboflow and many
others: `image,<class>,...` with 1 / 0, and -1 or empty for "not labelled") and tags separated by spaces (the Kaggle
Planet layout), beside the `image,labels` file with ';'. The same images written each way give the same targets
(unknown entries where the file says so), the real class names, and a line that names the layout; train.py trains
on each and validate.py's mAP equals scikit-learn's from the scores file. The misreadings of a naive reader (a
one-hot file taken for classes '0' and '1', space tags taken for one class per combination) cannot happen."""
import csv
import hashlib
import os
import re

import numpy as np
import torch
import pytest

import train
import validate
from src_files.data import demo_coco_root
from src_files.data.csv_list import MultiLabelCsv
from src_files.data.layouts import export_layout
from src_files.errors import UserError
from tests.script_calls import assert_user_error, call_main
from tests.test_formats_e2e import map_bounds
from tests.test_scripts import SMALL


@pytest.fixture(scope='module')
def tags(tmp_path_factory):
    """The demo's images in the `image,labels` layout (labels joined by ';'): the reference."""
    root = tmp_path_factory.mktemp('csv_exports')
    coco = demo_coco_root(cache_dir=str(root / 'demo'), num_train=40, num_val=16)
    export_layout(coco, str(root / 'tags'), 'csv')
    return root / 'tags'


def _rows(path):
    with open(path, newline='', encoding='utf-8') as f:
        rows = list(csv.reader(f))
    return [(image, [n for n in labels.split(';') if n]) for image, labels in rows[1:]]


def _write(tags, folder, split, header, rows):
    folder.mkdir(parents=True, exist_ok=True)
    if not os.path.lexists(folder / 'images'):
        os.symlink(tags / 'images', folder / 'images')
    with open(folder / f'{split}.csv', 'w', newline='', encoding='utf-8') as f:
        writer = csv.writer(f)
        writer.writerow(header)
        writer.writerows(rows)


def one_hot(tags, folder):
    """Each split as `image,<class>,...` with 1 / 0; every 7th negative cell written -1 or empty (not labelled)."""
    classes = MultiLabelCsv(str(tags / 'train.csv'), str(tags)).class_names
    for split in ('train', 'val'):
        rows = []
        for i, (image, labels) in enumerate(_rows(tags / f'{split}.csv')):
            cells = ['1' if c in labels else ('-1' if (i + j) % 14 == 0 else '' if (i + j) % 7 == 0 else '0')
                     for j, c in enumerate(classes)]
            rows.append([image] + cells)
        _write(tags, folder, split, ['filename'] + classes, rows)
    return folder


def space_tags(tags, folder):
    """Each split as `image_name,tags` with the class names' spaces made '_' and the tags separated by spaces."""
    for split in ('train', 'val'):
        _write(tags, folder, split, ['image_name', 'tags'],
               [[image, ' '.join(n.replace(' ', '_') for n in labels)] for image, labels in _rows(tags / f'{split}.csv')])
    return folder


def test_each_export_gives_the_reference_targets_and_the_real_class_names(tags, tmp_path):
    reference = MultiLabelCsv(str(tags / 'val.csv'), str(tags),
                              MultiLabelCsv(str(tags / 'train.csv'), str(tags)).class_names)
    expected = np.stack([reference.target(i).numpy() for i in range(len(reference))])
    assert reference.layout == "tags separated by ';'"

    folder = one_hot(tags, tmp_path / 'one_hot')
    train_set = MultiLabelCsv(str(folder / 'train.csv'), str(folder))
    assert train_set.class_names == reference.class_names and train_set.layout.startswith('one-hot, 16 classes')
    val = MultiLabelCsv(str(folder / 'val.csv'), str(folder), train_set.class_names)
    got = np.stack([val.target(i).numpy() for i in range(len(val))])
    unknown = got == -1
    assert unknown.sum() > 0 and (expected[unknown] == 0).all()  # (only negatives were written as not labelled)
    assert (got[~unknown] == expected[~unknown]).all()

    folder = space_tags(tags, tmp_path / 'spaces')
    train_set = MultiLabelCsv(str(folder / 'train.csv'), str(folder))
    assert train_set.layout == 'tags separated by spaces'
    assert train_set.class_names == sorted(n.replace(' ', '_') for n in reference.class_names)
    val = MultiLabelCsv(str(folder / 'val.csv'), str(folder), train_set.class_names)
    order = [reference.class_names.index(n.replace('_', ' ')) for n in train_set.class_names]
    assert (np.stack([val.target(i).numpy() for i in range(len(val))]) == expected[:, order]).all()


def test_the_misreadings_of_a_naive_reader_cannot_happen(tmp_path):
    from PIL import Image
    for name in ('a.jpg', 'b.jpg', 'c.jpg'):
        Image.new('RGB', (8, 8)).save(tmp_path / name)

    def read(lines):
        (tmp_path / 'l.csv').write_text('\n'.join(lines) + '\n')
        return MultiLabelCsv(str(tmp_path / 'l.csv'))
    assert read(['filename,cat,dog', 'a.jpg,1,0', 'b.jpg,0,1', 'c.jpg,1,1']).class_names == ['cat', 'dog']
    data = read(['image_name,tags', 'a.jpg,clear primary', 'b.jpg,haze primary road', 'c.jpg,clear road'])
    assert data.class_names == ['clear', 'haze', 'primary', 'road']  # (not 'clear primary', ...)
    assert read(['image,labels', 'a.jpg,traffic light', 'b.jpg,stop sign']).class_names == ['stop sign',
                                                                                           'traffic light']
    with pytest.raises(UserError, match='one-hot table .* without a header line naming its classes'):
        read(['a.jpg,1,0', 'b.jpg,0,1'])
    with pytest.raises(UserError, match="the column 'labels' holds only 0 / 1"):
        read(['image,labels', 'a.jpg,1', 'b.jpg,0'])
    with pytest.raises(UserError, match=r"every label is a number \(2, 3, 17...\): class ids or class names\?"):
        read(['image,labels', 'a.jpg,3;17', 'b.jpg,2'])
    numbered = MultiLabelCsv(str(tmp_path / 'l.csv'), label_sep=';')  # (the numbers are the names: said so)
    assert numbered.class_names == ['17', '2', '3']


# ----------------------------------------------------------------------------------------------------------
# Every export of the same images: trained one epoch, then validate.py's mAP against scikit-learn's on targets this
# file writes down itself (not read back through the project's readers).

def _held_out(key, share):
    """The documented split rule, computed here: the first 8 bytes of SHA-256 of the path, big-endian, below share
    of 2^64."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], 'big') < share * 2 ** 64


def _truth(rows, classes, unknown=lambda i, j: False):
    """{image file name: target over `classes`} (1 / 0 / -1 not labelled)."""
    return {os.path.basename(image): np.array([1.0 if c in labels else -1.0 if unknown(i, j) else 0.0
                                               for j, c in enumerate(classes)])
            for i, (image, labels) in enumerate(rows)}


def _classes(tags):
    return sorted({n for split in ('train', 'val') for _, labels in _rows(tags / f'{split}.csv') for n in labels})


def semicolon_tags(tags, folder):
    """The reference itself: train.csv + val.csv of `image,labels` with ';'."""
    return dict(data=tags, line="data: csv (tags separated by ';'), 16 classes",
                truth=_truth(_rows(tags / 'val.csv'), _classes(tags)))


def one_hot_unknowns(tags, folder):
    one_hot(tags, folder)
    return dict(data=folder, line='data: csv (one-hot, 16 classes from the header), 16 classes',
                truth=_truth(_rows(tags / 'val.csv'), _classes(tags), lambda i, j: (i + j) % 7 == 0))


def space_separated_tags(tags, folder):
    space_tags(tags, folder)
    classes = [c.replace(' ', '_') for c in _classes(tags)]
    rows = [(image, [n.replace(' ', '_') for n in labels]) for image, labels in _rows(tags / 'val.csv')]
    return dict(data=folder, line='data: csv (tags separated by spaces), 16 classes', truth=_truth(rows, classes))


def split_column(tags, folder):
    """One file for all images, `image,labels,split`: train / valid (Roboflow's name) / test (left out)."""
    val = _rows(tags / 'val.csv')
    rows = [[image, ';'.join(labels), 'train'] for image, labels in _rows(tags / 'train.csv')]
    rows += [[image, ';'.join(labels), 'test' if i < 4 else 'valid'] for i, (image, labels) in enumerate(val)]
    _write(tags, folder, 'labels', ['image', 'labels', 'split'], rows)
    return dict(data=folder, line="data: csv (tags separated by ';'), 16 classes",
                more="splits from the file's split column: 'train' trained on, 'valid' scored, 4 other rows left out",
                truth=_truth(val[4:], _classes(tags)))


def one_file_val_share(tags, folder):
    """One file for all images, no split column, tags separated by '|', passed as --data FILE --val-split 0.25."""
    rows = _rows(tags / 'train.csv') + _rows(tags / 'val.csv')
    _write(tags, folder, 'all', ['image', 'tags'], [[image, '|'.join(labels)] for image, labels in rows])
    held = [(image, labels) for image, labels in rows if _held_out(image, 0.25)]
    return dict(data=folder / 'all.csv', args=['--val-split', 0.25], line="data: csv (tags separated by '|')",
                more=f"validation: {len(held)} of {len(rows)} images held out by a hash of their path (--val-split "
                     f"0.25", truth=_truth(held, _classes(tags)), split=held)


def _voc_xml(name, objects):
    body = ''.join(f"<object><name>{n}</name><difficult>{int(d)}</difficult><bndbox><xmin>1</xmin><ymin>1</ymin>"
                   f"<xmax>9</xmax><ymax>9</ymax></bndbox></object>" for n, d in objects)
    return f"<annotation><folder>shapes</folder><filename>{name}</filename>{body}</annotation>"


def voc_without_imagesets(tags, folder):
    """LabelImg / CVAT: Annotations/ + JPEGImages/ only; the first object of every third image marked difficult."""
    rows = _rows(tags / 'train.csv') + _rows(tags / 'val.csv')
    (folder / 'Annotations').mkdir(parents=True)
    (folder / 'JPEGImages').mkdir()
    unknown = {}
    for i, (image, labels) in enumerate(rows):
        name = os.path.basename(image)
        os.symlink(tags / image, folder / 'JPEGImages' / name)
        objects = [(n, i % 3 == 0 and k == 0) for k, n in enumerate(labels)]
        (folder / 'Annotations' / (os.path.splitext(name)[0] + '.xml')).write_text(_voc_xml(name, objects))
        unknown[name] = {n for n, hard in objects if hard}
    classes = _classes(tags)
    held = [(image, [n for n in labels if n not in unknown[os.path.basename(image)]]) for image, labels in rows
            if _held_out('JPEGImages/' + os.path.basename(image), 0.1)]
    truth = _truth(held, classes)
    for name, target in truth.items():
        target[[classes.index(n) for n in unknown[name]]] = -1.0
    return dict(data=folder, line='data: voc, 16 classes',
                more=f"validation: {len(held)} of {len(rows)} images held out by a hash of their path (the default "
                     f"--val-split 0.1", truth=truth)


def yolo_roboflow(tags, folder):
    """Roboflow's YOLO export: data.yaml (`../train/images`), train/ and valid/ with images/ and labels/ each."""
    classes = _classes(tags)
    rng = np.random.default_rng(0)
    for split, out in (('train', 'train'), ('val', 'valid')):
        for sub in ('images', 'labels'):
            (folder / out / sub).mkdir(parents=True)
        for image, labels in _rows(tags / f'{split}.csv'):
            name = os.path.basename(image)
            os.symlink(tags / image, folder / out / 'images' / name)
            boxes = [f"{classes.index(n)} {' '.join(f'{v:.3f}' for v in rng.random(4))}" for n in labels
                     for _ in range(1 + int(rng.integers(2)))]
            (folder / out / 'labels' / (os.path.splitext(name)[0] + '.txt')).write_text('\n'.join(boxes) + '\n')
    (folder / 'data.yaml').write_text("train: ../train/images\nval: ../valid/images\n\nnc: 16\nnames: ["
                                      + ', '.join(f"'{c}'" for c in classes) + "]\n")
    return dict(data=folder, line='data: yolo (classes from data.yaml, labels = the classes of each image\'s boxes), '
                                  '16 classes', truth=_truth(_rows(tags / 'val.csv'), classes))


EXPORTS = [semicolon_tags, one_hot_unknowns, space_separated_tags, split_column, one_file_val_share,
           voc_without_imagesets, yolo_roboflow]


@pytest.mark.slow
@pytest.mark.parametrize('export', EXPORTS, ids=[e.__name__ for e in EXPORTS])
def test_train_and_validate_each_export(export, tags, tmp_path, capfd, monkeypatch):
    from small_models import shallow_tresnet_m
    shallow_tresnet_m(monkeypatch)  # (what is checked is the reading and the scoring, not the depth)
    variant = export(tags, tmp_path / 'data')
    data, args, run = variant['data'], variant.get('args', []), tmp_path / 'run'
    code, out, err = call_main(train, ['--data', data, '--epochs', 1, '--output-dir', run] + args + SMALL, capfd)
    assert code == 0, err
    assert variant['line'] in out and variant.get('more', '') in out, out
    if 'split' in variant:  # (the run's split.csv lists the held-out images)
        with open(run / 'split.csv', newline='') as f:
            written = sorted(image for image, side in list(csv.reader(f))[1:] if side == 'val')
        assert written == sorted(image for image, _ in variant['split'])
    scores = tmp_path / 'scores.csv'
    code, out, err = call_main(validate, ['--model-path', run / 'best.pth', '--data', data, '--workers', 0,
                                          '--save-scores', scores] + args, capfd)
    assert code == 0, err
    printed = float(next(line for line in out.splitlines() if line.startswith('mAP ')).split()[1])
    with open(scores, newline='') as f:
        rows = list(csv.reader(f))
    truth = variant['truth']
    classes = [c.replace(' ', '_') for c in _classes(tags)] if export is space_separated_tags else _classes(tags)
    assert rows[0][1:] == classes  # (the real names, in the checkpoint's order)
    assert sorted(os.path.basename(row[0]) for row in rows[1:]) == sorted(truth)  # (exactly the expected images)
    targets = np.stack([truth[os.path.basename(row[0])] for row in rows[1:]])
    low, high, unknown = map_bounds(np.array([row[1:] for row in rows[1:]], dtype=np.float64), targets)
    assert low - 0.05 <= printed <= high + 0.05, (low, printed, high)
    assert (unknown > 0) == (export in (one_hot_unknowns, voc_without_imagesets))


def _phone_photo(folder):
    """A JPEG stored sideways with EXIF orientation 6 (turn 90 degrees clockwise to view), as phones write them, and
    the same picture turned upright and saved without the tag (both lossless in what is compared: PNG)."""
    from PIL import Image
    rng = np.random.default_rng(0)
    upright = Image.fromarray((rng.random((48, 64, 3)) * 255).astype(np.uint8))  # 64 wide, 48 high
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # what the sensor wrote: 48 wide, 64 high
    exif = Image.Exif()
    exif[0x0112] = 6
    stored.save(folder / 'phone.jpg', quality=100, exif=exif.tobytes())
    from PIL import ImageOps
    with Image.open(folder / 'phone.jpg') as image:  # (the reference: the JPEG's own pixels, turned)
        ImageOps.exif_transpose(image).save(folder / 'turned.png')
    return folder / 'phone.jpg', folder / 'turned.png'


def test_a_phone_photo_reaches_the_model_upright_for_csv_data_and_infer_but_not_for_coco(tmp_path, capfd):
    from src_files.data.files import load_rgb
    from src_files.data.image_list import ImageList
    from src_files.helper_functions.augmentations import val_transform
    phone, turned = _phone_photo(tmp_path)
    transform = val_transform(32)
    expected = transform(load_rgb(str(turned)))
    (tmp_path / 'l.csv').write_text('image,labels\nphone.jpg,cat\nturned.png,cat\n')
    csv_data = MultiLabelCsv(str(tmp_path / 'l.csv'), transform=transform)
    assert torch.equal(csv_data[0][0], expected) and torch.equal(csv_data[1][0], expected)
    coco_like = ImageList([str(phone)], [[0]], ['cat'], transform)  # (COCO, NUS-WIDE: the published reading)
    assert not torch.equal(coco_like[0][0], expected)
    assert torch.equal(coco_like[0][0], transform(load_rgb(str(phone))))
    from src_files.inference.labelling import image_batches
    batches = list(image_batches([str(phone), str(turned)], transform, False, 2, 0))
    tensors = [item[1] for item in batches[0]]  # (infer.py's items: index, tensor, original)
    assert torch.equal(tensors[0], expected) and torch.equal(tensors[1], expected)


def test_classes_without_a_positive_are_named_with_what_they_do_to_the_map(tmp_path):
    from PIL import Image
    from src_files.data.formats import describe, load_datasets
    for name in ('a.jpg', 'b.jpg', 'c.jpg'):
        Image.new('RGB', (8, 8)).save(tmp_path / name)
    (tmp_path / 'train.csv').write_text('image,labels\na.jpg,cat;dog\nb.jpg,bird\n')
    (tmp_path / 'val.csv').write_text('image,labels\nc.jpg,cat\n')
    lines = describe(load_datasets(str(tmp_path), 'csv')).splitlines()
    assert lines[0].startswith('data: csv (tags separated by')
    assert lines[1] == ("note: 2 of 3 classes have no positive among the validation images (bird, dog): each counts "
                        "AP 0 in the mAP, which therefore cannot exceed 33.3")
    assert len(lines) == 2  # (every class has a training positive)


def test_a_truncated_jpeg_in_a_2000_image_folder_is_named_before_the_first_step_or_left_out(tags, tmp_path, capfd,
                                                                                           monkeypatch):
    from small_models import shallow_tresnet_m
    shallow_tresnet_m(monkeypatch)
    data = tmp_path / 'data'
    rows = _rows(tags / 'train.csv')
    (data / 'images').mkdir(parents=True)
    train_rows = []
    for i in range(2000 - 16):  # (the demo's training images, copied over and over under new names)
        image, labels = rows[i % len(rows)]
        (data / 'images' / f'{i:04d}.jpg').write_bytes((tags / image).read_bytes())
        train_rows.append([f'images/{i:04d}.jpg', ' '.join(n.replace(' ', '_') for n in labels)])
    _write(tags, data, 'train', ['image_name', 'tags'], train_rows)
    (data / 'images' / 'val').symlink_to(tags / 'images' / 'val')
    _write(tags, data, 'val', ['image_name', 'tags'], [[image, ' '.join(n.replace(' ', '_') for n in labels)]
                                                       for image, labels in _rows(tags / 'val.csv')])
    victim = data / 'images' / '1234.jpg'
    victim.write_bytes(victim.read_bytes()[:200])
    base = (['--data', data, '--epochs', 1, '--output-dir', tmp_path / 'run'] + SMALL
            + ['--batch-size', 128, '--image-size', 32])
    code, out, err = call_main(train, base, capfd)
    line = assert_user_error(code, err)
    assert line.startswith('error: 1 of 2000 images cannot be read: cannot read image') and victim.name in line
    assert '--skip-bad-images' in line and 'epoch 1' not in out and not (tmp_path / 'run' / 'latest.pth').exists()
    code, out, err = call_main(train, base + ['--skip-bad-images'], capfd)
    assert code == 0, err
    assert 'checked 2000 images: 1 cannot be read and were left out (--skip-bad-images)' in out
    assert 'training tresnet_m' in out and 'on 1983 images' in out and re.search(r'^epoch 1/1 ', out, re.M), out


# ----------------------------------------------------------------------------------------------------------
# The other shapes of these exports, and what is refused.

def _images(folder, names, size=(8, 8)):
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        Image.new('RGB', size, (len(name) * 20 % 255, 90, 30)).save(folder / name)


def test_the_split_by_hash_keeps_each_image_on_its_side_whatever_else_the_data_holds():
    from src_files.data.holdout import split_by_hash
    names = [f'images/{i:05d}.jpg' for i in range(4000)]
    train_idx, val_idx = split_by_hash(names, 0.1, 'x')
    assert 0.085 < len(val_idx) / len(names) < 0.115  # (about the share)
    assert [names[i] for i in val_idx] == [n for n in names if _held_out(n, 0.1)]
    more = names[::-1] + [f'other/{i}.jpg' for i in range(500)]  # other order, more images: same sides
    _, val_more = split_by_hash(more, 0.1, 'x')
    assert {more[i] for i in val_more} & set(names) == {names[i] for i in val_idx}
    with pytest.raises(UserError, match='leaves no validation image among the 2 images'):
        split_by_hash(['a.jpg', 'b.jpg'], 0.01, 'x')


def test_yolo_folders_as_ultralytics_and_labelimg_write_them(tmp_path):
    from src_files.data.formats import describe, detect_format, load_datasets
    root = tmp_path / 'ultra'  # data.yaml with path: and names as {id: name}, images/{train,val}, labels/{...}
    _images(root / 'images' / 'train', ['a.jpg', 'b.jpg', 'c.jpg'])
    _images(root / 'images' / 'val', ['d.jpg', 'e.jpg'])
    (root / 'labels' / 'train').mkdir(parents=True)
    (root / 'labels' / 'val').mkdir(parents=True)
    (root / 'labels' / 'train' / 'a.txt').write_text('0 0.5 0.5 0.2 0.2\n2 0.1 0.1 0.1 0.1\n0 0.3 0.3 0.1 0.1\n')
    (root / 'labels' / 'train' / 'b.txt').write_text('1 0.1 0.2 0.3 0.1 0.4 0.4\n')  # (a polygon: only its class)
    (root / 'labels' / 'val' / 'd.txt').write_text('2 0.5 0.5 0.5 0.5\n')  # (c.jpg, e.jpg: no label file)
    (root / 'data.yaml').write_text(f"path: {root}\ntrain: images/train\nval: images/val\n"
                                    "names:\n  0: traffic light\n  1: person\n  2: stop sign\n")
    assert detect_format(str(root)) == detect_format(str(root / 'data.yaml')) == 'yolo'
    splits = load_datasets(str(root / 'data.yaml'))
    assert splits.class_names == ['traffic light', 'person', 'stop sign']
    targets = [splits.train.target(i).tolist() for i in range(3)]
    assert targets == [[1, 0, 1], [0, 1, 0], [0, 0, 0]]
    assert [splits.val.target(i).tolist() for i in range(2)] == [[0, 0, 1], [0, 0, 0]]
    assert splits.val.image_ids == ['images/val/d.jpg', 'images/val/e.jpg'] and not splits.held_out

    flat = tmp_path / 'labelimg'  # classes.txt, images/ and labels/ without splits: held out by hash
    names = [f'{i:03d}.jpg' for i in range(40)]
    _images(flat / 'images', names)
    (flat / 'labels').mkdir()
    for i, name in enumerate(names):
        (flat / 'labels' / name.replace('.jpg', '.txt')).write_text(f'{i % 2} 0.5 0.5 0.1 0.1\n')
    (flat / 'classes.txt').write_text('cat\ndog\n')
    splits = load_datasets(str(flat), val_split='0.25')
    expected = [n for n in names if _held_out(f'images/{n}', 0.25)]
    assert [os.path.basename(i) for i in splits.val.image_ids] == expected
    assert 'validation: ' in describe(splits) and len(splits.train) + len(splits.val) == 40
    (flat / 'labels' / '001.txt').write_text('7 0.5 0.5 0.1 0.1\n')
    with pytest.raises(UserError, match=r"001.txt line 1: class id '7' is not one of 0 to 1"):
        load_datasets(str(flat))
    with pytest.raises(UserError, match="the YOLO data has its own validation images"):
        load_datasets(str(root), val_split='0.2')


def test_roboflow_csv_folders_label_sep_and_what_is_refused(tmp_path):
    from src_files.data.formats import detect_format, load_datasets
    root = tmp_path / 'roboflow'  # train/_classes.csv and valid/_classes.csv beside the images, ', ' separated
    _images(root / 'train', ['a.jpg', 'b.jpg'])
    _images(root / 'valid', ['c.jpg'])
    (root / 'train' / '_classes.csv').write_text('filename, cat, dog\na.jpg, 1, 0\nb.jpg, 0, 1\n')
    (root / 'valid' / '_classes.csv').write_text('filename, cat, dog\nc.jpg, 1, 1\n')
    assert detect_format(str(root)) == 'csv'
    splits = load_datasets(str(root))
    assert splits.class_names == ['cat', 'dog'] and splits.val.target(0).tolist() == [1, 1]
    assert splits.layout == 'one-hot, 2 classes from the header'

    flat = tmp_path / 'flat'
    _images(flat, ['a.jpg', 'b.jpg', 'c.jpg'])
    (flat / 'labels.csv').write_text('image,labels\na.jpg,red car\nb.jpg,red car;blue car\nc.jpg,blue car\n')
    assert load_datasets(str(flat / 'labels.csv'), val_split='0.5').class_names == ['blue car', 'red car']
    forced = load_datasets(str(flat), val_split='0.5', label_sep=' ')
    assert forced.class_names == ['blue', 'car', 'car;blue', 'red'] and forced.layout.endswith('(--label-sep)')
    (flat / 'val.csv').write_text('image,labels\nc.jpg,blue car\n')  # (two CSVs: neither pair nor one file)
    with pytest.raises(UserError, match='holds 2 CSV files: labels.csv, val.csv; name them train.csv and val.csv'):
        load_datasets(str(flat))
    assert load_datasets(str(flat / 'labels.csv'), val_csv=str(flat / 'val.csv')).val.image_ids == ['c.jpg']
    for kwargs, message in (
            (dict(val_split='test'), "--val-split test: .* has no split column to name"),
            (dict(val_split='1.5'), "--val-split 1.5: a share of the images must be between 0 and 1")):
        with pytest.raises(UserError, match=message):
            load_datasets(str(flat / 'labels.csv'), **kwargs)
    (flat / 'labels.csv').write_text('image,labels,split\na.jpg,cat,train\nb.jpg,dog,train\nc.jpg,cat,val\n')
    with pytest.raises(UserError, match=r"has a split column \(train, val\): --val-split names one of its values"):
        load_datasets(str(flat / 'labels.csv'), val_split='0.2')
    with pytest.raises(UserError, match="no row has split 'holdout'"):
        load_datasets(str(flat / 'labels.csv'), val_split='holdout')
    with pytest.raises(UserError, match='--val-csv is for label CSVs; .* is voc data'):
        (tmp_path / 'voc' / 'Annotations').mkdir(parents=True)
        (tmp_path / 'voc' / 'JPEGImages').mkdir()
        load_datasets(str(tmp_path / 'voc'), val_csv='x.csv')


def test_validate_checks_the_images_it_scores(tags, tmp_path, capfd, monkeypatch):
    import shutil
    from small_models import shallow_tresnet_m
    shallow_tresnet_m(monkeypatch)
    data = tmp_path / 'data'
    shutil.copytree(tags, data)
    (data / 'images').unlink() if (data / 'images').is_symlink() else None
    code, out, err = call_main(train, ['--data', data, '--epochs', 1, '--output-dir', tmp_path / 'run',
                                       '--check-images', 'off'] + SMALL, capfd)
    assert code == 0, err
    victim = sorted((data / 'images' / 'val').iterdir())[2]
    victim.write_bytes(victim.read_bytes()[:150])
    base = ['--model-path', tmp_path / 'run' / 'best.pth', '--data', data, '--workers', 0]
    code, out, err = call_main(validate, base, capfd)
    line = assert_user_error(code, err, '1 of 16 images cannot be read', victim.name, '--skip-bad-images')
    assert 'mAP' not in out, line
    code, out, err = call_main(validate, base + ['--skip-bad-images'], capfd)
    assert code == 0 and 'checked 16 images: 1 cannot be read and were left out' in out and 'mAP ' in out, err
