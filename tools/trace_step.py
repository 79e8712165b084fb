"""Which project files one training step runs: forward, loss, backward, optimiser, schedule, EMA.

    python tools/trace_step.py                      # the published recipe, TResNet-M at 64 px, on the CPU
    python tools/trace_step.py --recipe a2 --model-name resnet18

Builds the step as train.py does (settings -> build_optimisation -> train_step), runs one step to warm up, then
traces a second one with sys.settrace and prints every file of this repository whose code ran, with how many
lines of it ran, in two groups: the training step's machinery, and the network itself (src_files/models/,
src_files/ml_decoder/: the forward and backward of the layers). It exits with status 1 when the machinery spans
more than --max-files files (4 by default).
"""
import argparse
import collections
import os
import sys
import threading

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from src_files.models import create_model  # noqa: E402
from src_files.settings import MULTI, OptimSettings  # noqa: E402
from src_files.training.optimisation import build_optimisation  # noqa: E402
from src_files.training.train_loop import Precision, train_step  # noqa: E402

NETWORK = (os.path.join('src_files', 'models') + os.sep, os.path.join('src_files', 'ml_decoder') + os.sep)


def trace(fn):
    """Run fn() under a tracer; -> {path relative to the repository: set of line numbers run}."""
    lines = collections.defaultdict(set)

    def local(frame, event, arg):
        if event == 'line':
            lines[frame.f_code.co_filename].add(frame.f_lineno)
        return local

    def tracer(frame, event, arg):
        path = frame.f_code.co_filename
        if path.startswith(ROOT) and os.sep + 'tools' + os.sep not in path:
            lines[path].add(frame.f_lineno)
            return local
        return None

    sys.settrace(tracer)
    threading.settrace(tracer)
    try:
        fn()
    finally:
        sys.settrace(None)
        threading.settrace(None)
    return {os.path.relpath(path, ROOT): numbers for path, numbers in lines.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    parser.add_argument('--recipe', choices=('published', 'a2'), default='published')
    parser.add_argument('--model-name', default='tresnet_m')
    parser.add_argument('--image-size', type=int, default=64)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--max-files', type=int, default=4)
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    model = create_model(model_name=args.model_name, num_classes=5, image_size=args.image_size,
                         decoder_embedding=64).train()
    optim = OptimSettings(recipe=args.recipe, epochs=1, lr=1e-4, opt='lamb' if args.recipe == 'a2' else None)
    parts = build_optimisation(model, optim, steps_per_epoch=4, task=MULTI, num_classes=5)
    precision = Precision(torch.device('cpu'))
    images = torch.rand(args.batch_size, 3, args.image_size, args.image_size)
    targets = (torch.rand(args.batch_size, 5) > 0.5).float()
    train_step(model, parts, images, targets, precision)  # (first-call set-up stays out of the trace)
    ran = trace(lambda: train_step(model, parts, images, targets, precision))

    machinery = sorted(p for p in ran if not p.startswith(NETWORK))
    network = sorted(p for p in ran if p.startswith(NETWORK))
    print(f"one training step ({args.recipe} recipe, {args.model_name} {args.image_size}px) ran code from:")
    print(f"  the step (forward call, loss, backward, optimiser, schedule, EMA): {len(machinery)} file(s)")
    for path in machinery:
        print(f"    {path}  ({len(ran[path])} lines)")
    print(f"  the network's layers (forward and backward): {len(network)} file(s)")
    for path in network:
        print(f"    {path}  ({len(ran[path])} lines)")
    if len(machinery) > args.max_files:
        print(f"more than {args.max_files} files for the step's machinery")
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
