"""Shared set-up of the training/inference benchmarks: the two modes, timing, memory, the result table.

Modes (each measured in the same run, on the same weights):
- published: what the published scripts did (NCHW, eager, per-group-loop head, fp16 autocast + loss scaling
  for training, folded norms + fp16 weights for inference).
- fast: our defaults on CUDA (channels-last, bf16 autocast where supported, batched head + fused attention,
  fused Adam, cudnn autotuning), plus torch.compile and the memory-saving norm backward when asked.
"""
import argparse
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.ml_decoder import set_head_impl  # noqa: E402
from src_files.models import create_model  # noqa: E402


def add_common_args(parser, batch_size):
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu')
    parser.add_argument('--model-name', default='tresnet_l')
    parser.add_argument('--image-size', type=int, default=448)
    parser.add_argument('--batch-size', type=int, default=batch_size)
    parser.add_argument('--num-classes', type=int, default=80)
    parser.add_argument('--num-of-groups', type=int, default=-1)
    parser.add_argument('--iters', type=int, default=20, help='timed steps per mode')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps per mode (after compilation)')
    parser.add_argument('--modes', default='published,fast', help='comma-separated modes to run')
    parser.add_argument('--compile', action=argparse.BooleanOptionalAction, default=False,
                        help='torch.compile the model in fast mode (compile time is reported separately)')
    parser.add_argument('--compile-mode', default=None, help="torch.compile mode (None = default)")


def machine(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads'


def fast_amp_dtype(device):
    if device.type != 'cuda':
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def build_model(args, device, mode):
    torch.manual_seed(0)
    model = create_model(model_name=args.model_name, num_classes=args.num_classes,
                         num_of_groups=args.num_of_groups, image_size=args.image_size)
    set_head_impl(model, 'published' if mode == 'published' else 'fast')
    model = model.to(device)
    if mode != 'published' and device.type == 'cuda':
        model = model.to(memory_format=torch.channels_last)
        torch.backends.cudnn.benchmark = True
    else:
        torch.backends.cudnn.benchmark = False
    return model


def sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def reset_memory(device):
    if device.type == 'cuda':
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_gib(device):
    return torch.cuda.max_memory_allocated(device) / 2 ** 30 if device.type == 'cuda' else float('nan')


def time_loop(step, device, warmup, iters):
    """-> (seconds of the first call (compilation included), seconds per timed call)."""
    sync(device)
    start = time.perf_counter()
    step()
    sync(device)
    first = time.perf_counter() - start
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(iters):
        step()
    sync(device)
    return first, (time.perf_counter() - start) / iters


def print_table(title, rows, baseline='published'):
    """rows: {mode: dict(images_per_s, peak_gib, first_step_s, note)}."""
    print(title)
    print(f"| {'mode':32} | {'images/s':>9} | {'ratio':>6} | {'peak GiB':>8} | {'first step s':>12} |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 8}|{'-' * 10}|{'-' * 14}|")
    base = rows.get(baseline, {}).get('images_per_s')
    for mode, r in rows.items():
        ratio = f"{r['images_per_s'] / base:5.2f}x" if base else '   n/a'
        print(f"| {mode:32} | {r['images_per_s']:9.1f} | {ratio:>6} | {r['peak_gib']:8.2f} | "
              f"{r['first_step_s']:12.1f} |")
    sys.stdout.flush()
