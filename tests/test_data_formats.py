"""Folder layouts behind load_datasets: COCO 2014/2017, VOC, CSV, Open Images; partial-label targets, detection,
every user error, and export_layout round trips."""
import json
import os

import numpy as np
import pytest
from PIL import Image

from src_files.data import (LAYOUTS, UNKNOWN, ImageList, IndexLists, demo_layout_root, detect_format,
                            export_layout, load_datasets)
from src_files.data import layouts
from src_files.data.coco import coco_datasets
from src_files.data.openimages import openimages_datasets
from src_files.errors import UserError


def save_image(path, fmt='JPEG', value=100):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.new('RGB', (8, 8), (value, 50, 50)).save(path, format=fmt)


def write_lines(path, lines):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w', encoding='utf-8') as f:
        f.write(''.join(line + '\n' for line in lines))


def targets(dataset):
    return [dataset.target(i).tolist() for i in range(len(dataset))]


# ---------------------------------------------------------------- ImageList

def test_image_list_partial_labels():
    data = ImageList(['a', 'b', 'c'], [[2], [], [0]], ['x', 'y', 'z'], unknown_ids=[[0], [], []])
    assert targets(data) == [[UNKNOWN, 0, 1], [0, 0, 0], [1, 0, 0]] and data.unlabelled == 1
    assert data.image_ids == ['a', 'b', 'c'] and data.dropped_unlabelled == 0
    data = ImageList(['a', 'b'], [[1], []], ['x', 'y', 'z'], negative_ids=[[0], [2]], image_ids=['i', 'j'])
    assert targets(data) == [[0, 1, -1], [-1, -1, 0]] and data.image_ids == ['i', 'j']
    assert data.target(0).dtype.is_floating_point and data.target(0).shape == (3,)
    lists = IndexLists.from_lists([[3, 1], [], [2]])
    assert len(lists) == 3 and lists[0].tolist() == [3, 1] and lists[1].size == 0 and lists[-1].tolist() == [2]
    assert lists.indices.dtype == np.int32 and lists.counts().tolist() == [2, 0, 1]


# ---------------------------------------------------------------- VOC

def voc_xml(filename, objects):
    parts = ''.join(f'<object><name>{name}</name><difficult>{int(hard)}</difficult><bndbox><xmin>1</xmin>'
                    f'<ymin>1</ymin><xmax>4</xmax><ymax>4</ymax></bndbox></object>' for name, hard in objects)
    return f'<annotation><filename>{filename}</filename>{parts}</annotation>'


def write_voc(root, splits, png=()):
    """splits: {split name: {image id: [(object name, difficult)]}}; ids in `png` have only a .png image."""
    for split, images in splits.items():
        write_lines(os.path.join(root, 'ImageSets', 'Main', f'{split}.txt'), list(images))
        for image_id, objects in images.items():
            name = f'{image_id}.png' if image_id in png else f'{image_id}.jpg'
            write_lines(os.path.join(root, 'Annotations', f'{image_id}.xml'), [voc_xml(name, objects)])
            save_image(os.path.join(root, 'JPEGImages', name), 'PNG' if image_id in png else 'JPEG')
    return root


VOC = {'trainval': {'a': [('dog', 0), ('dog', 1), ('cat', 1)], 'b': [], 'c': [('person', 0), ('cat', 0)]},
       'test': {'d': [('person', 1), ('person', 1), ('dog', 0)], 'e': [('cat', 1), ('cat', 0)]}}


def test_voc_targets_difficult_as_unknown_and_image_ids(tmp_path):
    root = write_voc(str(tmp_path), VOC, png=('e',))
    assert detect_format(root) == 'voc'
    splits = load_datasets(root)
    assert splits.format == 'voc' and splits.class_names == ['cat', 'dog', 'person'] == splits.display_names
    # a: dog has one object that is not difficult -> positive; cat only difficult -> unknown; b: no object
    assert targets(splits.train) == [[-1, 1, 0], [0, 0, 0], [1, 0, 1]]
    assert targets(splits.val) == [[0, 1, -1], [1, 0, 0]]
    assert splits.train.unlabelled == 1 and splits.train.dropped_unlabelled == 0
    assert splits.val.image_ids == ['JPEGImages/d.jpg', 'JPEGImages/e.png']  # e: the XML's <filename>
    assert splits.val[1][0].size == (8, 8)
    val_only = load_datasets(root, 'voc', need_train=False)
    assert val_only.train is None and val_only.class_names == splits.class_names
    assert targets(val_only.val) == targets(splits.val)


