"""Does torch.compile see each mode's training forward as one graph? Prints graphs, breaks and their reasons.

    python benchmarks/graph_breaks.py --modes fast,fast+lowmem
    python benchmarks/graph_breaks.py --device cpu --model-name tresnet_m --image-size 64 --batch-size 2

A graph break splits the compiled model into pieces run one after another with eager code between them, and
TResNet's repeated layers then recompile until dynamo's recompile limit sends the rest back to eager: whole-model
compilation loses most of its speed (seen on an H100 with PyTorch 2.11: 312 instead of 672 images/s). Cheap to
run first on a new PyTorch or device. Exits with status 1 if any mode breaks.
"""
import argparse
import sys

import torch
import torch._dynamo

from common import HelpFormatter, add_model_args, build_model, fast_amp_dtype, parse_mode
from src_files.models.tresnet import to_lowmem


def count_graphs(args, device, name):
    mode = parse_mode(name)
    if mode['base'] != 'fast':
        raise SystemExit(f'{name}: only fast modes are compiled')
    model = build_model(args, device, mode).train()
    to_lowmem(model, mode['lowmem'])
    amp_dtype = fast_amp_dtype(device)
    memory_format = torch.channels_last if device.type == 'cuda' else torch.contiguous_format
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size, device=device)
    torch._dynamo.reset()
    with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
        explanation = torch._dynamo.explain(model)(x.contiguous(memory_format=memory_format))
    return explanation


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_model_args(parser, batch_size=2)
    parser.add_argument('--modes', default='fast,fast+lowmem', help='comma-separated training modes to check')
    parser.set_defaults(model_name='tresnet_m', image_size=224)
    args = parser.parse_args()
    device = torch.device(args.device)
    broken = False
    for name in args.modes.split(','):
        explanation = count_graphs(args, device, name)
        print(f'# {name}: {explanation.graph_count} graphs, {explanation.graph_break_count} breaks '
              f'({args.model_name} {args.image_size}px, {device.type}, torch {torch.__version__})')
        for reason in explanation.break_reasons:
            where = reason.user_stack[-1] if reason.user_stack else None
            location = f'{where.filename}:{where.lineno}' if where is not None else '?'
            print(f'  break at {location}: {reason.reason.splitlines()[0][:300]}')
        broken |= explanation.graph_break_count > 0
    sys.exit(1 if broken else 0)


if __name__ == '__main__':
    main()
