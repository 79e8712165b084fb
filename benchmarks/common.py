"""Shared set-up of the training/inference benchmarks: the modes, timing, memory, the result table.

A mode is a base and optional `+` switches, e.g. `fast+lowmem+compile`; every mode of a run is measured in
the same process, on the same weights.
- published: what the published scripts did (NCHW, eager, per-group-loop head, fp16 autocast + loss scaling
  for training, folded norms + fp16 weights for inference).
- fast: our defaults on CUDA (channels-last, bf16 autocast where supported, batched head + fused attention,
  fused Adam, cudnn autotuning).
Switches (fast only): lowmem (the memory-saving backward of train.py --lowmem), compile (torch.compile of the
whole model, default mode or --compile-mode), regional (torch.compile block by block, as train.py --compile
--compile-scope regional does), cudagraphs (compile with mode reduce-overhead), autotune (compile with mode
max-autotune-no-cudagraphs; with cudagraphs, max-autotune), budget<F> (compile with activation_memory_budget F:
recompute instead of saving, e.g. budget0.5), freeze (compile with inductor's freezing: weights become
constants, inference only), cdtune (compile with inductor's coordinate-descent tuning: each Triton pointwise and
reduction kernel's block sizes tuned on the device, the convolutions left to cuDNN), mmtune (compile with
src_files/models/compile.py's GEMM_AUTOTUNE_OPTIONS: 1x1 convolutions as matrix products, cuBLAS or Triton
templates that apply the following bias, activation and residual as they write, chosen by measurement), stock
(compile with inductor's own store-vs-recompute thresholds instead of src_files/models/compile.py's
RECOMPUTE_OPTIONS), fp16 / bf16 (inference precision).
"""
import argparse
import contextlib
import os
import platform
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from src_files.ml_decoder import set_head_impl  # noqa: E402
from src_files.models import create_model  # noqa: E402
from src_files.models.compile import compile_model as compile_model_for_speed  # noqa: E402
from src_files.models.compile import compiled_graph_count  # noqa: E402,F401 (re-exported to the scripts)