def test_voc_splits_default_and_chosen(tmp_path):
    root = write_voc(str(tmp_path), {'train': {'a': [('dog', 0)]}, 'val': {'b': [('dog', 0)]},
                                     'trainval': {'a': [('dog', 0)], 'b': [('dog', 0)], 'c': [('cat', 0)]}})
    splits = load_datasets(root)  # no test.txt (VOC2012): train on train, not on trainval, which holds val
    assert splits.train.image_ids == ['JPEGImages/a.jpg'] and splits.class_names == ['dog']
    splits = load_datasets(root, train_split='trainval', val_split='train')
    assert len(splits.train) == 3 and splits.class_names == ['cat', 'dog'] and len(splits.val) == 1
    with pytest.raises(UserError, match=r'VOC split file not found: .*ImageSets.Main.nope\.txt'):
        load_datasets(root, val_split='nope')


def test_voc_errors(tmp_path):
    root = write_voc(str(tmp_path / 'bad_xml'), VOC)
    write_lines(os.path.join(root, 'Annotations', 'c.xml'), ['<annotation>', '<object><name>cat</name>'])
    with pytest.raises(UserError, match=r'cannot parse VOC annotation .*c\.xml \(line 3') as error:
        load_datasets(root)
    assert '\n' not in str(error.value)
    root = write_voc(str(tmp_path / 'no_image'), VOC)
    os.remove(os.path.join(root, 'JPEGImages', 'd.jpg'))
    os.remove(os.path.join(root, 'JPEGImages', 'e.jpg'))
    with pytest.raises(UserError, match=r"test\.txt: image id 'd' has no image in .*JPEGImages.*\(2 of 2 ids missing"):
        load_datasets(root)
    root = write_voc(str(tmp_path / 'no_xml'), VOC)
    os.remove(os.path.join(root, 'Annotations', 'b.xml'))
    with pytest.raises(UserError, match=r"trainval\.txt: image id 'b' has no annotation file .*\(1 of 3 ids"):
        load_datasets(root, need_train=False)  # the training XMLs are still read, for the class list
    root = write_voc(str(tmp_path / 'new_class'), {**VOC, 'test': {'d': [('horse', 0)]}})
    with pytest.raises(UserError, match=r"d\.xml: object 'horse' is not one of the 3 classes of the training"):
        load_datasets(root)


# ---------------------------------------------------------------- Open Images

def write_openimages(root, train_rows, val_rows, header=True, prefix='oidv6-', trainable=None, missing=()):
    os.makedirs(root, exist_ok=True)
    lines = ['LabelName,DisplayName'] if header else []
    write_lines(os.path.join(root, f'{prefix}class-descriptions.csv'),
                lines + ['/m/cat,Cat', '/m/dog,"Dog, domestic"', '/m/car,Car', '/m/tree,Tree'])
    if trainable is not None:
        write_lines(os.path.join(root, 'classes-trainable.txt'), trainable)
    for split, rows, name in (('train', train_rows, f'{prefix}train'), ('validation', val_rows, 'validation')):
        write_lines(os.path.join(root, f'{name}-annotations-human-imagelabels.csv'),
                    ['ImageID,Source,LabelName,Confidence'] + [f'{i},verification,{label},{c}' for i, label, c in rows])
        for image_id in dict.fromkeys(i for i, _, _ in rows):
            if image_id not in missing:
                save_image(os.path.join(root, split, f'{image_id}.jpg'))
    return root


OI_TRAIN = [('ff01', '/m/dog', 1), ('ff01', '/m/cat', 0), ('aa02', '/m/car', 1), ('ff01', '/m/tree', 1),
            ('aa02', '/m/dog', 0), ('aa02', '/m/dog', 1), ('bb03', '/m/cat', 0)]
OI_VAL = [('v2', '/m/cat', 1), ('v1', '/m/car', 0), ('v1', '/m/tree', 1), ('v3', '/m/tree', 0)]


