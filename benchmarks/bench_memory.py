"""Activation memory of a training step, on any device: the bytes autograd keeps for the backward pass.

    python benchmarks/bench_memory.py --model-name tresnet_l --image-size 448 --batch-size 2 --device cpu

Counted with torch.autograd.graph.saved_tensors_hooks (eager modes only: a compiled graph keeps its own), each
storage once, parameters left out. It scales with batch x pixels, so a CPU at batch 2 predicts the GPU's
activation memory at batch 56 (x28; in fp32 here, half of it in bf16/fp16).
"""
import argparse

import torch

from common import build_model, parse_mode
from src_files.models.tresnet.layers import set_memory_efficient_norms


def saved_bytes(model, x):
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    kept = {}

    def pack(t):
        storage = t.untyped_storage()
        if storage.data_ptr() not in params:
            kept[storage.data_ptr()] = storage.nbytes()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = model(x)
    out.float().sum().backward()
    return sum(kept.values())


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument('--device', default='cpu')
    parser.add_argument('--model-name', default='tresnet_l')
    parser.add_argument('--image-size', type=int, default=448)
    parser.add_argument('--batch-size', type=int, default=2)
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--num-of-groups', type=int, default=-1)
    parser.add_argument('--modes', default='published,fast,fast+lowmem', help='eager modes (see common.py)')
    args = parser.parse_args()
    device = torch.device(args.device)
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size,
                   generator=torch.Generator().manual_seed(0)).to(device)
    print(f'# saved for backward, {args.model_name} {args.image_size}px, batch {args.batch_size}, fp32, '
          f'torch {torch.__version__}')
    print(f"| {'mode':20} | {'MiB':>9} | {'MiB per image':>13} |")
    print(f"|{'-' * 22}|{'-' * 11}|{'-' * 15}|")
    for name in args.modes.split(','):
        mode = parse_mode(name)
        if mode['compile']:
            raise SystemExit(f'{name}: only eager modes can be counted here')
        model = build_model(args, device, mode).train()
        set_memory_efficient_norms(model, mode['lowmem'])
        mib = saved_bytes(model, x) / 2 ** 20
        print(f'| {name:20} | {mib:9.1f} | {mib / args.batch_size:13.1f} |', flush=True)


if __name__ == '__main__':
    main()
