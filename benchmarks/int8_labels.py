"""How many labels `--precision int8` changes against the exact fp32 model, on a real validation set.

    python benchmarks/int8_labels.py --model-path outputs/digits/best.pth            # the handwritten-digits set
    python benchmarks/int8_labels.py --model-path best.pth --data /data/coco --thr 0.75

Runs validate.py twice on the same checkpoint and data, `--precision fp32` (the default) and `--precision int8`
(its accuracy guard lifted, so int8 scores every image), each with `--save-scores`, and compares the two files image by image: the images whose label set (the classes
above --thr) differs, the largest probability difference, and both mAPs and run times. The int8 run converts the
model first unless its file is cached (~/.cache/ml_decoder/int8); the time column includes that.
"""
import argparse
import contextlib
import io
import os
import re
import sys
import tempfile
import time

import numpy as np
import pandas as pd

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def validate(model_path, data, precision, scores, extra):
    """(mAP, seconds, stdout) of validate.py in this process; int8 without its accuracy guard, so the comparison
    covers every image even where the guard would have sent the run back to fp32 (its verdict is in stdout)."""
    import validate as script
    from src_files.cli.run import setup_logging
    from src_files.export import cpu_int8
    setup_logging()
    argv = ['--model-path', model_path, '--data', data, '--precision', precision, '--save-scores', scores] + extra
    out = io.StringIO()
    start = time.time()
    with contextlib.redirect_stdout(out):
        guard = cpu_int8.GUARD_MEAN, cpu_int8.GUARD_MAX, cpu_int8.GUARD_LABELS
        cpu_int8.GUARD_MEAN = cpu_int8.GUARD_MAX = cpu_int8.GUARD_LABELS = float('inf')
        try:
            script.main(argv)
        finally:
            cpu_int8.GUARD_MEAN, cpu_int8.GUARD_MAX, cpu_int8.GUARD_LABELS = guard
    seconds, text = time.time() - start, out.getvalue()
    found = re.search(r'^mAP ([\d.]+)', text, re.M)
    return float(found.group(1)) if found else float('nan'), seconds, text


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-path', required=True)
    parser.add_argument('--data', default='', help="COCO-layout folder (default: the handwritten-digits set)")
    parser.add_argument('--thr', type=float, default=0.75, help="threshold of a label (validate.py's default)")
    parser.add_argument('--workers', type=int, default=2)
    args = parser.parse_args()
    if not args.data:
        from src_files.data.digits import digits_coco_root
        args.data = digits_coco_root()
    extra = ['--thr', str(args.thr), '--workers', str(args.workers)]
    with tempfile.TemporaryDirectory() as tmp:
        runs = {p: validate(args.model_path, args.data, p, os.path.join(tmp, f'{p}.csv'), extra)
                for p in ('fp32', 'int8')}
        fp32 = pd.read_csv(os.path.join(tmp, 'fp32.csv')).set_index('image')
        int8 = pd.read_csv(os.path.join(tmp, 'int8.csv')).set_index('image').loc[fp32.index, fp32.columns]
    guard = [line for line in runs['int8'][2].splitlines() if line.startswith('running int8')]
    p32, p8 = fp32.to_numpy(), int8.to_numpy()
    changed = ((p32 > args.thr) != (p8 > args.thr)).any(axis=1)
    print(f"# {args.model_path} on {args.data}: {len(p32)} images, {p32.shape[1]} classes, threshold {args.thr}")
    print(f"# int8 on its calibration images: {guard[0].split(';')[1].strip(' )') if guard else '?'}")
    print("| precision | mAP | run s | images with another label set | label decisions changed | max |p - p_fp32| |")
    print("|---|---:|---:|---:|---:|---:|")
    print(f"| fp32 | {runs['fp32'][0]:.2f} | {runs['fp32'][1]:.1f} | - | - | - |")
    print(f"| int8 | {runs['int8'][0]:.2f} | {runs['int8'][1]:.1f} | {int(changed.sum())} of {len(p32)} "
          f"({changed.mean():.1%}) | {int(((p32 > args.thr) != (p8 > args.thr)).sum())} of {p32.size} | "
          f"{np.abs(p8 - p32).max():.4f} |")


if __name__ == '__main__':
    main()
