"""One norm-activation layer, forward + backward: the standard path against the memory-saving one (--lowmem),
same run, same input.

    python benchmarks/bench_norm.py                                   # CUDA if available: bf16, channels-last
    python benchmarks/bench_norm.py --device cpu --dtype fp32

The memory-saving path keeps only the layer's output and recovers the input from it in the backward pass;
this measures what that recovery costs in eager mode.
"""
import argparse
import os
import sys

import torch

from common import HelpFormatter, machine, sync, time_loop

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.models.tresnet import to_lowmem  # noqa: E402
from src_files.models.tresnet.layers import NormAct2d  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--shape', default='56,256,112,112', help='N,C,H,W (default: TResNet-L 448, stage 1)')
    parser.add_argument('--dtype', choices=['fp32', 'bf16', 'fp16'], default=None,
                        help='activation dtype (default: bf16 on CUDA, fp32 on CPU); parameters stay fp32')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    args = parser.parse_args()
    device = torch.device(args.device)
    dtype_name = args.dtype or ('bf16' if device.type == 'cuda' else 'fp32')
    dtype = {'fp32': torch.float32, 'bf16': torch.bfloat16, 'fp16': torch.float16}[dtype_name]
    n, c, h, w = (int(v) for v in args.shape.split(','))
    memory_format = torch.channels_last if device.type == 'cuda' else torch.contiguous_format
    x = torch.randn(n, c, h, w, device=device).to(dtype).contiguous(memory_format=memory_format)
    grad = torch.randn_like(x)
    norm = NormAct2d(c).to(device).train()
    times = {}
    for name, lowmem in (('standard', False), ('memory-saving', True)):
        to_lowmem(norm, lowmem)

        def step():
            xi = x.detach().requires_grad_()
            norm(xi).backward(grad)

        _, per_step = time_loop(step, device, args.warmup, args.iters)
        times[name] = per_step * 1e3
    sync(device)
    print(f'# NormAct2d(leaky_relu) fwd+bwd, {tuple(x.shape)} {dtype_name}, {machine(device)}, torch {torch.__version__}')
    print(f"| {'path':14} | {'ms':>8} | {'vs standard':>11} |")
    print(f"|{'-' * 16}|{'-' * 10}|{'-' * 13}|")
    for name, ms in times.items():
        print(f"| {name:14} | {ms:8.2f} | {ms / times['standard']:10.2f}x |")


if __name__ == '__main__':
    main()
