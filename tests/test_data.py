"""Datasets: class order, filtering, targets, every user error, label parsing, zsl views and the demo cache."""
import json
import logging
import os

import numpy as np
import pytest
import torch
from PIL import Image

from src_files.data import (CocoDetection, MultiLabelCsv, coco_datasets, demo_coco_root, demo_nus_root,
                            load_nus_wide_zsl)
from src_files.data import demo
from src_files.data.files import load_rgb
from src_files.data.labels import parse_label_list
from src_files.errors import UserError


def save_image(path, mode='RGB'):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new(mode, (8, 8), 100).save(path, format='JPEG')


# ---------------------------------------------------------------- COCO

def write_coco(root, missing_images=()):
    """Three annotated images, one unannotated; category ids 90, 1, 5 listed out of order."""
    categories = [{'id': 90, 'name': 'toothbrush'}, {'id': 1, 'name': 'person'}, {'id': 5, 'name': 'airplane'}]
    images = [{'id': i, 'file_name': f'img{i}.jpg'} for i in (10, 11, 12, 13)]
    annotations = [{'id': 1, 'image_id': 10, 'category_id': 90, 'bbox': [0, 0, 1, 1], 'area': 1, 'iscrowd': 0},
                   {'id': 2, 'image_id': 10, 'category_id': 1, 'bbox': [0, 0, 1, 1], 'area': 1, 'iscrowd': 0},
                   {'id': 3, 'image_id': 11, 'category_id': 5, 'bbox': [0, 0, 1, 1], 'area': 1, 'iscrowd': 0},
                   {'id': 4, 'image_id': 12, 'category_id': 5, 'bbox': [0, 0, 1, 1], 'area': 1, 'iscrowd': 0},
                   {'id': 5, 'image_id': 12, 'category_id': 5, 'bbox': [0, 0, 1, 1], 'area': 1, 'iscrowd': 0}]
    ann_file = os.path.join(root, 'ann.json')
    os.makedirs(os.path.join(root, 'images'))
    with open(ann_file, 'w') as f:
        json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)
    for image in images:
        if image['file_name'] not in missing_images:
            save_image(os.path.join(root, 'images', image['file_name']), mode='L' if image['id'] == 11 else 'RGB')
    return os.path.join(root, 'images'), ann_file


def test_coco_classes_targets_and_filtering(tmp_path, capsys):
    images, ann_file = write_coco(str(tmp_path))
    dataset = CocoDetection(images, ann_file, transform=lambda im: torch.zeros(3, *im.size))
    assert capsys.readouterr().out == ''  # pycocotools' progress prints are silenced
    assert dataset.class_names == ['person', 'airplane', 'toothbrush']  # ids 1, 5, 90
    assert dataset.ids == [10, 11, 12]  # image 13 has no annotation
    targets = [dataset[i][1] for i in range(len(dataset))]
    assert all(t.dtype == torch.float32 and t.shape == (3,) for t in targets)
    assert [t.tolist() for t in targets] == [[1, 0, 1], [0, 1, 0], [0, 1, 0]]


def test_coco_images_are_rgb(tmp_path):
    images, ann_file = write_coco(str(tmp_path))
    image, _ = CocoDetection(images, ann_file)[1]  # saved as greyscale
    assert image.mode == 'RGB'


def test_images_over_pils_pixel_limit_are_named_as_such(tmp_path, monkeypatch, recwarn):
    save_image(str(tmp_path / 'a.jpg'))  # 8 x 8 = 64 pixels
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 40)  # over the limit: PIL warns; over twice of it: refuses
    assert load_rgb(str(tmp_path / 'a.jpg')).size == (8, 8)
    assert not [w for w in recwarn if issubclass(w.category, Image.DecompressionBombWarning)]
    monkeypatch.setattr(Image, 'MAX_IMAGE_PIXELS', 20)
    with pytest.raises(UserError, match="more than PIL's limit of 20 pixels .*downscale it"):
        load_rgb(str(tmp_path / 'a.jpg'))


