"""Export a checkpoint for deployment: an ONNX file (ONNX Runtime, TensorRT, ...) or a torch.export program (.pt2).

    python export.py --model-path outputs/coco/best.pth                       # -> outputs/coco/best.onnx
    python export.py --model-path tresnet_l_COCO__448_90_0.pth --model-name tresnet_l --image-size 448 \\
        --output tresnet_l_448.onnx --check-images pics/
    python export.py --model-path best.pth --format pt2                        # -> best.pt2
    python export.py --model-path nus_zsl_best.pth --wordvecs wordvec_array.pth --class-names benchmark_81_v0.json

The checkpoint's settings are read as validate.py reads them (flags not given come from the file). The model is
exported on the CPU in fp32, with the norm layers folded into the convolutions and a dynamic batch dimension
(the image size is fixed). ONNX: torch.onnx's dynamo exporter at opset 18 by default (the head's attention
becomes MatMul + Softmax; opset 23 writes one Attention node). The file records its class names, image size,
model name and input convention (RGB in [0, 1], no mean/std, resized to image size) in its metadata_props; a
.pt2 file keeps the same JSON in its extra file ml_decoder.json. After writing, the file is loaded back (ONNX
Runtime on the CPU, or torch.export.load) and its logits compared with the PyTorch model's on random images
(batch 1 and 2) and on --check-images: a max difference above --tolerance (1e-4 of the largest |logit|) is an
error, and no file is left. --precision int8 then quantizes the checked file (src_files/export/quantize.py),
calibrated on --calibration-data, and checks its probabilities against PyTorch's on those images:

    python export.py --model-path best.pth --precision int8 --calibration-data train_images/ --output best_int8.onnx
"""
import os
import time

import torch

from src_files.cli import flags, resolve, run
from src_files.errors import UserError
from src_files.export import build_metadata
from src_files.export.checked import ExportPlan, write_checked
from src_files.export.zsl_inputs import read_classes, set_vocabulary
from src_files.inference.load import load_model
from src_files.settings import SpeedSettings


def build_parser():
    return flags.export_parser(__doc__.split('\n')[0])


def check_values(values):
    """Flag errors found before the model is loaded; -> the file to write."""
    if not values['model_path']:
        raise UserError("no checkpoint given: pass --model-path FILE")
    if not values['tolerance'] > 0:
        raise UserError(f"--tolerance must be positive, got {values['tolerance']}")
    low, high = (18, 23) if values['exporter'] == 'dynamo' else (9, 20)
    if values['format'] == 'onnx' and not low <= values['opset'] <= high:
        raise UserError(f"--opset {values['opset']} is not supported by the {values['exporter']} exporter (use "
                        f"{low}-{high})")
    output = values['output']
    if output is None:
        output = os.path.splitext(values['model_path'])[0] + '.' + values['format']
    if os.path.abspath(output) == os.path.abspath(values['model_path']):
        raise UserError(f"--output {output} is the checkpoint itself: choose another file")
    if values['file_precision'] == 'int8' and (values['format'] != 'onnx' or not values['calibration_data']):
        raise UserError("--precision int8 writes an ONNX file calibrated on images: use --format onnx with "
                        "--calibration-data DIR")
    return output


def export_settings(values, explicit):
    """The checkpoint is loaded as validate.py loads it, on the CPU in fp32, norms folded, the fast head."""
    return resolve.inference_settings(values, explicit, precision='fp32', fold_norms=True, device='cpu',
                                      speed=SpeedSettings(head_impl='fast', channels_last=False))


def load_for_export(settings, wordvecs=None, class_names_file=None, classes=None, text=None):
    """(model: eval, fp32, CPU, norms folded, word vectors baked in for a zero-shot head; class names; Loaded).
    `wordvecs`: --wordvecs, the word vectors of the classes a zero-shot head scores; `class_names_file`: their
    names (--class-names); or `classes`, names through the text encoder (`text`: --text-encoder, --text-names,
    --prompts; default the checkpoint's)."""
    loaded = load_model(settings, torch.device('cpu'))
    class_names = set_vocabulary(loaded, settings.model_path, wordvecs, class_names_file, classes, text)
    return loaded.model.eval(), class_names, loaded


def main(argv=None):
    values, explicit = flags.parse(build_parser(), argv)
    output = check_values(values)
    settings = export_settings(values, explicit)
    model, class_names, loaded = load_for_export(
        settings, values['wordvecs'], values['class_names'], read_classes(values['classes'], values['classes_file']),
        (values['text_encoder'], values['text_names'], values['prompts']))
    config, fmt = loaded.config, values['format']
    plan = ExportPlan(output=output, model_name=config.model_name, image_size=config.image_size, format=fmt,
                      opset=values['opset'], exporter=values['exporter'], tolerance=values['tolerance'],
                      check_images=values['check_images'], precision=values['file_precision'],
                      calibration_data=values['calibration_data'], task=loaded.task)
    how = f"opset {plan.opset}, {plan.exporter} exporter" if fmt == 'onnx' else 'torch.export'
    onnx_only = dict(opset=plan.opset, exporter=plan.exporter) if fmt == 'onnx' else {}
    metadata = build_metadata(config.model_name, config.image_size, class_names, zsl=config.zsl, task=loaded.task,
                              source=os.path.basename(settings.model_path), format=fmt,
                              torch_version=torch.__version__, tolerance=plan.tolerance, **onnx_only)
    start = time.time()
    worst = write_checked(model, plan, metadata)
    size_mb = os.path.getsize(output) / 2 ** 20
    how += ', int8' if plan.precision == 'int8' else ''
    print(f"wrote {output} ({fmt.upper()}, {how}, {size_mb:.1f} MiB): {config.model_name} "
          f"{config.image_size}px, {len(class_names)} classes, dynamic batch; logits match PyTorch's to "
          f"{worst:.1e} of the largest (tolerance {plan.tolerance:g}) ({time.time() - start:.0f} s)")
    return 0


if __name__ == '__main__':
    run.run_main(main)
