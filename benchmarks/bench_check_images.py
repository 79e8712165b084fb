"""Time of train.py's image check (src_files/data/check.py: every image decoded once before the first step).

    python benchmarks/bench_check_images.py --images 2000 --workers 1 2

Writes N JPEGs of 640x480 (smooth random pictures, quality 90, about the size of COCO's) into a temporary CSV
layout, one of them cut short, and times the check of all of them with each number of loader processes.
"""
import argparse
import os
import sys
import tempfile
import time

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from src_files.data.check import unreadable  # noqa: E402
from src_files.data.csv_list import MultiLabelCsv  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--images', type=int, default=2000)
    parser.add_argument('--workers', type=int, nargs='+', default=[1, 2])
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        base = rng.random((60, 80, 3))
        with open(os.path.join(tmp, 'train.csv'), 'w') as f:
            f.write('image,labels\n')
            for i in range(args.images):
                small = np.clip(base + rng.normal(0, 0.1, base.shape), 0, 1)
                Image.fromarray((small * 255).astype(np.uint8)).resize((640, 480), Image.BICUBIC).save(
                    os.path.join(tmp, f'{i}.jpg'), quality=90)
                f.write(f'{i}.jpg,a\n')
        cut = os.path.join(tmp, '7.jpg')
        with open(cut, 'rb') as f:
            data = f.read()
        with open(cut, 'wb') as f:
            f.write(data[:len(data) // 2])
        dataset = MultiLabelCsv(os.path.join(tmp, 'train.csv'))
        print("| images | loader processes | seconds | images/s | unreadable found |")
        print("|---:|---:|---:|---:|---:|")
        for workers in args.workers:
            start = time.time()
            found = unreadable(dataset, workers, 'checking')
            seconds = time.time() - start
            print(f"| {args.images} | {workers} | {seconds:.1f} | {args.images / seconds:.0f} | {len(found)} |")


if __name__ == '__main__':
    main()
