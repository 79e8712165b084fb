"""A small synthetic dataset the project draws itself, so every script can run without downloads.

Images show 1-3 coloured shapes on a noisy pastel background; a class is a colour x shape combination
('red circle', ...). The same generator writes a COCO-2014 folder and a NUS-WIDE zsl folder, whose word
vectors are sums of a colour vector and a shape vector, so unseen combinations are predictable from seen
ones. Builds are deterministic and cached: built in a temporary folder, then renamed in one step, so an
interrupted build never leaves a half-written cache.
"""
import csv
import json
import logging
import os
import shutil
import tempfile

import numpy as np
import torch
from PIL import Image, ImageDraw

LOG = logging.getLogger(__name__)

DEMO_VERSION = 1  # (bump when a builder changes what it writes: cached folders are rebuilt)
IMAGE_SIZE = 96
COLOURS = {'red': (220, 50, 50), 'green': (50, 170, 70), 'blue': (50, 90, 220), 'yellow': (235, 205, 40)}
SHAPES = ('circle', 'square', 'triangle', 'cross')
CLASS_NAMES = [f'{colour} {shape}' for colour in COLOURS for shape in SHAPES]
# One unseen combination per colour and per shape: every colour and every shape stays among the seen classes.
UNSEEN_CLASSES = ['red circle', 'green square', 'blue triangle', 'yellow cross']
SEEN_CLASSES = [name for name in CLASS_NAMES if name not in UNSEEN_CLASSES]
_MARKER = '.ml_decoder_demo'


def default_cache_dir():
    """$ML_DECODER_DEMO_DIR, else ~/.cache/ml_decoder/demo."""
    return os.environ.get('ML_DECODER_DEMO_DIR') or os.path.join(os.path.expanduser('~'), '.cache', 'ml_decoder',
                                                                 'demo')


