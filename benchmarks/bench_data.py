"""What the training data pipeline costs per image on one CPU core, stage by stage, and what a loader delivers.

    python benchmarks/bench_data.py                               # 640x480 JPEGs to 448 and 224 px
    python benchmarks/bench_data.py --sizes 448 --images 200 --loader-workers 0,2

The images are generated COCO-like JPEGs (jpeg_coco.py, 640x480, the size of most COCO photos). Per image and
size, in one process on one thread: **decode** (`load_rgb`: open + full JPEG decode to RGB), **resize** (the
transforms' Resize to size x size), **cutout** (CutoutPIL), **randaug** (the published RandAugment, seeded per
image), **to float** (ToTensor: a float32 [3, s, s] tensor in [0, 1], what the loader ships when the images are
converted on the CPU) or **to uint8** (PILToTensor: the uint8 tensor shipped when the GPU converts it).
"images/s per core" is 1 / the sum of a path's stages. Then, for each --loader-workers count, the training
loader itself (SeededSamples + DataLoader over the COCO folder, the real train transform) is timed for a few
batches: images/s and the bytes per batch it hands to the training process.
"""
import argparse
import os
import random
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

from jpeg_coco import write as write_jpegs  # noqa: E402
from src_files.data.files import load_rgb  # noqa: E402
from src_files.helper_functions.augmentations import CutoutPIL, RandAugment, train_transform  # noqa: E402


def stage_times(paths, size):
    """Mean ms per image of each stage, over `paths` (each image seeded by its index)."""
    from torchvision import transforms
    resize, cutout, randaug = transforms.Resize((size, size)), CutoutPIL(0.5), RandAugment()
    to_float, to_uint8 = transforms.ToTensor(), transforms.PILToTensor()
    totals = dict.fromkeys(('decode', 'resize', 'cutout', 'randaug', 'to float', 'to uint8'), 0.0)
    for i, path in enumerate(paths):
        random.seed(i)
        t = [time.perf_counter()]
        img = load_rgb(path)
        t.append(time.perf_counter())
        img = resize(img)
        t.append(time.perf_counter())
        img = cutout(img)
        t.append(time.perf_counter())
        img = randaug(img)
        t.append(time.perf_counter())
        to_float(img)
        t.append(time.perf_counter())
        to_uint8(img)
        t.append(time.perf_counter())
        for key, a, b in zip(totals, t, t[1:]):
            totals[key] += b - a
    return {key: 1000 * value / len(paths) for key, value in totals.items()}


def loader_rate(root, size, workers, batch_size, batches, uint8=False):
    """images/s of the training loader over `batches` batches (after the first, which includes the start-up), and
    the bytes of a batch; `uint8`: the transform ends in uint8 tensors (train.py's --uint8-batches on CUDA)."""
    from torch.utils.data import DataLoader, RandomSampler

    from src_files.data.coco import coco_split
    from src_files.training.data import SeededSamples
    data = SeededSamples(coco_split(root, 'train', train_transform(size, uint8=uint8)), seed=0)
    order = RandomSampler(data, replacement=True, num_samples=(batches + 1) * batch_size)  # (any folder size)
    loader = DataLoader(data, batch_size=batch_size, sampler=order, num_workers=workers, drop_last=True)
    it = iter(loader)
    images, _ = next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches * batch_size / (time.perf_counter() - start), images.numel() * images.element_size()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--sizes', default='448,224', help='comma-separated training image sizes')
    parser.add_argument('--images', type=int, default=100, help='images timed per size')
    parser.add_argument('--loader-workers', default='', help="comma-separated worker counts to time the loader at "
                                                             "('' = none)")
    parser.add_argument('--batch-size', type=int, default=16, help='batch of the loader timing')
    parser.add_argument('--batches', type=int, default=8, help='batches timed per loader')
    parser.add_argument('--data', default='', help='a folder for the JPEGs (default: a temporary one)')
    args = parser.parse_args()
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(',')]
    workers = [int(w) for w in args.loader_workers.split(',') if w]
    count = max(args.images, (args.batches + 1) * args.batch_size if workers else 0)
    with tempfile.TemporaryDirectory() as tmp:
        root = write_jpegs(args.data or os.path.join(tmp, 'coco'), count, 0, 640, 480)
        paths = sorted(os.path.join(root, 'train2014', name) for name in os.listdir(os.path.join(root, 'train2014')))
        paths = paths[:args.images]
        stage_times(paths[:5], sizes[0])  # warm the caches
        print(f"torch {torch.__version__}, {os.cpu_count()} CPUs; {len(paths)} JPEGs of 640x480, one thread; "
              f"ms per image")
        keys = ('decode', 'resize', 'cutout', 'randaug', 'to float', 'to uint8')
        print('| size | ' + ' | '.join(keys) + ' | images/s per core, float | uint8 | no aug, float |')
        print('|---:' * (len(keys) + 4) + '|')
        for size in sizes:
            ms = stage_times(paths, size)
            base = ms['decode'] + ms['resize'] + ms['cutout'] + ms['randaug']
            plain = ms['decode'] + ms['resize'] + ms['to float']
            print(f"| {size} | " + ' | '.join(f"{ms[k]:.2f}" for k in keys) +
                  f" | {1000 / (base + ms['to float']):.0f} | {1000 / (base + ms['to uint8']):.0f} | "
                  f"{1000 / plain:.0f} |")
        for size in sizes:
            for w in workers:
                for uint8 in (False, True):
                    rate, nbytes = loader_rate(root, size, w, args.batch_size, args.batches, uint8)
                    print(f"loader, size {size}, --workers {w}, batch {args.batch_size}, "
                          f"{'uint8' if uint8 else 'float32'}: {rate:.0f} images/s ({nbytes / 2 ** 20:.1f} MiB per "
                          f"batch)")


if __name__ == '__main__':
    main()
