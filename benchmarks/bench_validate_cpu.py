"""End to end on the CPU: the images/s validate.py prints (JPEG decoding and loading included) against the
published recipe's model-only rate, measured in the same run.

    python benchmarks/bench_validate_cpu.py                      # tresnet_m 224, 320 JPEGs of 224 px
    python benchmarks/bench_validate_cpu.py --images 640 --model-name tresnet_l --image-size 448

Steps: write a COCO-layout folder of generated JPEGs (jpeg_coco.py) and a checkpoint with random weights; time the
published recipe on the model alone (folded norms, fp32, NCHW, eager, per-group-loop head, batch 16, random
input); then run `validate.py --model-path CKPT --data DIR` with its default flags three times: with an empty int8
cache (the first run converts the model: its conversion time is printed apart), again (the cached int8 file), and
with `--precision fp32` (the exact path). Each validate.py line is parsed for its images/s.
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile
import time

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from cpu_compare import cpu_name  # noqa: E402
from cpu_paths import build, time_path  # noqa: E402
from jpeg_coco import write as write_jpegs  # noqa: E402


def checkpoint(path, model_name, image_size):
    from src_files.training.checkpoint import save_best
    from src_files.models import create_model
    from src_files.models.config import ModelConfig
    cfg = ModelConfig(model_name=model_name, image_size=image_size, num_classes=80)
    torch.manual_seed(0)
    model = create_model(**cfg.to_dict())
    save_best(path, model.state_dict(), [f'class {i:02d}' for i in range(80)], cfg.to_dict())
    return model


def validate_rate(argv, env):
    start = time.time()
    out = subprocess.run([sys.executable, os.path.join(ROOT, 'validate.py'), *argv], capture_output=True, text=True,
                         env=env, cwd=ROOT)
    if out.returncode:
        raise SystemExit(out.stderr[-2000:])
    line = out.stdout.strip().splitlines()[-1]
    rate = float(re.search(r'\(([\d.]+) images/s', line).group(1))
    return rate, line, time.time() - start, out.stderr + out.stdout


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--model-name', default='tresnet_m')
    parser.add_argument('--image-size', type=int, default=224)
    parser.add_argument('--images', type=int, default=320, help='validation JPEGs (of --image-size px)')
    parser.add_argument('--work', default=os.path.join(tempfile.gettempdir(), 'bench_validate_cpu'),
                        help='folder for the JPEGs, the checkpoint and the int8 cache')
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    data = write_jpegs(os.path.join(args.work, f'jpegs_{args.images}_{args.image_size}'), 0, args.images,
                       args.image_size, args.image_size)
    ckpt = os.path.join(args.work, f'{args.model_name}_{args.image_size}.pth')
    from src_files.models import fold_norm_layers
    model = fold_norm_layers(checkpoint(ckpt, args.model_name, args.image_size).eval())
    published, _ = build('published', model, args.image_size, None, None)
    x = torch.rand(16, 3, args.image_size, args.image_size)
    base = time_path(published, x, warmup=1, min_seconds=10, min_iters=3)
    print(f"published recipe, model only, batch 16: {base:.1f} images/s", flush=True)
    cache = tempfile.mkdtemp(prefix='int8_cache_', dir=args.work)
    env = dict(os.environ, ML_DECODER_CACHE=cache)
    rows = []
    for name, extra in (('validate.py (first run: converts to int8)', []), ('validate.py (cached int8)', []),
                        ('validate.py --precision fp32', ['--precision', 'fp32'])):
        rate, line, wall, log = validate_rate(['--model-path', ckpt, '--data', data, *extra], env)
        rows.append((name, rate, wall))
        print(f"# {name}: {line} (wall {wall:.0f} s)", flush=True)
    print(f"# validate.py end to end on the CPU: {args.model_name} {args.image_size}px, {args.images} JPEGs, default "
          f"flags, {cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__}")
    print("| run | images/s printed | vs published model-only | wall s (model loading included) |")
    print("|---|---|---|---|")
    print(f"| published recipe, model only, batch 16 | {base:.1f} | 1.00x | - |")
    for name, rate, wall in rows:
        print(f"| {name} | {rate:.1f} | {rate / base:.2f}x | {wall:.0f} |")


if __name__ == '__main__':
    main()