def _draw_shape(draw, shape, colour, x, y, size):
    box = [x, y, x + size - 1, y + size - 1]
    if shape == 'circle':
        draw.ellipse(box, fill=colour)
    elif shape == 'square':
        draw.rectangle(box, fill=colour)
    elif shape == 'triangle':
        draw.polygon([(x + size / 2, y), (x, y + size - 1), (x + size - 1, y + size - 1)], fill=colour)
    else:  # cross: a horizontal and a vertical bar
        t = size // 3
        draw.rectangle([x, y + (size - t) // 2, x + size - 1, y + (size + t) // 2], fill=colour)
        draw.rectangle([x + (size - t) // 2, y, x + (size + t) // 2, y + size - 1], fill=colour)


def draw_image(rng, classes):
    """An image with one shape per class name in `classes`, and the [x, y, w, h] box of each shape.

    Each shape gets its own quadrant, so no shape hides another and every label stays visible.
    """
    background = rng.randint(120, 200, 3) + rng.normal(0, 10, (IMAGE_SIZE, IMAGE_SIZE, 3))
    image = Image.fromarray(np.clip(background, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    half = IMAGE_SIZE // 2
    boxes = []
    for name, cell in zip(classes, rng.permutation(4)):
        colour_name, shape = name.split(' ')
        colour = tuple(int(c) for c in np.clip(np.array(COLOURS[colour_name]) + rng.randint(-20, 21, 3), 0, 255))
        size = rng.randint(22, 41)
        x = (cell % 2) * half + rng.randint(0, half - size + 1)
        y = (cell // 2) * half + rng.randint(0, half - size + 1)
        _draw_shape(draw, shape, colour, x, y, size)
        boxes.append([int(x), int(y), int(size), int(size)])
    return image, boxes


def _sample_classes(rng, pool):
    """0-3 distinct class names; about 2% of images are empty, like COCO's unannotated images."""
    count = 0 if rng.rand() < 0.02 else rng.randint(1, 4)
    return [pool[i] for i in rng.choice(len(pool), count, replace=False)]


def _write_coco(root, num_train, num_val):
    os.makedirs(os.path.join(root, 'annotations'))
    categories = [{'id': i + 1, 'name': name, 'supercategory': name.split(' ')[1]}
                  for i, name in enumerate(CLASS_NAMES)]
    category_id = {c['name']: c['id'] for c in categories}
    image_id = ann_id = 0
    for seed, (split, count) in enumerate((('train', num_train), ('val', num_val))):
        rng = np.random.RandomState(seed)
        os.makedirs(os.path.join(root, f'{split}2014'))
        images, annotations = [], []
        for _ in range(count):
            image_id += 1
            classes = _sample_classes(rng, CLASS_NAMES)
            image, boxes = draw_image(rng, classes)
            file_name = f'COCO_{split}2014_{image_id:012d}.jpg'
            image.save(os.path.join(root, f'{split}2014', file_name), quality=90)
            images.append({'id': image_id, 'file_name': file_name, 'width': IMAGE_SIZE, 'height': IMAGE_SIZE})
            for name, (x, y, w, h) in zip(classes, boxes):
                ann_id += 1
                annotations.append({'id': ann_id, 'image_id': image_id, 'category_id': category_id[name],
                                    'bbox': [x, y, w, h], 'area': w * h, 'iscrowd': 0,
                                    'segmentation': [[x, y, x + w, y, x + w, y + h, x, y + h]]})
        with open(os.path.join(root, 'annotations', f'instances_{split}2014.json'), 'w') as f:
            json.dump({'info': {'description': 'ml_decoder demo'}, 'licenses': [], 'images': images,
                       'annotations': annotations, 'categories': categories}, f)


def demo_word_vectors(seed=2):
    """{word: 300-d vector} of the demo's colour and shape words, the ones demo_wordvecs composes its classes of."""
    rng = np.random.RandomState(seed)
    colour_vecs = dict(zip(COLOURS, rng.normal(size=(len(COLOURS), 300))))
    shape_vecs = dict(zip(SHAPES, rng.normal(size=(len(SHAPES), 300))))
    return dict(colour_vecs, **shape_vecs)


def write_word_vector_file(path, vectors):
    """A word-vector text file (`word v1 ... vd` per line, as GloVe and fastText's .vec) of {word: vector}."""
    with open(path, 'w', encoding='utf-8') as f:
        for word, vector in vectors.items():
            f.write(word + ' ' + ' '.join(f'{v:.7g}' for v in vector) + '\n')
    return path


def demo_wordvecs(seed=2):
    """[300, 16] word vectors in sorted class-name order: colour vector + shape vector + small noise, unit norm."""
    rng = np.random.RandomState(seed)
    colour_vecs = dict(zip(COLOURS, rng.normal(size=(len(COLOURS), 300))))
    shape_vecs = dict(zip(SHAPES, rng.normal(size=(len(SHAPES), 300))))
    columns = []
    for name in sorted(CLASS_NAMES):
        colour, shape = name.split(' ')
        vec = colour_vecs[colour] + shape_vecs[shape] + 0.1 * rng.normal(size=300)
        columns.append(vec / np.linalg.norm(vec))
    return torch.tensor(np.stack(columns, axis=1), dtype=torch.float32)


def _write_nus(root, num_train, num_val):
    os.makedirs(os.path.join(root, 'images'))
    rows = []
    # Train images show seen classes only, so the unseen combinations are truly never seen in training.
    for seed, (split, count, pool) in enumerate((('train', num_train, SEEN_CLASSES), ('val', num_val, CLASS_NAMES))):
        rng = np.random.RandomState(10 + seed)
        for i in range(count):
            classes = _sample_classes(rng, pool)
            image, _ = draw_image(rng, classes)
            rel_path = f'images/{split}_{i:05d}.jpg'
            image.save(os.path.join(root, rel_path), quality=90)
            rows.append([rel_path, '[' + ', '.join(classes) + ']', split])  # the published `[a, b]` format
    with open(os.path.join(root, 'data.csv'), 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['image', 'labels', 'split'])
        writer.writerows(rows)
    with open(os.path.join(root, 'benchmark_81_v0.json'), 'w') as f:
        json.dump({'train class': sorted(SEEN_CLASSES), 'test class': sorted(UNSEEN_CLASSES)}, f)
    torch.save(demo_wordvecs(), os.path.join(root, 'wordvec_array.pth'))


def cached_build(kind, write, cache_dir, num_train, num_val, label='demo dataset'):
    """Return the cached `kind` folder, building it first (once) with `write(folder, num_train, num_val)`."""
    cache_dir = cache_dir or default_cache_dir()
    final = os.path.join(cache_dir, f'{kind}_{num_train}_{num_val}')
    stamp = f'ml_decoder demo {kind} version {DEMO_VERSION}\n'
    marker = os.path.join(final, _MARKER)

    def complete():
        if not os.path.isfile(marker):
            return False
        with open(marker) as f:
            return f.read() == stamp

    if complete():
        return final
    LOG.info(f"building {label} in {final}")
    os.makedirs(cache_dir, exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f'.{kind}-building-', dir=cache_dir)
    try:
        write(tmp, num_train, num_val)
        with open(os.path.join(tmp, _MARKER), 'w') as f:
            f.write(stamp)
        if os.path.isdir(final) and not complete():  # built by an older version of this code
            shutil.rmtree(final)
        try:
            os.rename(tmp, final)
        except OSError:
            if not complete():
                raise
            shutil.rmtree(tmp)  # another process finished the same build first
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def demo_coco_root(cache_dir=None, num_train=800, num_val=200):
    """Folder laid out like COCO 2014 (annotations/, train2014/, val2014/) with the 16 demo classes."""
    return cached_build('coco', _write_coco, cache_dir, num_train, num_val)


def demo_nus_root(cache_dir=None, num_train=800, num_val=200):
    """Folder laid out like NUS-WIDE zsl (images/, data.csv, benchmark_81_v0.json, wordvec_array.pth)."""
    return cached_build('nus', _write_nus, cache_dir, num_train, num_val)
