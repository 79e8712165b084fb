"""Where a step's time goes: run a few steps under torch.profiler and print the kernel time by category.

The table answers "what limits it": convolutions (cuDNN) against the memory-bound elementwise / reduction /
norm kernels, the optimizer, layout copies, and how busy the device is over the step's wall time (a low
fraction means the CPU cannot launch kernels fast enough, where CUDA graphs would help).
"""
import csv
import os
import re
import time
from collections import defaultdict

import torch
from torch.profiler import ProfilerActivity, profile

# First match wins; kernel names of cuDNN / cuBLAS / Triton / ATen on CUDA, ATen op names on the CPU. Triton
# kernels come first: their names list the ops they fused (e.g. ..._native_batch_norm_backward_convolution_...),
# which would otherwise land them in the cuDNN or ATen categories.
CATEGORIES = [
    ('Triton reductions (norm statistics)', r'^triton_(red|per)_'),
    ('Triton pointwise (norm, act, residual)', r'^triton_poi_'),
    ('Triton, other', r'^triton_'),
    ('optimizer / EMA (multi-tensor)', r'multi_tensor|fused_adam|foreach|_fused_adam|lerp'),
    ('layout / copies', r'nchwToNhwc|nhwcToNchw|memcpy|Memcpy|copy_|CatArrayBatched|transpose|permute'),
    ('convolution', r'conv|xmma|implicit_gemm|dgrad|wgrad|fprop|cudnn|winograd|depthwise'),
    ('matmul', r'gemm|cublas|nvjet|cutlass|matmul|addmm|bmm|\bmm\b|attention|flash|fmha|sdpa'),
    ('batch norm', r'batch_norm|batchnorm|bn_|welford'),
    ('reductions', r'reduce|sum|mean|var_mean'),
    ('elementwise', r'elementwise|vectorized|unrolled|leaky|relu|sigmoid|mul|add|div|sqrt|where|pad|reflection'),
]


def categorize(name):
    for category, pattern in CATEGORIES:
        if re.search(pattern, name, flags=re.IGNORECASE):
            return category
    return 'other'


def _self_time_us(event, device_type):
    if device_type == 'cuda':
        for attr in ('self_device_time_total', 'self_cuda_time_total'):
            if hasattr(event, attr):
                return getattr(event, attr)
    return event.self_cpu_time_total


def is_kernel(event, cuda):
    """A GPU kernel (or, on the CPU, an ATen op). Not a user annotation: the optimizer's
    "Optimizer.step#Adam.step" range also shows on the GPU timeline, spanning the kernels it launched, and counting
    it would count them twice."""
    if getattr(event, 'is_user_annotation', False) or '#' in event.key:
        return False
    if cuda:
        return event.device_type == torch.autograd.DeviceType.CUDA
    return event.device_type == torch.autograd.DeviceType.CPU and event.key.startswith('aten::')


def profile_step(step, device, steps=3, top=12, title='profile', timed_step_ms=None, csv_path=None):
    """Run `step` `steps` times under the profiler; print per-step kernel time by category and the top kernels.

    The profiler slows the CPU side, so the wall time under it overstates idle gaps: with `timed_step_ms` (the
    step time measured without the profiler) the busy fraction is also given against that."""
    cuda = device.type == 'cuda'
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    if cuda:
        torch.cuda.synchronize(device)
    with profile(activities=activities) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize(device)
        wall_ms = (time.perf_counter() - start) / steps * 1e3
    per_kernel = defaultdict(float)
    for event in prof.key_averages():
        if is_kernel(event, cuda):
            per_kernel[event.key] += _self_time_us(event, device.type) / 1e3 / steps
    per_category = defaultdict(float)
    for name, ms in per_kernel.items():
        per_category[categorize(name)] += ms
    busy = sum(per_kernel.values())
    what = 'kernel' if cuda else 'CPU op (self time)'
    print(f'# {title}: {steps} profiled steps, {wall_ms:.1f} ms wall per step, {busy:.1f} ms {what} time per step '
          f'({100 * busy / wall_ms:.0f}% busy' + (f'; {100 * busy / timed_step_ms:.0f}% of the {timed_step_ms:.1f} ms '
                                                  f'unprofiled step)' if timed_step_ms else ')'))
    print(f"| {'category':38} | {'ms/step':>8} | {'share':>6} |")
    print(f"|{'-' * 40}|{'-' * 10}|{'-' * 8}|")
    for category, ms in sorted(per_category.items(), key=lambda kv: -kv[1]):
        print(f'| {category:38} | {ms:8.2f} | {100 * ms / max(busy, 1e-9):5.1f}% |')
    print(f'top {top} {what}s:')
    for name, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1])[:top]:
        print(f'  {ms:8.2f} ms  {categorize(name):38}  {name[:110]}')
    if csv_path:
        write_kernel_table(csv_path, per_kernel)
    return dict(wall_ms=wall_ms, busy_ms=busy, per_category=dict(per_category))


def write_kernel_table(path, per_kernel):
    """Every kernel's time per step, longest first, as CSV (for reading the whole profile later)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, 'w', newline='') as f:
        writer = csv.writer(f)
        writer.writerow(['ms_per_step', 'category', 'kernel'])
        for name, ms in sorted(per_kernel.items(), key=lambda kv: -kv[1]):
            writer.writerow([f'{ms:.4f}', categorize(name), name])
    print(f'# all kernels: {path}')


def csv_path_for(profile_dir, *parts):
    """profile_dir/<parts joined by _>.csv, every character other than A-Z a-z 0-9 . - made _ (so + too: the
    device tool brings back only plain file names)."""
    if not profile_dir:
        return None
    return os.path.join(profile_dir, re.sub(r'[^A-Za-z0-9.-]', '_', '_'.join(str(p) for p in parts)) + '.csv')


if __name__ == '__main__':
    print(__doc__.split('\n')[0] + '\n\nA module, not a script: bench_train.py and bench_infer.py use it through '
          '--profile STEPS (and --profile-dir DIR for the per-kernel CSVs).')
