"""Write a COCO-2014 folder (the demo, the handwritten digits, ...) in another layout: VOC, CSV, Open Images or
COCO 2017, so every reader of formats.py can be run and tested on real folders without downloads.

Only the images the COCO reader keeps (those with annotations) are written. Images are hard-linked where the
file system allows it, else copied (Open Images wants .jpg files: other images are re-encoded).
"""
import csv
import os
import shutil
import xml.etree.ElementTree as ET

import numpy as np
from PIL import Image

from src_files.data import coco
from src_files.data.demo import cached_build, demo_coco_root
from src_files.errors import UserError

LAYOUTS = ('voc', 'csv', 'openimages', 'coco2017')
LAYOUT_VERSION = 1  # (bump when an exporter changes what it writes: cached demo layouts are rebuilt)
VOC_DIFFICULT = 0.1  # share of VOC objects marked difficult
OPENIMAGES_NEGATIVES = 0.5  # share of an image's negatives written as verified (Confidence 0)


def _link(src, dst):
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy(src, dst)


def _source(coco_root):
    """(class names, {split: [record]}) of a COCO-2014 folder; a record: path, name, id, size, objects."""
    splits = {}
    for split in ('train', 'val'):
        data = coco.coco_split(coco_root, split, year='2014')
        records = []
        for image_id, path in zip(data.ids, data.paths):
            info = data.coco.imgs[image_id]
            objects = [(data.coco.cats[a['category_id']]['name'], a.get('bbox') or [0, 0, 1, 1])
                       for a in data.coco.imgToAnns[image_id]]
            records.append(dict(path=path, name=os.path.basename(path), id=image_id, objects=objects,
                                size=(info['width'], info['height']) if 'width' in info else None))
        splits[split] = records
        class_names = data.class_names  # (the reader's class order; the val file lists the same categories)
    return class_names, splits


def _voc_xml(record, difficult):
    root = ET.Element('annotation')
    ET.SubElement(root, 'folder').text = 'VOC2007'
    ET.SubElement(root, 'filename').text = record['name']
    if record['size'] is None:
        with Image.open(record['path']) as image:
            record['size'] = image.size
    size = ET.SubElement(root, 'size')
    for tag, value in zip(('width', 'height', 'depth'), (*record['size'], 3)):
        ET.SubElement(size, tag).text = str(value)
    for (name, (x, y, w, h)), hard in zip(record['objects'], difficult):
        obj = ET.SubElement(root, 'object')
        for tag, value in (('name', name), ('pose', 'Unspecified'), ('truncated', 0), ('difficult', int(hard))):
            ET.SubElement(obj, tag).text = str(value)
        box = ET.SubElement(obj, 'bndbox')  # VOC boxes: 1-based, inclusive corners
        for tag, value in zip(('xmin', 'ymin', 'xmax', 'ymax'), (x + 1, y + 1, x + w, y + h)):
            ET.SubElement(box, tag).text = str(int(round(value)))
    return ET.ElementTree(root)


def _write_voc(out_dir, class_names, splits, rng):
    """VOC2007-like: train -> trainval, val -> test; about VOC_DIFFICULT of the objects difficult."""
    os.makedirs(os.path.join(out_dir, 'ImageSets', 'Main'))
    os.makedirs(os.path.join(out_dir, 'Annotations'))
    for split, list_name in (('train', 'trainval'), ('val', 'test')):
        ids = []
        for record in splits[split]:
            stem = os.path.splitext(record['name'])[0]
            difficult = rng.rand(len(record['objects'])) < VOC_DIFFICULT
            _voc_xml(record, difficult).write(os.path.join(out_dir, 'Annotations', f'{stem}.xml'), encoding='utf-8')
            _link(record['path'], os.path.join(out_dir, 'JPEGImages', record['name']))
            ids.append(stem)
        with open(os.path.join(out_dir, 'ImageSets', 'Main', f'{list_name}.txt'), 'w') as f:
            f.write(''.join(f'{i}\n' for i in ids))