class HelpFormatter(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """--help keeps the docstring's usage lines as written and shows every flag's default."""


def add_model_args(parser, batch_size):
    parser.add_argument('--device', default='cuda' if torch.cuda.is_available() else 'cpu', help='cpu, cuda or cuda:N')
    parser.add_argument('--model-name', default='tresnet_l', help='tresnet_m, tresnet_l, tresnet_xl or a timm name')
    parser.add_argument('--image-size', type=int, default=448, help='input height and width (synthetic images)')
    parser.add_argument('--batch-size', type=int, default=batch_size, help='images per step')
    parser.add_argument('--num-classes', type=int, default=80, help='classes of the ML-Decoder head')
    parser.add_argument('--num-of-groups', type=int, default=-1, help='query groups of the head (-1: 100)')


def add_common_args(parser, batch_size):
    """The model flags and the timing / compile / profile flags of bench_train.py and bench_infer.py."""
    add_model_args(parser, batch_size)
    parser.add_argument('--iters', type=int, default=20, help='timed steps per mode')
    parser.add_argument('--warmup', type=int, default=5, help='untimed steps per mode (after compilation)')
    parser.add_argument('--modes', default='published,fast',
                        help='comma-separated modes to run, e.g. published,fast,fast+lowmem+compile (see above)')
    parser.add_argument('--compile', action=argparse.BooleanOptionalAction, default=False,
                        help='add +compile to every fast mode (compile time is the "first step" column)')
    parser.add_argument('--compile-mode', default=None, help="torch.compile mode of +compile (None = default)")
    parser.add_argument('--profile', type=int, default=0, metavar='STEPS',
                        help='after timing, profile this many steps of each fast mode: kernel time by category')
    parser.add_argument('--profile-dir', default='',
                        help='with --profile, also write every kernel of each profile to a CSV file in this folder')
    parser.add_argument('--profile-below', type=float, default=0, metavar='RATIO',
                        help='with --profile, profile only the fast modes slower than RATIO x the published mode '
                             'measured before them (0: every fast mode)')


SWITCHES = ('lowmem', 'compile', 'regional', 'cudagraphs', 'autotune', 'freeze', 'cdtune', 'mmtune', 'stock', 'fp16',
            'bf16')


def parse_mode(mode, default_compile_mode=None):
    """'fast+lowmem+compile' -> dict(base, lowmem, compile, scope, compile_mode, memory_budget, half)."""
    base, *switches = mode.split('+')
    if base not in ('published', 'fast'):
        raise SystemExit(f"mode {mode!r}: must start with 'published' or 'fast'")
    if base == 'published' and switches:
        raise SystemExit(f"mode {mode!r}: 'published' takes no switches")
    parsed = dict(base=base, lowmem=False, compile=False, scope='full', compile_mode=default_compile_mode,
                  memory_budget=None, freeze=False, cdtune=False, mmtune=False, stock=False, half=None)
    for switch in switches:
        if switch.startswith('budget'):
            parsed.update(compile=True, memory_budget=float(switch[len('budget'):]))
        elif switch not in SWITCHES:
            raise SystemExit(f"mode {mode!r}: unknown switch {switch!r} (known: {', '.join(SWITCHES)}, budget<F>)")
        elif switch == 'lowmem':
            parsed['lowmem'] = True
        elif switch in ('fp16', 'bf16'):
            parsed['half'] = switch
        elif switch == 'regional':
            parsed.update(compile=True, scope='regional')
        elif switch == 'freeze':
            parsed.update(compile=True, freeze=True)
        elif switch in ('cdtune', 'mmtune', 'stock'):
            parsed.update({'compile': True, switch: True})
        else:
            parsed['compile'] = True
    if 'cudagraphs' in switches or 'autotune' in switches:  # both: max-autotune (which records CUDA graphs)
        parsed['compile_mode'] = {(True, False): 'reduce-overhead', (False, True): 'max-autotune-no-cudagraphs',
                                  (True, True): 'max-autotune'}['cudagraphs' in switches, 'autotune' in switches]
    return parsed


def expand_modes(args):
    """The --modes list, with the --compile shortcut applied to every fast mode."""
    modes = args.modes.split(',') + (['fast+lowmem'] if getattr(args, 'lowmem', False) else [])
    if args.compile:
        modes = [m if m == 'published' or parse_mode(m)['compile'] else m + '+compile' for m in modes]
    for mode in modes:  # a typo in the last mode stops the run now, not after the others were timed
        parse_mode(mode, args.compile_mode)
    return modes


def compile_model(model, mode):
    """torch.compile as the mode asks (compilation itself happens at the first call)."""
    if not mode['compile']:
        return model
    return compile_model_for_speed(model, scope=mode['scope'], mode=mode['compile_mode'], recompute=not mode['stock'],
                                   gemm_autotune=mode['mmtune'])


def compile_config(mode):
    """Inductor/AOT settings active while the first step compiles."""
    stack = contextlib.ExitStack()
    if mode['memory_budget'] is not None:
        import torch._functorch.config
        stack.enter_context(torch._functorch.config.patch(activation_memory_budget=mode['memory_budget']))
    if mode['freeze'] or mode['cdtune']:
        import torch._inductor.config
        stack.enter_context(torch._inductor.config.patch(freezing=mode['freeze'],
                                                         coordinate_descent_tuning=mode['cdtune']))
    return stack


def machine(device):
    if device.type == 'cuda':
        return torch.cuda.get_device_name(device)
    return f'{platform.processor() or platform.machine()} CPU, {torch.get_num_threads()} threads'


def fast_amp_dtype(device):
    if device.type != 'cuda':
        return None
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def build_model(args, device, mode):
    """The model of a parsed mode, on the device, with the same weights for every mode."""
    torch.manual_seed(0)
    model = create_model(model_name=args.model_name, num_classes=args.num_classes,
                         num_of_groups=args.num_of_groups, image_size=args.image_size)
    set_head_impl(model, mode['base'])
    model = model.to(device)
    if mode['base'] == 'fast' and device.type == 'cuda':
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


def autotune_seconds():
    """Seconds inductor has spent in this process choosing kernels by timing them on the device (max-autotune,
    mmtune): compiling the candidates, timing them, and timing fused kernels against unfused ones."""
    from torch._dynamo.utils import compilation_time_metrics
    return sum(sum(times) for key, times in compilation_time_metrics.items()
               if key.endswith(('_template_precompiling', '_template_autotuning'))
               or key in ('benchmark_fused_nodes', 'benchmark_codegened_module'))


def wants_profile(args, fast, images_per_s, published_images_per_s):
    """Whether --profile applies to a mode: fast modes only, and with --profile-below only those that missed
    that speed-up over the published mode measured before them (every fast mode if published was not)."""
    if not (args.profile and fast):
        return False
    return not (args.profile_below and published_images_per_s) or \
        images_per_s < args.profile_below * published_images_per_s


def time_loop(step, device, warmup, iters, first_call_context=contextlib.nullcontext()):
    """-> (seconds of the first call (compilation included), seconds per timed call)."""
    sync(device)
    start = time.perf_counter()
    with first_call_context:
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


def print_progress(mode, result):
    """One line per mode as soon as it is measured: a run stopped by a time limit keeps what it measured."""
    print(f"# {mode}: {result['images_per_s']:.1f} images/s, peak {result['peak_gib']:.2f} GiB, activations "
          f"{result.get('activations_gib', float('nan')):.2f} GiB, first step {result['first_step_s']:.1f} s"
          + (f", compiled graphs {result['graphs']}" if result.get('graphs') is not None else '')
          + (f", autotuning {result['autotune_s']:.1f} s of the first step" if result.get('autotune_s') else ''),
          flush=True)


def print_table(title, rows, baseline='published'):
    """rows: {mode: dict(images_per_s, peak_gib, first_step_s[, activations_gib, graphs])}."""
    print(title)
    print(f"| {'mode':32} | {'images/s':>9} | {'ratio':>6} | {'peak GiB':>8} | {'activations GiB':>15} | "
          f"{'first step s':>12} | {'graphs':>6} |")
    print(f"|{'-' * 34}|{'-' * 11}|{'-' * 8}|{'-' * 10}|{'-' * 17}|{'-' * 14}|{'-' * 8}|")
    base = rows.get(baseline, {}).get('images_per_s')
    for mode, r in rows.items():
        ratio = f"{r['images_per_s'] / base:5.2f}x" if base else '   n/a'
        print(f"| {mode:32} | {r['images_per_s']:9.1f} | {ratio:>6} | {r['peak_gib']:8.2f} | "
              f"{r.get('activations_gib', float('nan')):15.2f} | {r['first_step_s']:12.1f} | "
              f"{r['graphs'] if r.get('graphs') is not None else '-':>6} |")
    sys.stdout.flush()
