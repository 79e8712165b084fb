"""The peak memory of a training run, estimated before its first step.

On the CPU a run that needs more memory than the machine has is killed by the kernel part-way, without a message;
train.py therefore estimates the peak first and, where it exceeds the memory available, stops with one line: the
estimate, what is available, and a batch size (or image size) that fits. On a GPU an out-of-memory error is caught
and reported in one line anyway, and the fast paths (bf16, --lowmem, --compile) change the need a lot, so there the
estimate is only a note.

The estimate is a small table measured per model (MEASURED: train.py's peak resident memory on the CPU, fp32, the
published recipe: weights, gradients, Adam's two moments, the EMA copy and the activations kept for the backward
pass), scaled by the images of a step: fixed + per_image x batch x (image size / 224)^2. Activations grow with
pixels x batch, everything else does not. benchmarks/train_memory.py measures the table and checks it against
other settings (BENCHMARKS.md, "Training memory"). Models not in the table are not checked.
"""
import os

import torch

from src_files.errors import UserError

GIB = 1024 ** 3
# model -> (fixed GiB, GiB per image at 224 px): peak RSS of train.py on the CPU (fp32, --workers 1), fitted on two
# settings per model (M: 224 px batch 8 and 448 px batch 4; L: 448 px batch 1 and 4; XL: 224 px batch 2 and 8)
MEASURED = {
    'tresnet_m': (1.47, 0.073),
    'tresnet_l': (1.73, 0.148),
    'tresnet_xl': (2.50, 0.157),
}
GPU_AMP_SHARE = 0.5  # activations kept in bf16 / fp16 take half the bytes of fp32 ones (BENCHMARKS.md, Memory)
SIZES = (640, 576, 512, 448, 384, 320, 288, 256, 224, 192, 160, 128, 96, 64)  # tried when batch 1 does not fit


def estimate_bytes(model_name, image_size, batch_size, device_type='cpu', amp='off'):
    """Estimated peak bytes of one training process, or None for a model the table does not know."""
    if model_name not in MEASURED:
        return None
    fixed, per_image = MEASURED[model_name]
    activations = per_image * batch_size * (image_size / 224) ** 2
    if device_type == 'cuda' and amp != 'off':
        activations *= GPU_AMP_SHARE
    return (fixed + activations) * GIB


def available_bytes(device):
    """(bytes this run may use, where the figure comes from) on `device`: on the CPU the kernel's MemAvailable (and
    a cgroup's limit, in a container) plus what this process holds already; on a GPU its free memory."""
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return free, f"free on {device}"
    meminfo = {}
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                key, value = line.split(':', 1)
                meminfo[key] = int(value.split()[0]) * 1024
    except (OSError, ValueError):
        return None, ''
    if 'MemAvailable' not in meminfo:
        return None, ''
    available, source = meminfo['MemAvailable'], "available on this machine"
    limit = _cgroup_room()
    if limit is not None and limit < available:
        available, source = limit, "left under this container's memory limit"
    return available + _own_rss(), source


def _cgroup_room():
    """Bytes left under a cgroup-v2 memory limit (None where there is none)."""
    try:
        with open('/sys/fs/cgroup/memory.max') as f:
            limit = f.read().strip()
        with open('/sys/fs/cgroup/memory.current') as f:
            current = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return None if limit == 'max' else max(int(limit) - current, 0)


def _own_rss():
    try:
        with open('/proc/self/statm') as f:
            return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
    except (OSError, ValueError, IndexError):
        return 0


def what_fits(model_name, image_size, batch_size, available, processes=1, **kwargs):
    """The flags of the largest batch at this image size that fits `available` bytes, else batch 1 at the largest
    image size that does ('' if nothing does)."""
    def fits(size, batch):
        return estimate_bytes(model_name, size, batch, **kwargs) * processes <= available
    for batch in range(batch_size - 1, 0, -1):
        if fits(image_size, batch):
            return f"--batch-size {batch}"
    size = next((s for s in SIZES if s < image_size and fits(s, 1)), None)
    return f"--batch-size 1 --image-size {size}" if size else ''


def check_memory(settings, device, processes=1):
    """Before the first step: stop with one line (CPU) or say in a note (GPU) when the estimated peak of
    `processes` training processes on this machine exceeds the memory available. -> the note to print, or ''."""
    model, data = settings.model, settings.data
    amp = settings.optim.amp if device.type == 'cuda' else 'off'
    estimate = estimate_bytes(model.model_name, model.image_size, data.batch_size, device.type, amp)
    available, source = available_bytes(device)
    if estimate is None or available is None or estimate * processes <= available:
        return ''
    who = f"{processes} training processes of " if processes > 1 else ''
    need = (f"{who}{model.model_name} at {model.image_size} px, batch {data.batch_size}, "
            f"{'need' if processes > 1 else 'needs'} about {estimate * processes / GIB:.1f} GiB at "
            f"{'their' if processes > 1 else 'its'} peak; {available / GIB:.1f} GiB is {source}")
    fits = what_fits(model.model_name, model.image_size, data.batch_size, available, processes,
                     device_type=device.type, amp=amp)
    if device.type == 'cuda':
        return (f"note: {need} (an estimate from CPU measurements; --amp, --lowmem and --compile lower it)" +
                (f": if it runs out of memory, try {fits}" if fits else ''))
    advice = f"use {fits}" if fits else "this model does not fit in this machine's memory: use a smaller --model-name"
    raise UserError(f"not enough memory: {need}; {advice} (or --no-memory-check to try anyway)")