def _write_csv(out_dir, class_names, splits, rng):
    """train.csv and val.csv (`image,labels`, labels joined by ';'), images under images/<split>/."""
    bad = [name for name in class_names if set(name) & set(',;|')]
    if bad:
        raise UserError(f"class name '{bad[0]}' holds one of , ; | and cannot be written to a label CSV")
    for split in ('train', 'val'):
        with open(os.path.join(out_dir, f'{split}.csv'), 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(['image', 'labels'])
            for record in splits[split]:
                rel = f"images/{split}/{record['name']}"
                _link(record['path'], os.path.join(out_dir, *rel.split('/')))
                writer.writerow([rel, ';'.join(sorted({name for name, _ in record['objects']}))])


def _openimages_image(src, dst):
    if os.path.splitext(src)[1].lower() in ('.jpg', '.jpeg'):
        _link(src, dst)
    else:
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        with Image.open(src) as image:
            image.convert('RGB').save(dst, format='JPEG', quality=95)


def _write_openimages(out_dir, class_names, splits, rng):
    """V6-style files (oidv6- prefix on some, as published) with MIDs /m/demo00..; ImageID: the COCO id in hex."""
    mids = [f'/m/demo{i:02d}' for i in range(len(class_names))]
    with open(os.path.join(out_dir, 'oidv6-class-descriptions.csv'), 'w', newline='', encoding='utf-8') as f:
        csv.writer(f).writerows(zip(mids, class_names))  # no header, like the published file
    with open(os.path.join(out_dir, 'oidv6-classes-trainable.txt'), 'w') as f:
        f.write(''.join(f'{mid}\n' for mid in mids))
    mid_of = dict(zip(class_names, mids))
    for split, name in (('train', 'oidv6-train'), ('validation', 'validation')):
        path = os.path.join(out_dir, f'{name}-annotations-human-imagelabels.csv')
        with open(path, 'w', newline='', encoding='utf-8') as f:
            writer = csv.writer(f)
            writer.writerow(['ImageID', 'Source', 'LabelName', 'Confidence'])
            for record in splits['train' if split == 'train' else 'val']:
                image_id = f"{record['id']:016x}"
                positive = sorted({mid_of[name] for name, _ in record['objects']})
                negative = [mid for mid in mids if mid not in positive]
                negative = [mid for mid, keep in zip(negative, rng.rand(len(negative)) < OPENIMAGES_NEGATIVES) if keep]
                writer.writerows([image_id, 'verification', mid, 1] for mid in positive)
                writer.writerows([image_id, 'verification', mid, 0] for mid in negative)
                _openimages_image(record['path'], os.path.join(out_dir, split, f'{image_id}.jpg'))


def _write_coco2017(coco_root, out_dir):
    os.makedirs(os.path.join(out_dir, 'annotations'))
    for split in ('train', 'val'):
        shutil.copy(os.path.join(coco_root, 'annotations', f'instances_{split}2014.json'),
                    os.path.join(out_dir, 'annotations', f'instances_{split}2017.json'))
        folder = os.path.join(coco_root, f'{split}2014')
        os.makedirs(os.path.join(out_dir, f'{split}2017'))
        for name in sorted(os.listdir(folder)):
            _link(os.path.join(folder, name), os.path.join(out_dir, f'{split}2017', name))


def export_layout(coco_root, out_dir, fmt, seed=0):
    """Write the COCO-2014 folder `coco_root` into `out_dir` (new or empty) in layout `fmt` (one of LAYOUTS)."""
    if fmt not in LAYOUTS:
        raise UserError(f"unknown layout '{fmt}'; choose one of {', '.join(LAYOUTS)}")
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise UserError(f"export folder {out_dir} is not empty; give a new or empty folder")
    os.makedirs(out_dir, exist_ok=True)
    if fmt == 'coco2017':
        _write_coco2017(coco_root, out_dir)
        return out_dir
    class_names, splits = _source(coco_root)
    writer = {'voc': _write_voc, 'csv': _write_csv, 'openimages': _write_openimages}[fmt]
    writer(out_dir, class_names, splits, np.random.RandomState(seed))
    return out_dir


def demo_layout_root(fmt, cache_dir=None, num_train=800, num_val=200):
    """The demo dataset (demo_coco_root) in layout `fmt`, built once and cached beside it."""
    def write(folder, n_train, n_val):
        export_layout(demo_coco_root(cache_dir, n_train, n_val), folder, fmt)

    return cached_build(f'{fmt}_layout{LAYOUT_VERSION}', write, cache_dir, num_train, num_val,
                        label=f'the demo dataset in the {fmt} layout')
