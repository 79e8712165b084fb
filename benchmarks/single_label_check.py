"""Single-label check: train.py on an ImageFolder set (the default recipe: single-label ASL, Adam, OneCycle, EMA)
against a plain PyTorch cross-entropy loop with the same backbone, head, data, epochs, batch and lr.

    python benchmarks/single_label_check.py                        # both runners, seed 0, on the digits set
    python benchmarks/single_label_check.py --seeds 0-2 --epochs 4 --out runs/single
    python benchmarks/single_label_check.py --data /path/to/imagefolder --model-name resnet18 --device cuda

The default data is the single-label handwritten-digits set (src_files/data/digits.py: one digit per 64 px
image, 10 classes, 600 training / 200 validation images, disjoint scans; built once), trained from scratch
without augmentation (timm's resnet10t with the ML-Decoder head, 6 epochs, batch 32, lr 1e-3, fp32): small
enough for a CPU. Runners:
- engine: `python train.py --data-format imagefolder ... --no-aug --seed S` in a subprocess; the top-1 of its
  model (not of the EMA) per epoch is read from metrics.csv;
- plain: torchvision's ImageFolder, the same model (create_model), Adam (weight decay 1e-4 on every weight),
  OneCycle (pct_start 0.2, stepped per batch), nn.CrossEntropyLoss, no EMA; top-1 after each epoch.
Each finished run appends a JSON line to OUT/results.jsonl (a run already there is not repeated); the summary
prints the best top-1 per runner (mean, sd, min, max over seeds).
"""
import argparse
import csv
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, 'benchmarks'))

from seed_study import run_study  # noqa: E402 (after the path set-up)


def plain_loop(args, seed):
    """A plain PyTorch cross-entropy loop -> the model's top-1 (%) after each epoch."""
    import torch
    from torch.utils.data import DataLoader
    from torchvision import datasets, transforms
    from src_files.models import create_model

    transform = transforms.Compose([transforms.Resize((args.image_size, args.image_size)), transforms.ToTensor()])
    train_set = datasets.ImageFolder(os.path.join(args.data, 'train'), transform)
    val_set = datasets.ImageFolder(os.path.join(args.data, 'val'), transform)
    assert val_set.classes == train_set.classes
    device = torch.device(args.device)
    torch.manual_seed(seed)
    model = create_model(model_name=args.model_name, num_classes=len(train_set.classes),
                         image_size=args.image_size).to(device)
    loader = DataLoader(train_set, batch_size=args.batch_size, shuffle=True, num_workers=args.workers)
    val_loader = DataLoader(val_set, batch_size=args.batch_size, num_workers=args.workers)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr, weight_decay=1e-4)
    pct_start = 0.2 if len(loader) * args.epochs != 5 else 0.21  # (OneCycleLR divides by zero at exactly 1 step)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, steps_per_epoch=len(loader),
                                                    epochs=args.epochs, pct_start=pct_start)
    criterion = torch.nn.CrossEntropyLoss()
    curve = []
    for _ in range(args.epochs):
        model.train()
        for images, labels in loader:
            loss = criterion(model(images.to(device)), labels.to(device))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            scheduler.step()
        model.eval()
        correct = 0
        with torch.no_grad():
            for images, labels in val_loader:
                correct += int((model(images.to(device)).argmax(1).cpu() == labels).sum())
        curve.append(100.0 * correct / len(val_set))
    return curve


def engine_run(args, seed):
    """train.py in a subprocess -> the model's top-1 (%) after each epoch (from its metrics.csv)."""
    slug = ''.join(c if c.isalnum() else '_' for c in args.engine_flags).strip('_')
    out_dir = os.path.join(args.out, f'engine{"_" + slug if slug else ""}_seed{seed}')
    cmd = [sys.executable, os.path.join(ROOT, 'train.py'), '--data', args.data, '--data-format', 'imagefolder',
           '--model-name', args.model_name, '--image-size', str(args.image_size), '--epochs', str(args.epochs),
           '--batch-size', str(args.batch_size), '--lr', str(args.lr), '--no-aug', '--seed', str(seed),
           '--workers', str(args.workers), '--device', args.device, '--amp', 'off', '--output-dir', out_dir]
    cmd += args.engine_flags.split()
    if os.path.isdir(out_dir):  # an interrupted check: continue the run (resume is exact)
        cmd.append('--resume')
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out_dir, 'metrics.csv')) as f:
        return [float(row['top1']) for row in csv.DictReader(f)]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0], epilog=__doc__.split('\n', 2)[2],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--data', default='', help="ImageFolder-layout folder (default: the digits set)")
    parser.add_argument('--digits', default='600,200', metavar='TRAIN,VAL',
                        help="images of the default digits set (default: 600,200)")
    parser.add_argument('--seeds', default='0', help="seeds, e.g. 0-2 or 0,3,5 (default 0)")
    parser.add_argument('--runners', default='engine,plain', help="engine, plain or both (default both)")
    parser.add_argument('--model-name', default='resnet10t')
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--epochs', type=int, default=6)
    parser.add_argument('--batch-size', type=int, default=32)
    parser.add_argument('--lr', type=float, default=1e-3)
    parser.add_argument('--workers', type=int, default=2)
    parser.add_argument('--device', default='cpu', help="cpu or cuda (both runners train in fp32 there)")
    parser.add_argument('--out', default='outputs/single_label_check', help="folder for results.jsonl and runs")
    parser.add_argument('--engine-flags', default='', metavar='FLAGS',
                        help="more train.py flags for the engine runner, e.g. '--loss ce --smoothing 0' (its runs are "
                             "recorded as 'engine FLAGS')")
    args = parser.parse_args(argv)
    if not args.data:
        from src_files.data.digits import digits_imagefolder_root
        args.data = digits_imagefolder_root(None, *map(int, args.digits.split(',')))
    runners = {'engine': engine_run, 'plain': plain_loop}
    name = {'engine': f'engine {args.engine_flags}'.strip(), 'plain': 'plain'}
    run_study(args, {name[runner]: runners[runner] for runner in args.runners.split(',')})


if __name__ == '__main__':
    main()
