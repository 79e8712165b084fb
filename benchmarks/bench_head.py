"""Time the ML-Decoder head, forward + backward, against the published per-group loop in the same run.

    python benchmarks/bench_head.py                          # CUDA if available, batch 56
    python benchmarks/bench_head.py --device cpu --batch-size 2

Both implementations hold the same weights and give the same numbers (checked here before timing).
"""
import argparse
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.ml_decoder import MLDecoder, set_head_impl  # noqa: E402
from common import HelpFormatter  # noqa: E402

CASES = [  # name, classes, groups, map size
    ('80 classes, 14x14', 80, -1, 14),
    ('9605 classes / 200 groups, 7x7', 9605, 200, 7),
]


def time_step(head, x, amp_dtype, iters, warmup):
    device = x.device

    def step():
        head.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            out = head(x)
        out.float().sum().backward()

    for _ in range(warmup):
        step()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(iters):
        step()
    if device.type == 'cuda':
        torch.cuda.synchronize()
    return (time.perf_counter() - start) / iters * 1000


def machine(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()}, {torch.get_num_threads()} threads'


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--batch-size', type=int, default=56)
    parser.add_argument('--amp', choices=['fp16', 'bf16', 'off'], default=None,
                        help='autocast dtype (default: fp16 on CUDA, as the published recipe; off on CPU)')
    parser.add_argument('--iters', type=int, default=20)
    parser.add_argument('--warmup', type=int, default=3)
    parser.add_argument('--cases', default='0,1', help='which cases to run (indices into the table)')
    args = parser.parse_args()
    device = torch.device(args.device)
    amp = args.amp or ('fp16' if device.type == 'cuda' else 'off')
    amp_dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'off': None}[amp]

    print(f'# ML-Decoder head fwd+bwd, batch {args.batch_size}, amp {amp}, {machine(device)}, torch {torch.__version__}')
    print(f"| {'case':32} | {'per-group loop (ms)':>19} | {'batched (ms)':>12} | {'speed-up':>8} |")
    print(f"|{'-' * 34}|{'-' * 21}|{'-' * 14}|{'-' * 10}|")
    for name, classes, groups, size in [CASES[int(i)] for i in args.cases.split(',')]:
        torch.manual_seed(0)
        head = MLDecoder(classes, num_of_groups=groups).to(device).train()
        x = torch.randn(args.batch_size, 2048, size, size, device=device)
        with torch.no_grad():
            head.eval()
            ref = set_head_impl(head, 'published')(x)
            out = set_head_impl(head, 'fast')(x)
            assert torch.allclose(out, ref, rtol=1e-3, atol=1e-3), 'implementations disagree'
            head.train()
        times = {}
        for impl in ('published', 'fast'):
            set_head_impl(head, impl)
            times[impl] = time_step(head, x, amp_dtype, args.iters, args.warmup)
        print(f"| {name:32} | {times['published']:19.2f} | {times['fast']:12.2f} | "
              f"{times['published'] / times['fast']:7.1f}x |")


if __name__ == '__main__':
    main()
