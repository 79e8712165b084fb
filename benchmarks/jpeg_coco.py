"""A COCO-2014-layout folder of generated JPEG photos-to-be for end-to-end timing (decoding and resizing included).

    python benchmarks/jpeg_coco.py --out /tmp/jpegs --num-val 320 --width 224 --height 224
    python benchmarks/jpeg_coco.py --out /tmp/coco_like --num-train 2000 --num-val 500 --width 640 --height 480
    python benchmarks/jpeg_coco.py --out /tmp/coco_big --num-train 16800 --distinct 2000 --width 640 --height 480

Each image is smooth colour gradients with noise and a few filled rectangles (JPEG-compressed at quality 90, so
decoding costs what a photo of that size costs); each has 1-4 of COCO's 80 classes drawn at random. The labels
mean nothing: the folder is for speed, not accuracy. Drawing takes about 30 ms per 640x480 image, so the images
are drawn by one process per CPU core, and with --distinct only that many are drawn: the other files are hard
links to them (each file decodes as any other; the page cache holds them all either way).
"""
import argparse
import json
import multiprocessing
import os

import numpy as np
from PIL import Image, ImageDraw

NUM_CLASSES = 80


def draw(rng, width, height):
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    base = np.stack([rng.uniform(40, 200) + rng.uniform(-60, 60) * np.sin(x / rng.uniform(20, 120) + rng.uniform(6))
                     + rng.uniform(-40, 40) * np.cos(y / rng.uniform(20, 120)) for _ in range(3)], axis=-1)
    base += rng.normal(0, 10, base.shape)
    image = Image.fromarray(np.clip(base, 0, 255).astype(np.uint8))
    painter = ImageDraw.Draw(image)
    for _ in range(rng.randint(2, 6)):
        x0, y0 = rng.randint(0, width - 8), rng.randint(0, height - 8)
        painter.rectangle([x0, y0, x0 + rng.randint(8, width // 2), y0 + rng.randint(8, height // 2)],
                          fill=tuple(int(v) for v in rng.randint(0, 256, 3)))
    return image


def _draw_file(job):
    path, width, height, seed = job
    draw(np.random.RandomState(seed), width, height).save(path, quality=90)


def write(root, num_train, num_val, width, height, seed=0, distinct=None, processes=None):
    """Write the folder (train2014/, val2014/, annotations/) unless it is already complete; -> root.

    `distinct`: draw only that many images (train and val together), the others are hard links to them;
    `processes`: drawing processes (default: one per CPU core from 64 images on)."""
    done = os.path.join(root, '.complete')
    if os.path.isfile(done):
        return root
    os.makedirs(os.path.join(root, 'annotations'), exist_ok=True)
    categories = [{'id': i + 1, 'name': f'class {i:02d}', 'supercategory': 'thing'} for i in range(NUM_CLASSES)]
    rng = np.random.RandomState(seed)
    image_id = ann_id = 0
    files = []
    for split, count in (('train', num_train), ('val', num_val)):
        os.makedirs(os.path.join(root, f'{split}2014'), exist_ok=True)
        images, annotations = [], []
        for _ in range(count):
            image_id += 1
            name = f'COCO_{split}2014_{image_id:012d}.jpg'
            files.append(os.path.join(root, f'{split}2014', name))
            images.append({'id': image_id, 'file_name': name, 'width': width, 'height': height})
            for c in rng.choice(NUM_CLASSES, rng.randint(1, 5), replace=False):
                ann_id += 1
                annotations.append({'id': ann_id, 'image_id': image_id, 'category_id': int(c) + 1,
                                    'bbox': [0, 0, 8, 8], 'area': 64, 'iscrowd': 0})
        with open(os.path.join(root, 'annotations', f'instances_{split}2014.json'), 'w') as f:
            json.dump({'images': images, 'annotations': annotations, 'categories': categories}, f)
    drawn = files[:distinct or len(files)]
    jobs = [(path, width, height, seed * 1_000_003 + i) for i, path in enumerate(drawn)]
    if processes is None:  # (starting the processes takes about a second: not for a few images)
        processes = (os.cpu_count() or 1) if len(jobs) >= 64 else 1
    processes = min(processes, max(1, len(jobs)))
    if processes > 1:
        with multiprocessing.get_context('spawn').Pool(processes) as pool:
            pool.map(_draw_file, jobs, chunksize=8)
    else:
        for job in jobs:
            _draw_file(job)
    for i, path in enumerate(files[len(drawn):]):
        if os.path.exists(path):
            os.remove(path)
        os.link(drawn[i % len(drawn)], path)
    open(done, 'w').close()
    return root


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--out', required=True, help='folder to write (kept if already complete)')
    parser.add_argument('--num-train', type=int, default=0)
    parser.add_argument('--num-val', type=int, default=320)
    parser.add_argument('--width', type=int, default=224)
    parser.add_argument('--height', type=int, default=224)
    parser.add_argument('--distinct', type=int, default=None,
                        help='draw only this many images; the other files are hard links to them')
    parser.add_argument('--processes', type=int, default=None, help='drawing processes (default: one per CPU core)')
    args = parser.parse_args()
    print(write(args.out, args.num_train, args.num_val, args.width, args.height, distinct=args.distinct,
                processes=args.processes))


if __name__ == '__main__':
    main()
