"""Training throughput (images/s) and peak GPU memory: the published recipe against our fast path, same run.

    python benchmarks/bench_train.py --model-name tresnet_l --image-size 448 --batch-size 56 --compile
    python benchmarks/bench_train.py --modes published,fast+compile,fast+lowmem+compile --profile 3
    python benchmarks/bench_train.py --device cpu --model-name tresnet_m --image-size 64 --batch-size 2 --iters 2

A step is what train.py does per batch: forward, ASL loss, backward (with loss scaling in fp16), Adam step,
OneCycle step and the model-EMA update. Inputs are synthetic unless --data points at a COCO folder.
"activations GiB" is the memory held between the end of the forward pass and the backward (CUDA only).
"""
import argparse
import itertools
import re
import warnings

import torch

from common import (HelpFormatter, add_common_args, autotune_seconds, build_model, compile_config, compile_model,
                    compiled_graph_count, expand_modes, fast_amp_dtype, machine, parse_mode, peak_memory_gib,
                    print_progress, print_table, reset_memory, time_loop, wants_profile)
from profile_summary import csv_path_for, profile_step
from src_files.helper_functions.ema import ModelEma
from src_files.helper_functions.optim import add_weight_decay
from src_files.loss_functions.losses import AsymmetricLoss
from src_files.models.compile import uses_cuda_graphs
from src_files.models.tresnet import to_lowmem


def batches(args, device):
    if not args.data:
        g = torch.Generator(device='cpu').manual_seed(0)
        x = torch.rand(args.batch_size, 3, args.image_size, args.image_size, generator=g).to(device)
        y = (torch.rand(args.batch_size, args.num_classes, generator=g) < 0.1).float().to(device)
        return itertools.repeat((x, y))
    from src_files.data import coco_datasets
    from src_files.helper_functions.augmentations import to_float, train_transform, val_transform
    uint8 = device.type == 'cuda'  # (as train.py's --uint8-batches)
    train_set, _ = coco_datasets(args.data, train_transform(args.image_size, uint8=uint8),
                                 val_transform(args.image_size))
    loader = torch.utils.data.DataLoader(train_set, batch_size=args.batch_size, shuffle=True, drop_last=True,
                                         num_workers=args.workers, pin_memory=device.type == 'cuda',
                                         persistent_workers=args.workers > 0)
    return ((to_float(x.to(device, non_blocking=True)), y.to(device, non_blocking=True))
            for _ in itertools.count() for x, y in loader)


def run_mode(args, device, name, published_images_per_s=None):
    mode = parse_mode(name, args.compile_mode)
    if mode['freeze']:
        raise SystemExit(f'{name}: freeze is for inference (bench_infer.py)')
    fast = mode['base'] == 'fast'
    model = build_model(args, device, mode).train()
    if mode['lowmem']:
        to_lowmem(model)
    amp_dtype = fast_amp_dtype(device) if fast else (torch.float16 if device.type == 'cuda' else None)
    scaler = torch.amp.GradScaler(device.type, enabled=amp_dtype == torch.float16)
    optimizer = torch.optim.Adam(add_weight_decay(model, 1e-4), lr=1e-4, weight_decay=0,
                                 **({'fused': True} if fast and device.type == 'cuda' else {}))
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=1e-4, total_steps=10 ** 6, pct_start=0.2)
    ema = ModelEma(model, 0.9997)
    criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)
    forward = compile_model(model, mode)
    data = batches(args, device)
    memory_format = torch.channels_last if fast and device.type == 'cuda' else torch.contiguous_format
    activations = []

    cuda_graphs = uses_cuda_graphs(mode['compile_mode'])

    def step(measure=False):
        x, y = next(data)
        x = x.contiguous(memory_format=memory_format)
        optimizer.zero_grad(set_to_none=True)
        if cuda_graphs:  # as train.py does
            torch.compiler.cudagraph_mark_step_begin()
        before = torch.cuda.memory_allocated(device) if measure else 0
        with torch.autocast(device.type, dtype=amp_dtype, enabled=amp_dtype is not None):
            logits = forward(x)
        loss = criterion(logits.float(), y)
        if measure:
            activations.append((torch.cuda.memory_allocated(device) - before) / 2 ** 30)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        scheduler.step()
        ema.update(model)

    reset_memory(device)
    graphs_before, autotune_before = compiled_graph_count(), autotune_seconds()
    first, per_step = time_loop(step, device, args.warmup, args.iters, compile_config(mode))
    result = dict(images_per_s=args.batch_size / per_step, peak_gib=peak_memory_gib(device), first_step_s=first,
                  graphs=compiled_graph_count() - graphs_before if mode['compile'] else None,
                  autotune_s=autotune_seconds() - autotune_before)
    if device.type == 'cuda' and not cuda_graphs:  # CUDA graphs allocate from their own pool, once
        step(measure=True)
        result['activations_gib'] = activations[-1]
    if wants_profile(args, fast, result['images_per_s'], published_images_per_s):
        csv_path = csv_path_for(args.profile_dir, 'train', args.model_name, args.image_size, f'b{args.batch_size}', name)
        profile_step(step, device, args.profile, title=f'train {name}', timed_step_ms=per_step * 1e3, csv_path=csv_path)
    del model, optimizer, ema, forward
    return result


def main():
    # With fp16 loss scaling the first optimizer step is skipped (inf check); the scheduler's warning is noise here.
    warnings.filterwarnings('ignore', message=re.escape('Detected call of `lr_scheduler.step()` before'))
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=HelpFormatter)
    add_common_args(parser, batch_size=56)
    parser.add_argument('--data', default='', help='COCO folder: time the real data pipeline instead of synthetic')
    parser.add_argument('--workers', type=int, default=8)
    parser.add_argument('--lowmem', action=argparse.BooleanOptionalAction, default=False,
                        help='also run fast mode with the memory-saving backward (train.py --lowmem)')
    args = parser.parse_args()
    device = torch.device(args.device)
    rows = {}
    for mode in expand_modes(args):
        rows[mode] = run_mode(args, device, mode, rows.get('published', {}).get('images_per_s'))
        print_progress(mode, rows[mode])
    print_table(f'# train {args.model_name} {args.image_size}px, batch {args.batch_size}, {args.num_classes} classes '
                f'({args.num_of_groups} groups), {machine(device)}, torch {torch.__version__}', rows)


if __name__ == '__main__':
    main()