@pytest.mark.parametrize('header,prefix', [(True, 'oidv6-'), (False, '')])
def test_openimages_targets_ids_and_classes(tmp_path, header, prefix):
    root = write_openimages(str(tmp_path), OI_TRAIN, OI_VAL, header, prefix)
    assert detect_format(root) == 'openimages'
    splits = load_datasets(root)
    assert splits.class_names == ['/m/car', '/m/cat', '/m/dog', '/m/tree']  # sorted labels of the training file
    assert splits.display_names == ['Car', 'Cat', 'Dog, domestic', 'Tree']
    assert splits.train.image_ids == ['ff01', 'aa02', 'bb03']  # first appearance
    # 1 positive, 0 verified negative, -1 not listed; aa02 lists dog as 0 and 1: positive
    assert targets(splits.train) == [[-1, 0, 1, 1], [1, -1, 1, -1], [-1, 0, -1, -1]]
    assert splits.val.image_ids == ['v2', 'v1', 'v3']
    assert targets(splits.val) == [[-1, 1, -1, -1], [0, -1, -1, 1], [-1, -1, -1, 0]]
    assert splits.train.paths[0] == os.path.join(root, 'train', 'ff01.jpg') and splits.val[2][0].size == (8, 8)
    assert splits.train.unlabelled == 1
    val_only = load_datasets(root, 'openimages', need_train=False)
    assert val_only.train is None and val_only.class_names == splits.class_names
    assert targets(val_only.val) == targets(splits.val)


def test_openimages_trainable_classes_and_skipping_image_checks(tmp_path):
    root = write_openimages(str(tmp_path), OI_TRAIN, OI_VAL, trainable=['/m/tree', '/m/cat'], missing=('v1',))
    with pytest.raises(UserError, match=r'image file not found: .*v1\.jpg \(1 of 3 images missing'):
        load_datasets(root)
    train, val, classes, display = openimages_datasets(root, check_images=False)
    assert classes == ['/m/tree', '/m/cat'] and display == ['Tree', 'Cat']
    # rows of other classes are ignored; aa02 has none left and is left out
    assert train.image_ids == ['ff01', 'bb03'] and targets(train) == [[1, 0], [-1, 0]]
    assert targets(val) == [[-1, 1], [1, -1], [0, -1]]


def test_openimages_errors(tmp_path):
    root = write_openimages(str(tmp_path / 'a'), OI_TRAIN, OI_VAL + [('v4', '/m/horse', 1)])
    with pytest.raises(UserError, match=r"validation-annotations-human-imagelabels\.csv line 6: LabelName "
                                        r"'/m/horse' is not in the class-descriptions file"):
        load_datasets(root)
    root = write_openimages(str(tmp_path / 'b'), OI_TRAIN + [('x', '/m/cat', 0.5)], OI_VAL)
    with pytest.raises(UserError, match=r'train-annotations-human-imagelabels\.csv line 9: .*Confidence of 0 or 1'):
        load_datasets(root)
    with pytest.raises(UserError, match='--val-split val2: the flag is for VOC, CSV and YOLO data'):
        load_datasets(str(tmp_path / 'a'), val_split='val2')


# ---------------------------------------------------------------- CSV

def write_csv_dir(root, train_lines, val_lines):
    for name in ('a.jpg', 'b.jpg', 'sub/c.jpg', 'd.jpg'):
        save_image(os.path.join(root, *name.split('/')))
    write_lines(os.path.join(root, 'train.csv'), ['image,labels'] + train_lines)
    write_lines(os.path.join(root, 'val.csv'), ['image,labels'] + val_lines)
    return root


def test_csv_val_mapped_onto_train_classes_and_a_class_not_in_train(tmp_path):
    root = write_csv_dir(str(tmp_path), ['a.jpg,dog;cat', 'b.jpg,', 'sub/c.jpg,bird'], ['d.jpg,dog', 'sub/c.jpg,'])
    assert detect_format(root) == 'csv'
    splits = load_datasets(root)
    assert splits.class_names == ['bird', 'cat', 'dog'] == splits.display_names
    assert targets(splits.train) == [[0, 1, 1], [0, 0, 0], [1, 0, 0]] and splits.train.unlabelled == 1
    assert targets(splits.val) == [[0, 0, 1], [0, 0, 0]]
    assert splits.train.image_ids == ['a.jpg', 'b.jpg', 'sub/c.jpg']
    assert load_datasets(root, need_train=False).class_names == splits.class_names
    with pytest.raises(UserError, match='--train-split x: train.csv and val.csv are the splits'):
        load_datasets(root, train_split='x')
    write_lines(os.path.join(root, 'val.csv'), ['image,labels', 'd.jpg,dog', 'b.jpg,dog;horse'])
    with pytest.raises(UserError, match=r"val\.csv line 3: label 'horse' is not one of the classes of the training "
                                        r"list .*train\.csv; correct or remove the label, or add an image"):
        load_datasets(root)


