"""How reliably training learns: best mAP over many seeds, train.py's engine against the plain published loop.

    python benchmarks/seed_study.py --seeds 0-7                    # both runners, on the handwritten-digits set
    python benchmarks/seed_study.py --seeds 0-3 --runners plain --epochs 3 --out runs/seeds
    python benchmarks/seed_study.py --seeds 0-15 --device cuda          # on a GPU: about a minute a run

The default data is the handwritten-digits multi-label set (src_files/data/digits.py: 1,200 / 300 images of
64 px, 10 classes, built once); the default recipe is the demo's (TResNet-M from scratch, 6 epochs, batch 32,
lr 1e-3, no augmentation, fp32 on --device). Runners, alternated seed by seed so a study cut short stays balanced:
- engine: `python train.py ... --seed S` in a subprocess; its best mAP of the model (not of the EMA) is read
  from the run's metrics.csv;
- plain: the published training loop, written out below over this project's modules;
- published: the same loop over the published model's construction (published_model.py: the published module
  classes and initialisation order, InPlaceABN's own backward, torch's MultiheadAttention and the per-group loop in
  the head). With the same seed it starts from the same weights as `plain` and shuffles the data the same way.
Each finished run appends one JSON line to OUT/results.jsonl (a study that is stopped keeps its runs, and a
run already in that file is not repeated); the summary prints the mean, sd, min and max per runner.
"""
import argparse
import csv
import json
import math
import os
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def read_results(path):
    """The runs a study's results.jsonl holds (none if it does not exist yet)."""
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def parse_seeds(text):
    """'0-7' or '0,3,5' -> list of ints."""
    seeds = []
    for part in text.split(','):
        lo, _, hi = part.partition('-')
        seeds += list(range(int(lo), int(hi or lo) + 1))
    return seeds


def plain_loop(args, seed, published_model=False):
    """The published loop: -> list of the model's mAP after each epoch. Over this project's model, or with
    published_model=True over the published model's construction (published_model.py)."""
    import torch
    from torch.utils.data import DataLoader
    from src_files.data import coco_datasets
    from src_files.distributed import DistInfo
    from src_files.evaluation.predict import predict
    from src_files.helper_functions.augmentations import train_transform, val_transform
    from src_files.helper_functions.ema import ModelEma
    from src_files.helper_functions.metrics import mAP
    from src_files.helper_functions.optim import add_weight_decay
    from src_files.loss_functions.losses import AsymmetricLoss
    from src_files.models import create_model

    train_set, val_set = coco_datasets(args.data, train_transform(args.image_size, augment=False),
                                       val_transform(args.image_size))
    device = torch.device(args.device)
    torch.manual_seed(seed)
    if published_model:
        from published_model import published_tresnet
        model = published_tresnet(args.model_name, num_classes=len(train_set.class_names)).to(device)
    else:
        model = create_model(model_name=args.model_name, num_classes=len(train_set.class_names),
                             image_size=args.image_size).to(device)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    ema = ModelEma(model, 0.9997)
    criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)
    optimizer = torch.optim.Adam(add_weight_decay(model, 1e-4), lr=args.lr, weight_decay=0)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, steps_per_epoch=len(loader),
                                                    epochs=args.epochs, pct_start=0.2)
    scores = []
    for _ in range(args.epochs):
        for images, targets in loader:
            loss = criterion(model(images.to(device)).float(), targets.to(device))
            model.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
            ema.update(model)
        model.eval()
        preds, targets = predict(model, val_set, DistInfo(device=device), args.batch_size, args.workers)
        scores.append(mAP(targets, preds))
        model.train()
    return scores


def engine_run(args, seed):
    """train.py in a subprocess -> list of the model's mAP after each epoch (from its metrics.csv)."""
    out_dir = os.path.join(args.out, f'engine_seed{seed}')
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), '--data', args.data, '--model-name', args.model_name,
           '--image-size', str(args.image_size), '--epochs', str(args.epochs), '--batch-size', str(args.batch_size),
           '--lr', str(args.lr), '--no-aug', '--seed', str(seed), '--workers', str(args.workers),
           '--device', args.device, '--amp', 'off', '--output-dir', out_dir]
    if os.path.isdir(out_dir):  # an interrupted study: continue the run (resume is exact)
        cmd.append('--resume')
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out_dir, 'metrics.csv')) as f:
        return [float(row['mAP']) for row in csv.DictReader(f)]


def summary(rows):
    lines = []
    for runner in sorted({r['runner'] for r in rows}):
        best = [r['best'] for r in rows if r['runner'] == runner]
        mean = sum(best) / len(best)
        sd = math.sqrt(sum((b - mean) ** 2 for b in best) / (len(best) - 1)) if len(best) > 1 else float('nan')
        lines.append(f"{runner:7s} n={len(best):2d} mean {mean:6.2f} sd {sd:5.2f} min {min(best):6.2f} "
                     f"max {max(best):6.2f}  [{', '.join(f'{b:.2f}' for b in best)}]")
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default='', help="COCO-layout folder (default: the handwritten-digits set)")
    parser.add_argument('--seeds', default='0-7', help="seeds, e.g. 0-7 or 0,3,5 (default 0-7)")
    parser.add_argument('--runners', default='engine,plain',
                        help="comma-separated: engine, plain, published (default engine,plain)")
    parser.add_argument('--model-name', default='tresnet_m')
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--device', default='cpu', help="cpu or cuda (both runners train in fp32 there)")
    parser.add_argument('--out', default='outputs/seed_study', help="folder for results.jsonl and the runs")
    args = parser.parse_args(argv)
    if not args.data:
        from src_files.data.digits import digits_coco_root
        args.data = digits_coco_root()
    runners = {'engine': engine_run, 'plain': plain_loop,
               'published': lambda args, seed: plain_loop(args, seed, published_model=True)}
    run_study(args, {name: runners[name] for name in args.runners.split(',')})


def run_study(args, runners):
    """Run each of `runners` (name -> function(args, seed) -> mAP after each epoch) for each of args.seeds,
    appending one JSON line per finished run to args.out/results.jsonl and skipping runs already there; then print
    the summary."""
    os.makedirs(args.out, exist_ok=True)
    results = os.path.join(args.out, 'results.jsonl')
    rows = read_results(results)
    for seed in parse_seeds(args.seeds):
        for name, runner in runners.items():
            if any(r['runner'] == name and r['seed'] == seed for r in rows):
                continue
            t0 = time.time()
            curve = runner(args, seed)
            row = {'runner': name, 'seed': seed, 'best': max(curve), 'curve': [round(c, 2) for c in curve],
                   'seconds': round(time.time() - t0)}
            rows.append(row)
            with open(results, 'a') as f:
                f.write(json.dumps(row) + '\n')
            print(json.dumps(row), flush=True)
    print(summary(rows))

if __name__ == '__main__':
    main()
