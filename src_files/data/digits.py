"""A small multi-label set of real handwriting: scikit-learn's bundled digits pasted onto noisy backgrounds.

Each 64 px image shows 1-3 different digits (classes '0'..'9'), one per quadrant, each an 8x8 scan from
scikit-learn's `load_digits` (1,797 handwritten digits, shipped with the package: nothing is downloaded),
upscaled to 24-32 px, inked in a random dark or light shade. Training and validation images draw from
disjoint sets of scans, so validation measures how well the model reads handwriting it has not seen. Written
as a COCO-2014 folder, so every script reads it as `--data`; builds are deterministic and cached like the demo.
`digits_imagefolder_root` writes a single-label set the same way: one digit per image, in the ImageFolder
layout (train/<digit>/*.png, val/<digit>/*.png), the classes balanced.
"""
import json
import os

import numpy as np
from PIL import Image
from sklearn.datasets import load_digits  # bundled with scikit-learn: nothing is downloaded

from src_files.data.demo import cached_build

IMAGE_SIZE = 64
CLASS_NAMES = [str(d) for d in range(10)]


def _scans(split):
    """(images [n, 8, 8] in [0, 1], labels [n]) of the split's scans: every 5th scan is for validation."""
    digits = load_digits()
    keep = (np.arange(len(digits.target)) % 5 == 0) == (split == 'val')
    return digits.images[keep] / 16.0, digits.target[keep]


def draw_digits_image(rng, scans, labels, classes):
    """A 64 px RGB image with one scan of each digit in `classes`, each in its own quadrant; -> (image, boxes)."""
    level = rng.uniform(90, 200)
    canvas = level + rng.normal(0, 12, (IMAGE_SIZE, IMAGE_SIZE, 1)) + rng.normal(0, 6, (1, 1, 3))
    half = IMAGE_SIZE // 2
    boxes = []
    for digit, cell in zip(classes, rng.permutation(4)):
        choices = np.flatnonzero(labels == digit)
        scan = scans[rng.choice(choices)]
        size = int(rng.randint(24, 33))
        alpha = np.asarray(Image.fromarray((scan * 255).astype(np.uint8)).resize((size, size),
                                                                                 Image.Resampling.BILINEAR)) / 255.0
        ink = rng.uniform(0, 50) if rng.rand() < 0.7 else rng.uniform(215, 255)
        x = (cell % 2) * half + rng.randint(0, half - size + 1)
        y = (cell // 2) * half + rng.randint(0, half - size + 1)
        patch = canvas[y:y + size, x:x + size]
        canvas[y:y + size, x:x + size] = patch * (1 - alpha[..., None]) + ink * alpha[..., None]
        boxes.append([int(x), int(y), size, size])
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    return image, boxes


def _write_coco(root, num_train, num_val):
    os.makedirs(os.path.join(root, 'annotations'))
    categories = [{'id': i + 1, 'name': name, 'supercategory': 'digit'} for i, name in enumerate(CLASS_NAMES)]
    image_id = ann_id = 0
    for seed, (split, count) in enumerate((('train', num_train), ('val', num_val))):
        rng = np.random.RandomState(100 + seed)
        scans, labels = _scans(split)
        os.makedirs(os.path.join(root, f'{split}2014'))
        images, annotations = [], []
        for _ in range(count):
            image_id += 1
            classes = rng.choice(10, rng.randint(1, 4), replace=False)
            image, boxes = draw_digits_image(rng, scans, labels, classes)
            file_name = f'COCO_{split}2014_{image_id:012d}.png'
            image.save(os.path.join(root, f'{split}2014', file_name))
            images.append({'id': image_id, 'file_name': file_name, 'width': IMAGE_SIZE, 'height': IMAGE_SIZE})
            for digit, (x, y, w, h) in zip(classes, boxes):
                ann_id += 1
                annotations.append({'id': ann_id, 'image_id': image_id, 'category_id': int(digit) + 1,
                                    'bbox': [x, y, w, h], 'area': w * h, 'iscrowd': 0})
        with open(os.path.join(root, 'annotations', f'instances_{split}2014.json'), 'w') as f:
            json.dump({'info': {'description': 'ml_decoder handwritten digits'}, 'licenses': [], 'images': images,
                       'annotations': annotations, 'categories': categories}, f)


def digits_coco_root(cache_dir=None, num_train=1200, num_val=300):
    """Folder laid out like COCO 2014 with the 10 digit classes (built once, then cached)."""
    return cached_build('digits', _write_coco, cache_dir, num_train, num_val, label='the handwritten-digits dataset')


def _write_imagefolder(root, num_train, num_val):
    for seed, (split, count) in enumerate((('train', num_train), ('val', num_val))):
        rng = np.random.RandomState(200 + seed)
        scans, labels = _scans(split)
        for digit in CLASS_NAMES:
            os.makedirs(os.path.join(root, split, digit))
        for i, digit in enumerate(rng.permutation(np.arange(count) % 10)):
            image, _ = draw_digits_image(rng, scans, labels, [digit])
            image.save(os.path.join(root, split, str(digit), f'{split}_{i:05d}.png'))


def digits_imagefolder_root(cache_dir=None, num_train=1000, num_val=300):
    """Folder in the ImageFolder layout with one handwritten digit per 64 px image, 10 classes (built once)."""
    return cached_build('digits_imagefolder', _write_imagefolder, cache_dir, num_train, num_val,
                        label='the single-label handwritten-digits dataset')
