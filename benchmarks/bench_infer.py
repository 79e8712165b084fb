"""Inference throughput (images/s): the published recipe (folded norms, fp16, NCHW, eager, per-group-loop head)
against our fast path (folded norms, channels-last, batched head + fused attention, half precision,
optionally torch.compile / CUDA graphs), in the same run, with each mode's logit difference to published.

    python benchmarks/bench_infer.py --model-name tresnet_l --image-size 448 --batch-size 64 --compile
    python benchmarks/bench_infer.py --modes published,fast+compile,fast+cudagraphs,fast+cudagraphs+cdtune
    python benchmarks/bench_infer.py --device cpu --model-name tresnet_m --image-size 64 --batch-size 2 --iters 2 \
        --modes published,fast

On a CPU without --modes it compares the CPU inference paths instead (cpu_paths.py: published, fp32,
channels-last, bf16, ONNX Runtime fp32 and int8) at --batch-sizes, and with --model-path and --data also their
mAP (or top-1) on the validation set against fp32:

    python benchmarks/bench_infer.py --device cpu --model-name tresnet_m --image-size 224
    python benchmarks/bench_infer.py --device cpu --model-path best.pth --data /path/to/coco --batch-sizes 16
"""
import argparse

import torch

from common import (HelpFormatter, add_common_args, autotune_seconds, build_model, compile_config, compile_model,
                    compiled_graph_count, expand_modes, machine, parse_mode, peak_memory_gib, print_progress,
                    print_table, reset_memory, time_loop, wants_profile)
import cpu_compare
from profile_summary import csv_path_for, profile_step
from src_files.models import fold_norm_layers


def run_mode(args, device, name, x, published_images_per_s=None):
    mode = parse_mode(name, args.compile_mode)
    fast = mode['base'] == 'fast'
    model = fold_norm_layers(build_model(args, device, mode))
    dtype = torch.float32
    if device.type == 'cuda':
        dtype = torch.float16 if not fast else {'fp16': torch.float16, 'bf16': torch.bfloat16}[mode['half'] or args.half]
    model = model.to(dtype)
    forward = compile_model(model, mode)
    memory_format = torch.channels_last if fast and device.type == 'cuda' else torch.contiguous_format
    x = x.to(dtype).contiguous(memory_format=memory_format)
    outputs = []

    @torch.inference_mode()
    def step():
        outputs[:] = [forward(x)]

    reset_memory(device)
    graphs_before, autotune_before = compiled_graph_count(), autotune_seconds()
    first, per_step = time_loop(step, device, args.warmup, args.iters, compile_config(mode))
    result = dict(images_per_s=args.batch_size / per_step, peak_gib=peak_memory_gib(device), first_step_s=first,
                  graphs=compiled_graph_count() - graphs_before if mode['compile'] else None,
                  autotune_s=autotune_seconds() - autotune_before)
    logits = outputs[0].float().cpu()  # CUDA graphs reuse their output buffer: copy before profiling
    if wants_profile(args, fast, result['images_per_s'], published_images_per_s):
        csv_path = csv_path_for(args.profile_dir, 'infer', args.model_name, args.image_size, f'b{args.batch_size}', name)
        profile_step(step, device, args.profile, title=f'infer {name}', timed_step_ms=per_step * 1e3, csv_path=csv_path)
    return result, logits


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_common_args(parser, batch_size=64)
    parser.add_argument('--half', choices=['fp16', 'bf16'], default='fp16',
                        help='fast-mode precision on CUDA (published is fp16)')
    cpu_compare.add_args(parser)
    parser.set_defaults(modes=None)
    args = parser.parse_args()
    device = torch.device(args.device)
    if args.modes is None and device.type == 'cpu':  # the CPU paths of validate.py / infer.py (cpu_compare.py)
        return cpu_compare.main(args)
    args.modes = args.modes or 'published,fast'
    x = torch.rand(args.batch_size, 3, args.image_size, args.image_size,
                   generator=torch.Generator().manual_seed(0)).to(device)
    rows, logits = {}, {}
    for mode in expand_modes(args):
        rows[mode], logits[mode] = run_mode(args, device, mode, x, rows.get('published', {}).get('images_per_s'))
        print_progress(mode, rows[mode])
    print_table(f'# infer {args.model_name} {args.image_size}px, batch {args.batch_size}, {args.num_classes} classes '
                f'({args.num_of_groups} groups), {machine(device)}, torch {torch.__version__}', rows)
    if 'published' in logits:
        ref = logits['published']
        for mode, out in logits.items():
            if mode != 'published':
                print(f'logits {mode} vs published: relative difference {((out - ref).norm() / ref.norm()):.2e}')


if __name__ == '__main__':
    main()