def test_16_bit_and_float_images_are_scaled_not_clipped(tmp_path):
    """PIL's convert('RGB') clips a 16-bit PNG to almost white and a [0, 1] float TIFF to black."""
    ramp = np.linspace(0, 1, 256).reshape(16, 16)
    Image.fromarray((ramp * 65535).astype(np.uint16)).save(tmp_path / 'wide.png')
    Image.fromarray(ramp.astype(np.float32)).save(tmp_path / 'float.tiff')
    for name in ('wide.png', 'float.tiff'):
        pixels = np.asarray(load_rgb(str(tmp_path / name)), dtype=np.float64)
        assert pixels.shape == (16, 16, 3)
        np.testing.assert_allclose(pixels[..., 1], ramp * 255, atol=1, err_msg=name)


def test_coco_missing_paths(tmp_path):
    images, ann_file = write_coco(str(tmp_path))
    with pytest.raises(UserError, match='image folder not found: .*nowhere'):
        CocoDetection(str(tmp_path / 'nowhere'), ann_file)
    with pytest.raises(UserError, match='annotation file not found: .*nothing.json'):
        CocoDetection(images, str(tmp_path / 'nothing.json'))
    with pytest.raises(UserError, match='data folder not found'):
        coco_datasets(str(tmp_path / 'nowhere'), None, None)


@pytest.mark.parametrize('content', ['{not json', '[1, 2]', '{"images": []}',
                                     '{"images": [{"id": 1}], "annotations": [], "categories": []}'])
def test_coco_invalid_annotation_file(tmp_path, content):
    images, ann_file = write_coco(str(tmp_path))
    with open(ann_file, 'w') as f:
        f.write(content)
    with pytest.raises(UserError, match='not a valid COCO annotation file'):
        CocoDetection(images, ann_file)


def test_coco_without_annotated_images_is_refused(tmp_path):
    images, ann_file = write_coco(str(tmp_path))
    with open(ann_file) as f:
        dataset = json.load(f)
    with open(ann_file, 'w') as f:
        json.dump(dict(dataset, annotations=[]), f)  # like image_info_test2014.json: it would train on nothing
    with pytest.raises(UserError, match='has no annotated image'):
        CocoDetection(images, ann_file)


def test_coco_annotation_file_with_a_byte_order_mark(tmp_path):
    images, ann_file = write_coco(str(tmp_path))
    expected = CocoDetection(images, ann_file)
    with open(ann_file, encoding='utf-8') as f:
        text = f.read()
    with open(ann_file, 'w', encoding='utf-8-sig') as f:
        f.write(text)
    dataset = CocoDetection(images, ann_file)
    assert dataset.class_names == expected.class_names and dataset.paths == expected.paths


def test_coco_missing_images_named_and_counted(tmp_path):
    images, ann_file = write_coco(str(tmp_path), missing_images=('img11.jpg', 'img12.jpg', 'img13.jpg'))
    with pytest.raises(UserError, match=r'img11\.jpg \(2 of 3 images missing') as error:
        CocoDetection(images, ann_file)
    assert '\n' not in str(error.value)


