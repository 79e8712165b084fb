"""Label CSVs as labelling tools export them (src_files/data/csv_list.py): a one-hot table (Roboflow and many
others: `image,<class>,...` with 1 / 0, and -1 or empty for "not labelled") and tags separated by spaces (the Kaggle
Planet layout), beside the `image,labels` file with ';'. The same images written each way give the same targets
(unknown entries where the file says so), the real class names, and a line that names the layout; train.py trains
on each and validate.py's mAP equals scikit-learn's from the scores file. The misreadings of a naive reader (a
one-hot file taken for classes '0' and '1', space tags taken for one class per combination) cannot happen."""
import csv
import os

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
from tests.test_formats_e2e import independent_map
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
    folder.mkdir(exist_ok=True)
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


@pytest.mark.slow
@pytest.mark.parametrize('export', [one_hot, space_tags])
def test_train_and_validate_each_export(export, tags, tmp_path, capfd):
    data = export(tags, tmp_path / export.__name__)
    code, out, err = call_main(train, ['--data', data, '--epochs', 1, '--output-dir', tmp_path / 'run'] + SMALL, capfd)
    assert code == 0, err
    layout = 'one-hot, 16 classes from the header' if export is one_hot else 'tags separated by spaces'
    assert f'data: csv ({layout}), 16 classes' in out, out
    scores = tmp_path / 'scores.csv'
    code, out, err = call_main(validate, ['--model-path', tmp_path / 'run' / 'best.pth', '--data', data, '--workers',
                                          0, '--save-scores', scores], capfd)
    assert code == 0, err
    printed = float(next(line for line in out.splitlines() if line.startswith('mAP ')).split()[1])
    low, high, unknown = independent_map(scores, data, 'csv')
    assert low - 0.05 <= printed <= high + 0.05 and (unknown > 0) == (export is one_hot)


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


def test_a_truncated_jpeg_is_named_before_the_first_step_or_left_out(tags, tmp_path, capfd, monkeypatch):
    from small_models import shallow_tresnet_m
    shallow_tresnet_m(monkeypatch)
    data = space_tags(tags, tmp_path / 'data')
    (data / 'images').unlink()  # (a copy of the images, one of them cut short)
    import shutil
    shutil.copytree(tags / 'images', data / 'images')
    victim = sorted((data / 'images' / 'train').iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:200])
    base = ['--data', data, '--epochs', 1, '--output-dir', tmp_path / 'run'] + SMALL
    code, out, err = call_main(train, base, capfd)
    line = assert_user_error(code, err)
    assert line.startswith('error: 1 of 56 images cannot be read: cannot read image') and victim.name in line
    assert '--skip-bad-images' in line and 'epoch 1' not in out and not (tmp_path / 'run' / 'latest.pth').exists()
    code, out, err = call_main(train, base + ['--skip-bad-images'], capfd)
    assert code == 0, err
    assert 'checked 56 images: 1 cannot be read and were left out (--skip-bad-images)' in out
    assert 'training tresnet_m' in out and 'on 39 images' in out
