"""Time and memory of reading Open Images image-level labels (no images): class list + per-image index arrays.

Writes, in a temporary folder, a descriptions file (19,957 MIDs, like V6), a training label file of --rows rows
over --images images and --classes MIDs, and a validation file of a hundredth of that; then a fresh process
loads it with `openimages_datasets(..., check_images=False)` (the class list comes from the training file's
labels, or from classes-trainable.txt with --trainable) and reports its time and its peak memory: the growth of
the process' peak RSS (ru_maxrss) over its RSS before the load (an upper bound: the peak may also be an earlier
one, of the imports), and, over a second load, tracemalloc's peak of the Python and numpy allocations.

    python benchmarks/openimages_labels.py                     # 1,000,000 rows, 100,000 images, 9605 classes
    python benchmarks/openimages_labels.py --rows 100000 --images 10000
"""
import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc

import numpy as np
import pandas as pd

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def write_files(folder, rows, images, classes, trainable, seed=0):
    """The descriptions file and the two label files (rows grouped by image, as the published files are)."""
    rng = np.random.RandomState(seed)
    mids = np.array([f'/m/{i:07x}' for i in rng.permutation(np.unique(rng.randint(0, 16 ** 7, 30000)))[:19957]])
    pd.DataFrame({'LabelName': mids, 'DisplayName': [f'class {i}' for i in range(len(mids))]}).to_csv(
        os.path.join(folder, 'oidv6-class-descriptions.csv'), index=False, header=False)
    used = mids[:classes]
    if trainable:
        with open(os.path.join(folder, 'oidv6-classes-trainable.txt'), 'w') as f:
            f.write(''.join(f'{mid}\n' for mid in used))
    for name, count, n_images in (('oidv6-train', rows, images), ('validation', rows // 100, images // 100)):
        ids = np.array([f'{v:016x}' for v in rng.randint(0, 2 ** 62, n_images, dtype=np.int64)])
        image = np.sort(rng.randint(0, n_images, count))
        pd.DataFrame({'ImageID': ids[image], 'Source': np.where(rng.rand(count) < 0.5, 'verification',
                                                                'crowdsource-verified'),
                      'LabelName': used[rng.randint(0, classes, count)],
                      'Confidence': (rng.rand(count) < 0.6).astype(np.int8)}).to_csv(
            os.path.join(folder, f'{name}-annotations-human-imagelabels.csv'), index=False)


def _current_rss():
    """Resident bytes of this process now (Linux), else its peak so far."""
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measure(folder):
    """Load the folder's labels; print a JSON line of time, memory and sizes."""
    from src_files.data.openimages import openimages_datasets
    base_rss = _current_rss()
    start = time.perf_counter()
    train, val, classes, _ = openimages_datasets(folder, check_images=False)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base_rss  # ru_maxrss: KiB on Linux
    tracemalloc.start()  # a second load, traced (tracing slows it down)
    openimages_datasets(folder, check_images=False)
    traced_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    start = time.perf_counter()
    picks = np.random.RandomState(0).randint(0, len(train), 10000)
    for i in picks:
        train.target(int(i))
    per_target = (time.perf_counter() - start) / len(picks)
    labelled = len(train.label_ids.indices) + len(train.negative_ids.indices)
    print(json.dumps(dict(seconds=seconds, rss=rss, traced=traced_peak, images=len(train), val_images=len(val),
                          classes=len(classes), labelled=labelled, target_us=per_target * 1e6)))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--rows', type=int, default=1_000_000)
    parser.add_argument('--images', type=int, default=100_000)
    parser.add_argument('--classes', type=int, default=9605)
    parser.add_argument('--trainable', action='store_true', help="write classes-trainable.txt (one read less)")
    parser.add_argument('--measure', metavar='DIR', help=argparse.SUPPRESS)  # (the child process)
    args = parser.parse_args()
    if args.measure:
        return measure(args.measure)
    with tempfile.TemporaryDirectory() as folder:
        start = time.perf_counter()
        write_files(folder, args.rows, args.images, args.classes, args.trainable)
        size = os.path.getsize(os.path.join(folder, 'oidv6-train-annotations-human-imagelabels.csv'))
        print(f"# wrote {args.rows:,} rows ({size / 2 ** 20:.0f} MiB) in {time.perf_counter() - start:.1f} s")
        out = subprocess.run([sys.executable, os.path.abspath(__file__), '--measure', folder], check=True,
                             capture_output=True, text=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print("| rows | images | classes | class list from | load (s) | peak RSS growth (MiB) | tracemalloc peak (MiB) "
          "| target(i) (us) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- |")
    print(f"| {args.rows:,} | {r['images']:,} | {r['classes']:,} | "
          f"{'classes-trainable.txt' if args.trainable else 'training file'} | {r['seconds']:.2f} | "
          f"{r['rss'] / 2 ** 20:.0f} | {r['traced'] / 2 ** 20:.0f} | {r['target_us']:.1f} |")


if __name__ == '__main__':
    main()