def test_coco_corrupt_image_named_on_load(tmp_path):
    images, ann_file = write_coco(str(tmp_path))
    path = os.path.join(images, 'img10.jpg')
    with open(path, 'rb') as f:
        data = f.read()
    with open(path, 'wb') as f:
        f.write(data[:len(data) // 2])  # truncated JPEG
    dataset = CocoDetection(images, ann_file)
    with pytest.raises(UserError, match='cannot read image .*img10.jpg'):
        dataset[0]
    with open(path, 'wb') as f:
        f.write(b'not an image at all')
    with pytest.raises(UserError, match='cannot read image .*img10.jpg'):
        dataset[0]


# ---------------------------------------------------------------- label parsing

@pytest.mark.parametrize('text, expected', [
    ("['a', 'b c']", ['a', 'b c']), ('[a, b c]', ['a', 'b c']), ('["a", "b"]', ['a', 'b']), ('[]', []),
    ("['a, b', 'c']", ['a, b', 'c']), ("[a, 'b']", ['a', 'b']), ('', []), ('  [a]  ', ['a']),
    ("['person' 'bicycle' 'car']", ['person', 'bicycle', 'car']),  # numpy's repr: not one name 'personbicyclecar'
    ("['a' 'b'\n 'c']", ['a', 'b', 'c'])])
def test_parse_label_list_bracketed(text, expected):
    assert parse_label_list(text) == expected


def test_parse_label_list_separators():
    assert parse_label_list('a; b c;', ';|') == ['a', 'b c']
    assert parse_label_list('a|b', ';|') == ['a', 'b']
    assert parse_label_list('[a, b]', ';|') == ['a', 'b']


# ---------------------------------------------------------------- NUS-WIDE zsl

SEEN, UNSEEN = ['sky', 'cat', 'dog'], ['tree', 'car']  # all classes sorted: car cat dog sky tree
ALL = sorted(SEEN + UNSEEN)
NUS_ROWS = [  # path, labels as written in data.csv, split
    ('images/t0.jpg', '"[cat, sky]"', 'train'),
    ('images/t1.jpg', '"[\'tree\']"', 'train'),  # only unseen: not a training image
    ('images/t2.jpg', "\"['dog', 'car']\"", 'train'),
    ('images/t3.jpg', '[cat, dog]', 'train'),  # unquoted list: the csv reader splits it in two fields
    ('images/v0.jpg', '"[car, cat]"', 'val'),
    ('images/v1.jpg', '[dog]', 'val'),
    ('images/v2.jpg', '[]', 'val'),  # no label: in no val view
    ('images/v3.jpg', '"[tree, car, unknown]"', 'val'),
]


def wordvec_matrix():
    """[300, 5]; column j is filled with j, so selected columns are easy to recognise."""
    return torch.arange(len(ALL), dtype=torch.float32).repeat(300, 1)


def write_nus(root, header='image,labels,split\n', wordvecs=None, skip_images=(), index_column=False):
    """A tiny NUS-WIDE zsl folder; `index_column` writes data.csv as pandas does by default."""
    os.makedirs(root, exist_ok=True)
    with open(os.path.join(root, 'data.csv'), 'w') as f:
        f.write(header + ''.join(f'{f"{i}," if index_column else ""}{p},{labels},{split}\n'
                                 for i, (p, labels, split) in enumerate(NUS_ROWS)))
    for path, _, _ in NUS_ROWS:
        if path not in skip_images:
            save_image(os.path.join(root, path))
    with open(os.path.join(root, 'benchmark_81_v0.json'), 'w') as f:
        json.dump({'train class': SEEN, 'test class': UNSEEN}, f)
    torch.save(wordvec_matrix() if wordvecs is None else wordvecs, os.path.join(root, 'wordvec_array.pth'))
    return root


def targets(dataset):
    return {os.path.basename(p): dataset.target(i).tolist() for i, p in enumerate(dataset.paths)}


# The last header is the one pandas writes with its index column.
@pytest.mark.parametrize('header', ['image,labels,split\n', '', ',image_name,label,split_name\n'])
def test_nus_views_targets_and_wordvecs(tmp_path, header):
    root = write_nus(str(tmp_path), header, index_column=header.startswith(','))
    data = load_nus_wide_zsl(root, lambda im: 'train', lambda im: 'val')
    assert data.seen_classes == ['cat', 'dog', 'sky'] and data.unseen_classes == ['car', 'tree']
    assert data.train_set.class_names == ['cat', 'dog', 'sky']
    assert data.gzsl_val_set.class_names == ['cat', 'dog', 'sky', 'car', 'tree']
    assert targets(data.train_set) == {'t0.jpg': [1, 0, 1], 't2.jpg': [0, 1, 0], 't3.jpg': [1, 1, 0]}
    assert targets(data.zsl_val_set) == {'v0.jpg': [1, 0], 'v3.jpg': [1, 1]}
    assert targets(data.gzsl_val_set) == {'v0.jpg': [1, 0, 0, 1, 0], 'v1.jpg': [0, 1, 0, 0, 0],
                                          'v3.jpg': [0, 0, 0, 1, 1]}
    assert data.train_set[0][0] == 'train' and data.zsl_val_set[0][0] == data.gzsl_val_set[0][0] == 'val'
    column = {name: float(i) for i, name in enumerate(ALL)}
    assert data.train_wordvecs.shape == (300, 3) and data.test_wordvecs.shape == (300, 2)
    assert data.train_wordvecs[0].tolist() == [column[c] for c in data.seen_classes]
    assert data.test_wordvecs[0].tolist() == [column[c] for c in data.unseen_classes]
    assert data.gzsl_wordvecs[5].tolist() == [column[c] for c in data.seen_classes + data.unseen_classes]
    assert data.gzsl_val_set[0][1].dtype == torch.float32


@pytest.mark.parametrize('stored', [
    lambda m: m.t().contiguous(),  # [n, 300]
    lambda m: {'wordvec_array': m},  # in a dict
    lambda m: {'meta': torch.zeros(2), 'vectors': m.t().contiguous()}])
def test_nus_wordvec_layouts_accepted(tmp_path, stored):
    data = load_nus_wide_zsl(write_nus(str(tmp_path), wordvecs=stored(wordvec_matrix())), None, None)
    assert data.gzsl_wordvecs.shape == (300, 5)
    assert data.train_wordvecs[7].tolist() == [1.0, 2.0, 3.0]  # cat dog sky


@pytest.mark.parametrize('wordvecs, message', [
    (torch.zeros(299, 5), r'shape \[299, 5\]; expected \[300, 5\] or \[5, 300\]'),
    (torch.zeros(300, 6), r'shape \[300, 6\]'),
    (torch.zeros(1, 300, 5), r'shape \[1, 300, 5\]'),
    ({'a': torch.zeros(3)}, 'expected exactly one'),
    ([1, 2], 'holds a list')])
def test_nus_wordvec_wrong_shape(tmp_path, wordvecs, message):
    with pytest.raises(UserError, match=message):
        load_nus_wide_zsl(write_nus(str(tmp_path), wordvecs=wordvecs), None, None)


def test_nus_missing_and_swapped_files(tmp_path):
    with pytest.raises(UserError, match='NUS-WIDE data folder not found'):
        load_nus_wide_zsl(str(tmp_path / 'nowhere'), None, None)
    root = write_nus(str(tmp_path))
    os.rename(os.path.join(root, 'data.csv'), os.path.join(root, 'kept.csv'))
    with pytest.raises(UserError, match='data.csv.*swapped'):
        load_nus_wide_zsl(root, None, None)
    # the published README's swap: the label table downloaded as wordvec_array.pth and vice versa
    os.rename(os.path.join(root, 'wordvec_array.pth'), os.path.join(root, 'data.csv'))
    os.rename(os.path.join(root, 'kept.csv'), os.path.join(root, 'wordvec_array.pth'))
    with pytest.raises(UserError, match='is a torch file, not a CSV.*swapped'):
        load_nus_wide_zsl(root, None, None)
    os.remove(os.path.join(root, 'data.csv'))
    write_nus(str(tmp_path / 'b'))
    os.remove(str(tmp_path / 'b' / 'benchmark_81_v0.json'))
    with pytest.raises(UserError, match='benchmark file not found'):
        load_nus_wide_zsl(str(tmp_path / 'b'), None, None)


def test_nus_text_as_wordvecs_is_named(tmp_path):
    root = write_nus(str(tmp_path))
    with open(os.path.join(root, 'wordvec_array.pth'), 'w') as f:
        f.write('image,labels,split\n')
    with pytest.raises(UserError, match='cannot read word vectors.*swapped') as error:
        load_nus_wide_zsl(root, None, None)
    assert '\n' not in str(error.value)


@pytest.mark.parametrize('text', ['{"test class": ["car"]}', '[]',
                                       '{"train class": ["cat", "car"], "test class": ["car"]}'])
def test_nus_invalid_benchmark(tmp_path, text):
    root = write_nus(str(tmp_path))
    with open(os.path.join(root, 'benchmark_81_v0.json'), 'w') as f:
        f.write(text)
    with pytest.raises(UserError, match='benchmark_81_v0.json'):
        load_nus_wide_zsl(root, None, None)


def test_nus_missing_image(tmp_path):
    root = write_nus(str(tmp_path), skip_images=('images/v1.jpg', 'images/t1.jpg'))
    # t1.jpg only has an unseen label, so it is in no view and its absence does not matter
    with pytest.raises(UserError, match=r'v1\.jpg \(1 of 6 images missing'):
        load_nus_wide_zsl(root, None, None)


def test_nus_bad_rows(tmp_path):
    root = write_nus(str(tmp_path))
    with open(os.path.join(root, 'data.csv'), 'a') as f:
        f.write('images/x.jpg,train\n')
    with pytest.raises(UserError, match='data.csv line 10: expected image path, label list, split'):
        load_nus_wide_zsl(root, None, None)


@pytest.mark.parametrize('header', ['image,labels,split\n', ''])
def test_nus_unknown_split_is_named_not_dropped(tmp_path, header):
    root = write_nus(str(tmp_path), header)
    path = os.path.join(root, 'data.csv')
    with open(path) as f:
        text = f.read()
    with open(path, 'w') as f:
        f.write(text.replace('images/t2.jpg,"[\'dog\', \'car\']",train', 'images/t2.jpg,"[\'dog\', \'car\']",test'))
    line = 3 + bool(header)
    with pytest.raises(UserError, match=f"data.csv line {line}: split 'test' is not one of train, val"):
        load_nus_wide_zsl(root, None, None)


def test_nus_data_csv_with_a_byte_order_mark(tmp_path):
    """pandas' to_csv(encoding='utf-8-sig') and Excel's "CSV UTF-8": a BOM before the index column's empty name."""
    root = write_nus(str(tmp_path), ',image,labels,split\n', index_column=True)
    expected = targets(load_nus_wide_zsl(root, None, None).train_set)
    path = os.path.join(root, 'data.csv')
    with open(path, encoding='utf-8') as f:
        text = f.read()
    with open(path, 'w', encoding='utf-8-sig') as f:
        f.write(text)
    assert targets(load_nus_wide_zsl(root, None, None).train_set) == expected


# ---------------------------------------------------------------- CSV list

def write_csv(root, lines):
    for name in ('a.jpg', 'b.jpg', 'sub/c.jpg'):
        save_image(os.path.join(root, name))
    path = os.path.join(root, 'labels.csv')
    with open(path, 'w') as f:
        f.write('\n'.join(lines) + '\n')
    return path


def test_csv_formats_and_default_classes(tmp_path):
    path = write_csv(str(tmp_path), ['image,labels', 'a.jpg,dog;cat', 'b.jpg,bird|cat', 'sub/c.jpg,"[\'dog\']"'])
    dataset = MultiLabelCsv(path)
    assert dataset.class_names == ['bird', 'cat', 'dog']
    assert [dataset[i][1].tolist() for i in range(3)] == [[0, 1, 1], [1, 1, 0], [0, 0, 1]]


def test_csv_without_header_explicit_classes_and_root(tmp_path):
    path = write_csv(str(tmp_path / 'imgs'), ['a.jpg,[dog, cat]', 'b.jpg,'])
    os.rename(path, str(tmp_path / 'list.csv'))
    dataset = MultiLabelCsv(str(tmp_path / 'list.csv'), root=str(tmp_path / 'imgs'), class_names=['cat', 'dog', 'x'])
    assert [dataset.target(i).tolist() for i in range(2)] == [[1, 1, 0], [0, 0, 0]]


def test_csv_errors(tmp_path):
    with pytest.raises(UserError, match='label CSV not found'):
        MultiLabelCsv(str(tmp_path / 'none.csv'))
    path = write_csv(str(tmp_path), ['a.jpg,dog', 'missing.jpg,cat'])
    with pytest.raises(UserError, match=r'missing\.jpg \(1 of 2 images missing'):
        MultiLabelCsv(path)
    with pytest.raises(UserError, match="line 2: label 'cat' is not one of the given class names"):
        MultiLabelCsv(path, class_names=['dog'])
    with pytest.raises(UserError, match='image folder not found'):
        MultiLabelCsv(path, root=str(tmp_path / 'nowhere'))
    path = write_csv(str(tmp_path), ['a.jpg,dog,cat'])  # without a header: a third field is no label
    with pytest.raises(UserError, match='line 1: 3 fields'):
        MultiLabelCsv(path)
    path = write_csv(str(tmp_path), ['image,labels', 'a.jpg,"dog,cat"'])  # (commas in a quoted cell: separators)
    dataset = MultiLabelCsv(path)
    assert dataset.class_names == ['cat', 'dog'] and dataset.layout == "tags separated by ',' (quoted cells)"


def test_csv_extra_columns_bom_and_pandas_index(tmp_path):
    """A spreadsheet's extra column (padded with empty fields on other rows) is ignored under a header, a BOM
    and a pandas index column are dropped, and a numpy-printed list cell gives its names."""
    lines = [',image,labels,note', '0,a.jpg,dog;cat,', '1,b.jpg,"[\'bird\' \'cat\']",blurry', '2,sub/c.jpg,[dog, cat],']
    path = write_csv(str(tmp_path), lines)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    with open(path, 'w', encoding='utf-8-sig') as f:
        f.write(text)
    dataset = MultiLabelCsv(path)
    assert dataset.class_names == ['bird', 'cat', 'dog']
    assert [dataset.target(i).tolist() for i in range(3)] == [[0, 1, 1], [1, 1, 0], [0, 1, 1]]


def test_csv_one_label_per_row_merges_an_images_rows(tmp_path):
    path = write_csv(str(tmp_path), ['image,label', 'a.jpg,dog', 'b.jpg,cat', 'a.jpg,cat'])
    dataset = MultiLabelCsv(path)
    assert [os.path.basename(p) for p in dataset.paths] == ['a.jpg', 'b.jpg']
    assert [dataset.target(i).tolist() for i in range(2)] == [[1, 1], [1, 0]]


# ---------------------------------------------------------------- demo

def test_demo_coco_builds_once_and_loads(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger='src_files')
    root = demo_coco_root(str(tmp_path), num_train=24, num_val=8)
    assert 'building demo dataset in' in caplog.text
    caplog.clear()
    marker = os.path.join(root, demo._MARKER)
    mtime = os.stat(marker).st_mtime_ns
    assert demo_coco_root(str(tmp_path), num_train=24, num_val=8) == root
    assert caplog.text == '' and os.stat(marker).st_mtime_ns == mtime
    assert sorted(os.listdir(tmp_path)) == ['coco_24_8']  # no temporary folder left
    train, val = coco_datasets(root, None, None)
    assert train.class_names == demo.CLASS_NAMES and len(train.class_names) == 16
    assert 20 <= len(train) <= 24 and 6 <= len(val) <= 8
    with Image.open(train.paths[0]) as image:
        assert image.format == 'JPEG' and image.size == (96, 96)
    image, target = train[0]
    assert image.mode == 'RGB' and 1 <= target.sum() <= 3


def test_demo_is_deterministic_and_uses_env_dir(tmp_path, monkeypatch):
    monkeypatch.setenv('ML_DECODER_DEMO_DIR', str(tmp_path / 'env'))
    first = demo_coco_root(num_train=6, num_val=2)
    assert first.startswith(str(tmp_path / 'env'))
    second = demo_coco_root(str(tmp_path / 'other'), num_train=6, num_val=2)
    for rel in ('annotations/instances_train2014.json', 'val2014/COCO_val2014_000000000008.jpg'):
        with open(os.path.join(first, rel), 'rb') as a, open(os.path.join(second, rel), 'rb') as b:
            assert a.read() == b.read()


def test_demo_interrupted_build_leaves_no_cache(tmp_path, monkeypatch):
    def fail(folder, num_train, num_val):
        open(os.path.join(folder, 'half'), 'w').close()
        raise KeyboardInterrupt
    monkeypatch.setattr(demo, '_write_coco', fail)
    with pytest.raises(KeyboardInterrupt):
        demo.demo_coco_root(str(tmp_path), num_train=4, num_val=2)
    assert os.listdir(tmp_path) == []


def test_demo_stale_version_is_rebuilt(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.INFO, logger='src_files')
    root = demo_coco_root(str(tmp_path), num_train=4, num_val=2)
    monkeypatch.setattr(demo, 'DEMO_VERSION', demo.DEMO_VERSION + 1)
    assert demo_coco_root(str(tmp_path), num_train=4, num_val=2) == root
    assert caplog.text.count('building') == 2
    with open(os.path.join(root, demo._MARKER)) as f:
        assert str(demo.DEMO_VERSION) in f.read()


def test_demo_nus_zero_shot_folder(tmp_path):
    root = demo_nus_root(str(tmp_path), num_train=30, num_val=20)
    data = load_nus_wide_zsl(root, None, None)
    assert len(data.seen_classes) == 12 and len(data.unseen_classes) == 4
    for part in (0, 1):  # every colour and every shape appears among the seen classes
        assert {c.split(' ')[part] for c in data.seen_classes} == {c.split(' ')[part] for c in demo.CLASS_NAMES}
    assert data.train_wordvecs.shape == (300, 12) and data.gzsl_wordvecs.shape == (300, 16)
    assert torch.allclose(data.gzsl_wordvecs.norm(dim=0), torch.ones(16))
    assert data.gzsl_val_set.target(0).shape == (16,) and data.zsl_val_set.target(0).shape == (4,)
    assert len(data.zsl_val_set) > 0 and len(data.train_set) > 0
    # word vectors compose: red circle - red square ~ blue circle - blue square (same shape difference)
    w = dict(zip(data.seen_classes + data.unseen_classes, data.gzsl_wordvecs.t()))
    cos = torch.nn.functional.cosine_similarity
    assert cos(w['red circle'] - w['red square'], w['blue circle'] - w['blue square'], dim=0) > 0.9


def test_digits_set_is_a_coco_folder_of_unseen_handwriting(tmp_path):
    from src_files.data import digits
    root = digits.digits_coco_root(str(tmp_path), num_train=20, num_val=8)
    train, val = coco_datasets(root, None, None)
    assert train.class_names == [str(d) for d in range(10)] and len(train) == 20 and len(val) == 8
    image, target = train[0]
    assert image.size == (64, 64) and image.mode == 'RGB' and 1 <= target.sum() <= 3
    train_scans, _ = digits._scans('train')
    val_scans, _ = digits._scans('val')
    assert len(train_scans) + len(val_scans) == 1797
    flat = {s.tobytes() for s in train_scans}
    assert not any(s.tobytes() in flat for s in val_scans)
