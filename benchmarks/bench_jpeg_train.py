"""train.py and validate.py on JPEG files against the synthetic-input training rate of the same mode, same run.

    python benchmarks/bench_jpeg_train.py                                   # TResNet-L 448, batch 56, 2 x 200 steps
    python benchmarks/bench_jpeg_train.py --model-name tresnet_m --image-size 224 --batch-size 128
    python benchmarks/bench_jpeg_train.py --device cpu --model-name tresnet_m --image-size 64 --batch-size 4 \\
        --steps 3 --val-images 8 --mode fast --iters 1 --warmup 0             # a dry run on the CPU

Steps, each printed as it is measured:
1. a COCO-2014-layout folder of generated 640x480 JPEGs (jpeg_coco.py): --steps x --batch-size training images
   (--distinct of them drawn, the others hard links) and --val-images validation images;
2. bench_train.py's synthetic-input rate of --mode (the same forward, loss, backward, Adam, OneCycle and EMA,
   with one batch made once on the device), unless --synthetic-rate gives it;
3. train.py for --epochs epochs over the JPEGs with the flags of that mode and its real training transform (resize,
   Cutout, RandAugment) at its default --workers, once per --variants entry: `default`, `float` (with
   --no-uint8-batches: the loader sends float32 tensors), `noaug` (--no-aug: decode and resize only). The last
   epoch line gives the rate and the part of the time spent waiting for batches: that epoch compiles nothing and
   starts with no batch in hand (the loader processes, kept from the first epoch, start on its batches when it
   starts), whereas the first one starts with the batches the loader made during the compilation (up to 2 per
   process), which flatters a short run;
4. bench_data.py: the training loader alone on the CPU (the same dataset, transform and workers, and half as many
   workers; no model), the most the data pipeline delivers, with float32 and with uint8 batches; and one core's
   cost per stage;
5. validate.py over the validation JPEGs with the checkpoint step 3 wrote (its default flags).
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, ROOT)
sys.path.insert(0, HERE)

from common import parse_mode  # noqa: E402
from jpeg_coco import write as write_jpegs  # noqa: E402

VARIANTS = {'default': [], 'float': ['--no-uint8-batches'], 'noaug': ['--no-aug']}


def train_flags(mode):
    """train.py's flags for a bench_train.py mode of the fast base (fast = train.py's defaults)."""
    parsed = parse_mode(mode)
    if parsed['base'] != 'fast':
        raise SystemExit(f"--mode {mode}: give a fast mode (train.py's defaults are the fast base)")
    if parsed['freeze'] or parsed['cdtune'] or parsed['mmtune'] or parsed['stock'] or parsed['memory_budget']:
        raise SystemExit(f"--mode {mode}: train.py has no flag for one of these switches")
    flags = ['--lowmem'] if parsed['lowmem'] else []
    if parsed['compile']:
        flags += ['--compile', '--compile-scope', parsed['scope'],
                  '--compile-mode', parsed['compile_mode'] or 'default']
    return flags


def run(argv, what):
    """Run a command (printed), echoing nothing; -> its stdout. A failure stops the benchmark with its output."""
    print(f"$ {' '.join(argv)}", flush=True)
    start = time.time()
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT)
    if out.returncode:
        raise SystemExit(f"{what} failed (exit status {out.returncode}):\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}")
    print(f"# ({time.time() - start:.0f} s)", flush=True)
    return out.stdout


def synthetic_rate(args):
    out = run([sys.executable, os.path.join(HERE, 'bench_train.py'), '--device', args.device, '--model-name',
               args.model_name, '--image-size', str(args.image_size), '--batch-size', str(args.batch_size),
               '--iters', str(args.iters), '--warmup', str(args.warmup), '--modes', args.mode], 'bench_train.py')
    line = re.search(rf"^# {re.escape(args.mode)}: ([\d.]+) images/s.*first step ([\d.]+) s", out, re.M)
    return float(line.group(1)), float(line.group(2))


def train_rate(args, data, out_dir, extra):
    """-> (images/s and % waiting for data of the last epoch, images/s of the first, seconds of the compiling step)."""
    argv = [sys.executable, os.path.join(ROOT, 'train.py'), '--data', data, '--epochs', str(args.epochs),
            '--output-dir', out_dir, '--device', args.device, '--model-name', args.model_name, '--image-size',
            str(args.image_size), '--batch-size', str(args.batch_size), *train_flags(args.mode), *extra]
    if args.workers is not None:
        argv += ['--workers', str(args.workers)]
    out = run(argv, 'train.py')
    epochs = re.findall(r"\(\d+ s train at ([\d.]+) img/s, (\d+)% waiting for data", out)
    compiled = re.search(r"first step took ([\d.]+) s", out)
    print('\n'.join(line for line in out.splitlines() if line.startswith(('epoch', 'note', 'torch.compile'))))
    return float(epochs[-1][0]), int(epochs[-1][1]), float(epochs[0][0]), float(compiled.group(1)) if compiled else 0.0


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--device', default='cuda')
    parser.add_argument('--model-name', default='tresnet_l')
    parser.add_argument('--image-size', type=int, default=448)
    parser.add_argument('--batch-size', type=int, default=56)
    parser.add_argument('--mode', default='fast+lowmem+regional+cudagraphs', help="bench_train.py's mode")
    parser.add_argument('--steps', type=int, default=200, help="training steps of each of train.py's epochs")
    parser.add_argument('--epochs', type=int, default=2, help="train.py's epochs: the last one's rate is reported")
    parser.add_argument('--distinct', type=int, default=2000, help='JPEGs drawn (the others are hard links)')
    parser.add_argument('--val-images', type=int, default=None,
                        help='validation JPEGs (default: 18 batches; whole batches, as a smaller last batch would '
                             'compile once more)')
    parser.add_argument('--variants', default='default,float', help=f"train.py runs: {', '.join(VARIANTS)}")
    parser.add_argument('--workers', type=int, default=None, help="train.py's --workers (default: its own)")
    parser.add_argument('--synthetic-rate', type=float, default=None, metavar='IMAGES_PER_S',
                        help="--mode's synthetic rate measured earlier in the same session (gpu_all.sh passes "
                             "bench_train.py's): not measured again")
    parser.add_argument('--iters', type=int, default=30, help="bench_train.py's timed steps")
    parser.add_argument('--warmup', type=int, default=5, help="bench_train.py's untimed steps")
    parser.add_argument('--loader-batches', type=int, default=30, help='batches of the loader-only timing')
    parser.add_argument('--work', default=os.path.join(tempfile.gettempdir(), 'bench_jpeg_train'),
                        help='folder for the JPEGs and the runs')
    args = parser.parse_args()
    variants = args.variants.split(',')
    for name in variants:
        if name not in VARIANTS:
            raise SystemExit(f"--variants: unknown {name!r} (known: {', '.join(VARIANTS)})")
    train_flags(args.mode)  # (a bad mode stops the run now)
    args.val_images = args.val_images or 18 * args.batch_size
    start = time.time()
    data = write_jpegs(os.path.join(args.work, f'coco_{args.steps * args.batch_size}_{args.val_images}'),
                       args.steps * args.batch_size, args.val_images, 640, 480, distinct=args.distinct)
    print(f"# {args.steps * args.batch_size} + {args.val_images} JPEGs of 640x480 in {data} "
          f"({time.time() - start:.0f} s)", flush=True)
    rows = []
    if args.synthetic_rate:
        synthetic, first, note = args.synthetic_rate, None, ' (measured before this script, same session)'
    else:
        (synthetic, first), note = synthetic_rate(args), ''
    rows.append((f"bench_train.py {args.mode}, synthetic input{note}", synthetic, None, None, first))
    print(f"# synthetic: {synthetic:.1f} images/s", flush=True)
    best = None
    for name in variants:
        out_dir = os.path.join(args.work, f'run_{name}')
        shutil.rmtree(out_dir, ignore_errors=True)  # (train.py does not overwrite a run)
        rate, waiting, first_epoch, compiled = train_rate(args, data, out_dir, VARIANTS[name])
        rows.append((f"train.py on JPEGs, {name}" + (f" ({' '.join(VARIANTS[name])})" if VARIANTS[name] else ''),
                     rate, waiting, first_epoch, compiled or None))
        print(f"# train.py {name}: {rate:.1f} images/s ({rate / synthetic:.0%} of synthetic), {waiting}% waiting "
              f"for data", flush=True)
        best = best or os.path.join(out_dir, 'best.pth')
    from src_files.cli.flags import default_workers
    workers = default_workers() if args.workers is None else args.workers
    counts = sorted({max(1, workers // 2), workers})  # (how the loader scales with its processes)
    out = run([sys.executable, os.path.join(HERE, 'bench_data.py'), '--sizes', str(args.image_size), '--images', '60',
               '--loader-workers', ','.join(map(str, counts)), '--batch-size', str(args.batch_size), '--batches',
               str(args.loader_batches), '--data', data], 'bench_data.py')
    print(out, flush=True)
    for count, kind, rate in re.findall(r"^loader, .*--workers (\d+), .*, (float32|uint8): ([\d.]+) images/s", out,
                                        re.M):
        rows.append((f"the training loader alone, {count} workers, {kind} (CPU only)", float(rate), None, None,
                     None))
    out = run([sys.executable, os.path.join(ROOT, 'validate.py'), '--model-path', best, '--data', data, '--device',
               args.device], 'validate.py')
    line = out.strip().splitlines()[-1]
    print(line, flush=True)
    rows.append(("validate.py on the validation JPEGs (its defaults)",
                 float(re.search(r"\(([\d.]+) images/s", line).group(1)), None, None, None))
    print(f"# {args.model_name} {args.image_size}px, batch {args.batch_size}, {args.epochs} epochs of {args.steps} "
          f"steps, mode {args.mode}, {os.cpu_count()} CPUs")
    print("| run | images/s | vs synthetic | waiting for data | epoch 1 images/s | first step s |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, rate, waiting, first_epoch, first in rows:
        print(f"| {name} | {rate:.1f} | {rate / synthetic:.2f} | {'-' if waiting is None else f'{waiting}%'} | "
              f"{'-' if first_epoch is None else f'{first_epoch:.1f}'} | {'-' if first is None else f'{first:.1f}'} |")


if __name__ == '__main__':
    main()
