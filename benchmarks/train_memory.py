"""Peak memory (RSS) of train.py on the CPU, against the estimate it prints before its first step.

    python benchmarks/train_memory.py --points tresnet_m:224:32 tresnet_l:448:8
    python benchmarks/train_memory.py --points tresnet_m:224:4 tresnet_m:224:16 --fit   # two points of one model

Each point MODEL:SIZE:BATCH runs `train.py --epochs 1` in a fresh process on generated data (the demo's images,
2 x BATCH of them: two training steps, then an evaluation), with the memory check off, and reads the process's
peak resident memory from the kernel (train.py's main process). The estimate is the one
src_files/training/memory.py makes for the same settings. --fit prints, from two points of one model at one size,
the (fixed, per image at 224 px) pair that memory.MEASURED holds. Numbers: BENCHMARKS.md, "Training memory".
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from src_files.data.demo import demo_coco_root  # noqa: E402
from src_files.training.memory import GIB, estimate_bytes  # noqa: E402


def peak_rss(model, size, batch, workdir):
    """Peak RSS in bytes of one train.py run (its largest process) and its wall time."""
    data = demo_coco_root(cache_dir=os.path.join(workdir, 'data'), num_train=2 * batch, num_val=4)
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), '--data', data, '--model-name', model, '--image-size',
           str(size), '--batch-size', str(batch), '--epochs', '1', '--no-memory-check',
           '--output-dir', os.path.join(workdir, f'{model}_{size}_{batch}')]
    start = time.time()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)  # (this run's own peak: ru_maxrss in KiB on Linux)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        sys.exit(f"train.py failed for {model}:{size}:{batch}:\n{out[-2000:]}")
    return usage.ru_maxrss * 1024, time.time() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--points', nargs='+', required=True, metavar='MODEL:SIZE:BATCH', help="settings to measure")
    parser.add_argument('--fit', action='store_true', help="two points of one model and size: print its table row")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for point in args.points:
            model, size, batch = point.split(':')
            size, batch = int(size), int(batch)
            rss, seconds = peak_rss(model, size, batch, tmp)
            estimate = estimate_bytes(model, size, batch)
            rows.append((model, size, batch, rss, estimate, seconds))
            print(f"# {model} {size} px batch {batch}: peak RSS {rss / GIB:.2f} GiB "
                  f"({seconds:.0f} s)", flush=True)
    print("| model | image size | batch | peak RSS GiB | estimate GiB | estimate / measured |")
    print("|---|---:|---:|---:|---:|---:|")
    for model, size, batch, rss, estimate, _ in rows:
        ratio = f"{estimate / rss:.2f}" if estimate else '-'
        shown = f"{estimate / GIB:.2f}" if estimate else '-'
        print(f"| {model} | {size} | {batch} | {rss / GIB:.2f} | {shown} | {ratio} |")
    if args.fit:
        (_, size, b1, r1, _, _), (_, _, b2, r2, _, _) = rows[:2]
        per_image = (r2 - r1) / (b2 - b1) / (size / 224) ** 2
        fixed = r1 - per_image * b1 * (size / 224) ** 2
        print(f"fit: fixed {fixed / GIB:.3f} GiB, {per_image / GIB:.4f} GiB per image at 224 px")


if __name__ == '__main__':
    main()