# ---------------------------------------------------------------- COCO

def write_coco(root, year, categories, missing=()):
    """Two annotated images and an unannotated one per split."""
    cats = [{'id': i + 1, 'name': name} for i, name in enumerate(categories)]
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    for offset, split in enumerate(('train', 'val')):
        ids = [10 * offset + k for k in (1, 2, 3)]
        images = [{'id': i, 'file_name': f'{split}_{i}.jpg'} for i in ids]
        anns = [{'id': 1, 'image_id': ids[0], 'category_id': 2, 'bbox': [0, 0, 2, 2]},
                {'id': 2, 'image_id': ids[1], 'category_id': 1, 'bbox': [0, 0, 2, 2]},
                {'id': 3, 'image_id': ids[1], 'category_id': 2, 'bbox': [1, 1, 2, 2]}]
        with open(os.path.join(root, 'annotations', f'instances_{split}{year}.json'), 'w') as f:
            json.dump({'images': images, 'annotations': anns, 'categories': cats}, f)
        for image in images:
            save_image(os.path.join(root, f'{split}{year}', image['file_name']))
    return root


def test_coco_2017_layout_and_2014_wins_when_both(tmp_path):
    root = write_coco(str(tmp_path), '2017', ['cat', 'dog'])
    assert detect_format(root) == 'coco'
    splits = load_datasets(root)
    assert splits.format == 'coco' and splits.class_names == ['cat', 'dog']
    assert targets(splits.val) == [[0, 1], [1, 1]]
    assert splits.val.image_ids == ['val2017/val_11.jpg', 'val2017/val_12.jpg']
    assert splits.train.dropped_unlabelled == 1 and splits.train.unlabelled == 0
    assert load_datasets(root, need_train=False).class_names == ['cat', 'dog']
    with open(os.path.join(root, 'annotations', 'instances_train2017.json')) as f:
        train = json.load(f)
    train['categories'][0]['name'] = 'categories'  # (the key's name as a value does not mislead the quick read)
    with open(os.path.join(root, 'annotations', 'instances_train2017.json'), 'w') as f:
        json.dump(dict(categories=train.pop('categories'), **train), f)  # written first: the file is parsed
    with pytest.raises(UserError, match=r'instances_train2017\.json and the val annotation file list different'):
        load_datasets(root, need_train=False)
    write_coco(root, '2014', ['person', 'car'])
    assert load_datasets(root).class_names == ['person', 'car'] == coco_datasets(root, None, None)[0].class_names
    with pytest.raises(UserError, match='--val-split test: the flag is for VOC, CSV and YOLO data'):
        load_datasets(root, val_split='test')


# ---------------------------------------------------------------- detection

def test_detect_format_errors(tmp_path):
    with pytest.raises(UserError, match='data folder not found'):
        detect_format(str(tmp_path / 'nowhere'))
    os.makedirs(tmp_path / 'photos')
    with pytest.raises(UserError) as error:
        detect_format(str(tmp_path))
    message = str(error.value)
    assert '\n' not in message and 'coco: annotations/instances_{train,val}2014.json' in message
    for looked_for in ('voc: Annotations/ and JPEGImages/ (and ImageSets/Main/)', 'csv: train.csv and val.csv',
                       'yolo: data.yaml, or classes.txt with images/ and labels/',
                       'openimages: class-descriptions.csv and *-human-imagelabels.csv'):
        assert looked_for in message
    write_voc(str(tmp_path / 'VOCdevkit' / 'VOC2007'), VOC)
    with pytest.raises(UserError, match=r'VOC2007 holds the voc layout: pass that folder\?'):
        detect_format(str(tmp_path / 'VOCdevkit'))
    with pytest.raises(UserError, match="unknown data format 'darknet'"):
        load_datasets(str(tmp_path), 'darknet')


@pytest.mark.parametrize('present, layout', [(['annotations/'], 'coco'), (['train2014/', 'val2014/'], 'coco'),
                                             (['Annotations/'], 'voc'), (['train.csv'], 'csv'),
                                             (['oidv6-train-annotations-human-imagelabels.csv'], 'openimages')])
