"""export.py's writing: the file is written to a temporary file beside FILE, loaded back and its logits compared with
the PyTorch model's (random images at batch 1 and 2, and --check-images), optionally quantized to int8 and its
probabilities checked against PyTorch's (cpu_int8's guard), and only then renamed onto FILE: on any failure no file
is left.
"""
import os
from dataclasses import dataclass
from typing import Optional

import torch

from src_files.errors import UserError
from src_files.export import cpu_int8
from src_files.export.onnx_export import DEFAULT_OPSET, write_export
from src_files.export.parity import TOLERANCE, check_parity, image_batches, random_batches
from src_files.export.quantize import quantize_onnx
from src_files.export.runtime import OnnxModel, load_onnx, load_pt2
from src_files.files import temporary_name, write_error
from src_files.settings import MULTI


@dataclass(frozen=True)
class ExportPlan:
    """What export.py writes and how it proves it."""
    output: str  # the file to write
    model_name: str  # (named in the messages)
    image_size: int
    format: str = 'onnx'  # 'onnx' or 'pt2'
    opset: int = DEFAULT_OPSET  # onnx only
    exporter: str = 'dynamo'  # onnx only: 'dynamo' or 'torchscript'
    tolerance: float = TOLERANCE  # largest allowed max |exported - PyTorch logit| / max |PyTorch logit|
    check_images: Optional[str] = None  # a folder or image list whose first images are compared too
    precision: str = 'fp32'  # 'fp32', or 'int8' (onnx): quantized after the fp32 file is proven
    calibration_data: Optional[str] = None  # int8: the folder of images to calibrate on
    task: str = MULTI  # how the outputs are read (sigmoid or softmax), for the int8 check


def prove_parity(model, path, plan):
    """Load `path` back and compare its logits with the model's; print each batch; UserError above the
    tolerance. -> the worst relative difference."""
    runner, _ = (load_onnx(path) if plan.format == 'onnx' else load_pt2(path))
    batches = random_batches(plan.image_size)
    if plan.check_images:
        batches += image_batches(plan.check_images, plan.image_size)
    results = check_parity(model, runner, batches)
    for name, max_abs, rel in results:
        print(f"parity {name}: max |diff| {max_abs:.2e}, {rel:.2e} of the largest |logit|")
    worst = max(results, key=lambda r: r[2])
    if not worst[2] <= plan.tolerance:
        raise UserError(f"parity check failed: the exported logits differ from PyTorch's by {worst[2]:.2e} of the "
                        f"largest logit on {worst[0]} (tolerance {plan.tolerance:g}); {plan.output} was not written")
    return worst[2]


def quantize_and_check(model, fp32_path, path, plan):
    """Quantize the checked fp32 file into `path`, calibrated on plan.calibration_data; UserError if the int8
    probabilities stray from PyTorch's (cpu_int8's guard) on those images or on plan.check_images."""
    calibration, _ = cpu_int8.load_calibration(plan.calibration_data, plan.image_size, None)
    quantize_onnx(fp32_path, path, [calibration[i:i + 8] for i in range(0, len(calibration), 8)])
    images = [calibration] + ([b for _, b in image_batches(plan.check_images, plan.image_size)]
                              if plan.check_images else [])
    mean, worst = cpu_int8.guard(model, OnnxModel(path), torch.cat(images), plan.task)
    print(f"int8: probabilities within {mean:.4f} on average, {worst:.3f} at most, of PyTorch's on "
          f"{sum(len(b) for b in images)} images")
    if mean > cpu_int8.GUARD_MEAN or worst > cpu_int8.GUARD_MAX:
        raise UserError(f"the int8 model strays from PyTorch's probabilities ({mean:.4f} on average, {worst:.3f} at "
                        f"most; allowed {cpu_int8.GUARD_MEAN}, {cpu_int8.GUARD_MAX}): {plan.output} was not "
                        f"written; use --precision fp32")


def write_checked(model, plan, metadata):
    """Write `model` (eval, fp32, CPU) as plan.output with `metadata`: to a temporary file, prove parity on it, quantize
    it where plan.precision is int8, then rename it to FILE; on any failure no file is left. -> the worst
    relative logit difference of the fp32 file."""
    tmp = temporary_name(plan.output, f'.tmp.{plan.format}')  # (torch.export.load wants a name ending in .pt2)
    try:
        try:
            write_export(model, tmp, plan.format, plan.image_size, metadata, opset=plan.opset,
                         exporter=plan.exporter)
        except UserError:
            raise
        except OSError as error:
            raise write_error(plan.output, error) from None
        except Exception as error:  # noqa: BLE001 - exporters raise many types; say which step failed
            first = (str(error).strip().splitlines() or [''])[0][:300]
            what = f"the {plan.exporter} ONNX exporter" if plan.format == 'onnx' else "torch.export"
            raise UserError(f"{what} failed on {plan.model_name}: {type(error).__name__}: {first}") from None
        worst = prove_parity(model, tmp, plan)
        if plan.precision == 'int8':
            quantized = temporary_name(plan.output, '.tmp.int8.onnx')
            try:
                quantize_and_check(model, tmp, quantized, plan)
                os.replace(quantized, plan.output)
            finally:
                if os.path.exists(quantized):
                    os.remove(quantized)
        else:
            try:
                os.replace(tmp, plan.output)
            except OSError as error:
                raise write_error(plan.output, error) from None
        return worst
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
