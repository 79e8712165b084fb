"""The CPU inference paths that `bench_infer.py --device cpu` times against the published recipe.

Each path turns the same model (eval mode, norms folded, fp32) into a callable images -> float32 logits:
- published: what the published code ran on a CPU: fp32, NCHW, eager, the per-group-loop head;
- fp32: this project's exact path (`validate.py --precision fp32`): the batched head, NCHW;
- fp32+cl: the same in channels-last memory format;
- bf16+cl: weights and inputs in bfloat16, channels-last (native on CPUs with AVX512-BF16 or AMX);
- onnx: the export.py file run by ONNX Runtime in fp32;
- int8: that file quantized by ONNX Runtime (src_files/export/quantize.py), the default of validate.py / infer.py
  on CPUs with VNNI (src_files/export/cpu_int8.py).
"""
import copy
import os
import tempfile
import time

import torch

from src_files.ml_decoder import set_head_impl

PATHS = ('published', 'fp32', 'fp32+cl', 'bf16+cl', 'onnx', 'int8')


def _eager(model, head_impl, dtype=torch.float32, channels_last=False):
    model = copy.deepcopy(model).to(dtype)
    set_head_impl(model, head_impl)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    fmt = torch.channels_last if channels_last else torch.contiguous_format

    @torch.inference_mode()
    def run(images):
        return model(images.to(dtype).contiguous(memory_format=fmt)).float()
    return run


def _onnx(model, image_size, folder, calibration=None):
    from src_files.export import OnnxModel, build_metadata, write_export
    from src_files.export.quantize import quantize_onnx
    path = os.path.join(folder, 'model.onnx')
    if not os.path.isfile(path):
        classes = [str(i) for i in range(model.num_classes)]
        write_export(model, path, 'onnx', image_size, build_metadata('model', image_size, classes))
    if calibration is None:
        return OnnxModel(path)
    int8_path = os.path.join(folder, 'model_int8.onnx')
    quantize_onnx(path, int8_path, [calibration[i:i + 8] for i in range(0, len(calibration), 8)])
    return OnnxModel(int8_path)


def build(name, model, image_size, folder, calibration):
    """(callable images -> float32 logits, seconds it took to prepare) of path `name`; `folder` keeps the ONNX
    files; `calibration`: images [N, 3, S, S] for int8."""
    start = time.perf_counter()
    if name == 'published':
        run = _eager(model, 'published')
    elif name == 'fp32':
        run = _eager(model, 'fast')
    elif name == 'fp32+cl':
        run = _eager(model, 'fast', channels_last=True)
    elif name == 'bf16+cl':
        run = _eager(model, 'fast', torch.bfloat16, channels_last=True)
    elif name in ('onnx', 'int8'):
        run = _onnx(model, image_size, folder, calibration if name == 'int8' else None)
    else:
        raise SystemExit(f"unknown CPU path {name!r}: use {', '.join(PATHS)}")
    return run, time.perf_counter() - start


def time_path(run, x, warmup, min_seconds, min_iters):
    """Images/s of `run` on batch `x` (after `warmup` calls), timed for at least min_seconds and min_iters calls."""
    for _ in range(warmup):
        run(x)
    start, calls = time.perf_counter(), 0
    while calls < min_iters or time.perf_counter() - start < min_seconds:
        run(x)
        calls += 1
    return len(x) * calls / (time.perf_counter() - start)


def temporary_folder():
    return tempfile.TemporaryDirectory(prefix='bench_cpu_')