def test_a_layout_with_a_missing_file_is_still_recognised(tmp_path, present, layout):
    """So that its reader names the missing file instead of a generic 'cannot tell the layout'."""
    for name in present:
        path = tmp_path / name.rstrip('/')
        path.mkdir() if name.endswith('/') else path.write_text('')
    assert detect_format(str(tmp_path)) == layout


# ---------------------------------------------------------------- export_layout round trips

def write_source_coco(root):
    """A COCO-2014 folder with 3 classes (all in train), one PNG image and two objects of a class in one image."""
    cats = [{'id': 7, 'name': 'sun'}, {'id': 2, 'name': 'moon'}, {'id': 4, 'name': 'star'}]
    os.makedirs(os.path.join(root, 'annotations'))
    objects = {'train': [[2, 4], [7], [4, 4, 2], [], [7, 2, 4]], 'val': [[4], [7, 7], [2, 7]]}
    ann_id = image_id = 0
    for split, per_image in objects.items():
        images, anns = [], []
        for cat_ids in per_image:
            image_id += 1
            name = f'{split}_{image_id}.png' if image_id == 2 else f'{split}_{image_id}.jpg'
            save_image(os.path.join(root, f'{split}2014', name), 'PNG' if name.endswith('png') else 'JPEG', image_id)
            images.append({'id': image_id, 'file_name': name, 'width': 8, 'height': 8})
            for k, cat_id in enumerate(cat_ids):
                ann_id += 1
                anns.append({'id': ann_id, 'image_id': image_id, 'category_id': cat_id, 'bbox': [k, k, 3, 3]})
        with open(os.path.join(root, 'annotations', f'instances_{split}2014.json'), 'w') as f:
            json.dump({'images': images, 'annotations': anns, 'categories': cats}, f)
    return root


def named(dataset, value):
    return [{dataset.class_names[c] for c in np.flatnonzero(dataset.target(i).numpy() == value)}
            for i in range(len(dataset))]


@pytest.mark.parametrize('fmt', LAYOUTS)
def test_export_layout_round_trip(tmp_path, monkeypatch, fmt):
    monkeypatch.setattr(layouts, 'VOC_DIFFICULT', 0.5)
    source = load_datasets(write_source_coco(str(tmp_path / 'coco')))
    out = export_layout(str(tmp_path / 'coco'), str(tmp_path / fmt), fmt, seed=1)
    splits = load_datasets(out)
    assert splits.format == ('coco' if fmt == 'coco2017' else fmt)
    assert sorted(splits.display_names) == sorted(source.class_names)
    display = dict(zip(splits.class_names, splits.display_names))
    any_unknown = False
    for before, after in ((source.train, splits.train), (source.val, splits.val)):
        positives = [{display[c] for c in names} for names in named(after, 1)]
        unknown = [{display[c] for c in names} for names in named(after, UNKNOWN)]
        any_unknown |= any(unknown)
        assert len(after) == len(before)
        if fmt == 'voc':  # difficult objects only turn positives into unknowns
            assert [p | u for p, u in zip(positives, unknown)] == named(before, 1)
            assert all(not p & u for p, u in zip(positives, unknown))
        else:
            assert positives == named(before, 1)
        for a, b in zip(before.paths, after.paths):  # the same images (re-encoded as JPEG for Open Images)
            with Image.open(a) as image_a, Image.open(b) as image_b:
                assert np.abs(np.asarray(image_a, float) - np.asarray(image_b.convert('RGB'), float)).max() < 8
    assert any_unknown == (fmt in ('voc', 'openimages'))
    if fmt == 'voc':
        assert splits.class_names == ['moon', 'star', 'sun']
    with pytest.raises(UserError, match='not empty'):
        export_layout(str(tmp_path / 'coco'), out, fmt)


def test_demo_layout_root_is_cached(tmp_path):
    root = demo_layout_root('voc', cache_dir=str(tmp_path), num_train=40, num_val=4)
    mtime = os.stat(os.path.join(root, 'ImageSets', 'Main', 'test.txt')).st_mtime_ns
    assert demo_layout_root('voc', cache_dir=str(tmp_path), num_train=40, num_val=4) == root
    assert os.stat(os.path.join(root, 'ImageSets', 'Main', 'test.txt')).st_mtime_ns == mtime
    splits = load_datasets(root, 'voc')
    assert len(splits.class_names) == 16 and len(splits.train) == 40 and len(splits.val) == 4
    assert sorted(os.listdir(tmp_path)) == ['coco_40_4', 'voc_layout1_40_4']
