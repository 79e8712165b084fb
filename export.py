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

from src_files.cli import flags as cli
from src_files.engine.tasks import model_task
from src_files.errors import UserError
from src_files.export import (DEFAULT_OPSET, EXPORTERS, TOLERANCE, build_metadata, check_parity, image_batches,
                              load_onnx, load_pt2, random_batches, write_export)
from src_files.export.parity import MAX_CHECK_IMAGES
from src_files.export.zsl_inputs import read_wordvec_file, zsl_class_names


def build_parser():
    parser = cli.make_parser(__doc__.split('\n')[0])
    parser.add_argument('--model-path', default=None,
                        help="checkpoint to export (any file validate.py reads: best.pth, latest.pth, a model-zoo "
                             "file, a bare state dict); required")
    parser.add_argument('--format', choices=('onnx', 'pt2'), default='onnx',
                        help="onnx: an ONNX file with the weights inside; pt2: a torch.export ExportedProgram "
                             "(torch.export.save)")
    parser.add_argument('--output', default=None, metavar='FILE',
                        help="file to write (replaced if it exists; None = the checkpoint's path with .onnx / .pt2)")
    parser.add_argument('--opset', type=int, default=DEFAULT_OPSET,
                        help="ONNX opset; dynamo exporter: 18-23 (opset 18 writes the head's attention as MatMul + "
                             "Softmax, which every ONNX runtime runs; 23 as one Attention node, which recent ONNX "
                             "Runtimes run: 1.32 tested); torchscript exporter: 9-20")
    parser.add_argument('--exporter', choices=EXPORTERS, default='dynamo',
                        help="ONNX exporter: torch.onnx's dynamo exporter (torch.export + onnxscript), or the "
                             "legacy TorchScript one (deprecated in PyTorch; same numbers, needs no onnxscript)")
    cli.add_model_args(parser, num_classes_help="number of classes (None = from the checkpoint)",
                       from_checkpoint=True)
    parser.add_argument('--wordvecs', default=None, metavar='FILE',
                        help="zero-shot checkpoints (--zsl 1): word vectors of the classes to score, [300, n] or "
                             "[n, 300] saved with torch.save (e.g. NUS-WIDE's wordvec_array.pth); baked into the "
                             "file, which then takes only images")
    parser.add_argument('--class-names', default=None, metavar='FILE',
                        help="with --wordvecs: names of its n classes, a text file (one per line), a JSON list, or "
                             "NUS-WIDE's benchmark_81_v0.json (None = the checkpoint's names if n fits, else 0..n-1)")
    parser.add_argument('--check-images', default=None, metavar='DIR',
                        help=f"also compare the logits on the first {MAX_CHECK_IMAGES} images of this folder (or "
                             f"image list), transformed as validate.py does")
    parser.add_argument('--precision', choices=('fp32', 'int8'), default='fp32', dest='file_precision',
                        help="onnx: fp32, or int8 (ONNX Runtime static quantization: int8 weights per channel, "
                             "uint8 activations calibrated on --calibration-data; for CPUs with VNNI)")
    parser.add_argument('--calibration-data', default=None, metavar='DIR',
                        help="--precision int8: a folder of images to calibrate on (32 spread over its sorted "
                             "files); the int8 probabilities must stay within 0.01 on average and 0.15 at most of "
                             "PyTorch's on them and on --check-images, else no file is written")
    parser.add_argument('--tolerance', type=float, default=TOLERANCE,
                        help="largest allowed max |exported - PyTorch logit| / max |PyTorch logit|: 1e-4 for fp32 "
                             "(exports measure about 3e-7 on a CPU); above it the export is an error")
    return parser


def check_flags(args):
    if not args.model_path:
        raise UserError("no checkpoint given: pass --model-path FILE")
    if not args.tolerance > 0:
        raise UserError(f"--tolerance must be positive, got {args.tolerance}")
    low, high = (18, 23) if args.exporter == 'dynamo' else (9, 20)
    if args.format == 'onnx' and not low <= args.opset <= high:
        raise UserError(f"--opset {args.opset} is not supported by the {args.exporter} exporter (use {low}-{high})")
    if args.output is None:
        args.output = os.path.splitext(args.model_path)[0] + '.' + args.format
    if os.path.abspath(args.output) == os.path.abspath(args.model_path):
        raise UserError(f"--output {args.output} is the checkpoint itself: choose another file")
    if args.class_names and not args.wordvecs:
        raise UserError("--class-names names the classes of --wordvecs: give --wordvecs too")
    if args.file_precision == 'int8' and (args.format != 'onnx' or not args.calibration_data):
        raise UserError("--precision int8 writes an ONNX file calibrated on images: use --format onnx with "
                        "--calibration-data DIR")


def load_for_export(args, explicit):
    """(model: eval, fp32, CPU, norms folded, word vectors baked in for a zero-shot head; class names)."""
    from src_files.inference.load import load_model
    from src_files.ml_decoder.ml_decoder import update_wordvecs
    args.precision, args.fold_norms, args.head_impl, args.channels_last = 'fp32', True, 'fast', False
    model, class_names, _, _ = load_model(args, explicit, torch.device('cpu'))
    if args.zsl and not args.wordvecs:
        raise UserError(f"{args.model_path} is a zero-shot model: give the word vectors of the classes it should "
                        f"score with --wordvecs FILE ([300, n], e.g. NUS-WIDE's wordvec_array.pth)")
    if args.wordvecs and not args.zsl:
        raise UserError(f"--wordvecs is for zero-shot checkpoints (--zsl 1); {args.model_path} has a fixed "
                        f"classifier")
    if args.zsl:
        wordvecs = read_wordvec_file(args.wordvecs)
        update_wordvecs(model, test_wordvecs=wordvecs)
        class_names = zsl_class_names(wordvecs, args.class_names, class_names)
    return model.eval(), class_names


def prove_parity(args, model, path):
    """Load `path` back and compare its logits with the model's; print each batch; UserError above tolerance."""
    runner, meta = (load_onnx(path) if args.format == 'onnx' else load_pt2(path))
    batches = random_batches(args.image_size)
    if args.check_images:
        batches += image_batches(args.check_images, args.image_size)
    results = check_parity(model, runner, batches)
    for name, max_abs, rel in results:
        print(f"parity {name}: max |diff| {max_abs:.2e}, {rel:.2e} of the largest |logit|")
    worst = max(results, key=lambda r: r[2])
    if not worst[2] <= args.tolerance:
        raise UserError(f"parity check failed: the exported logits differ from PyTorch's by {worst[2]:.2e} of the "
                        f"largest logit on {worst[0]} (tolerance {args.tolerance:g}); {args.output} was not written")
    return worst[2]


def write_and_check(args, model, metadata):
    """Write to FILE.tmp, prove parity on it, then rename it to FILE; on any failure no file is left."""
    tmp = f"{args.output}.tmp.{args.format}"  # (torch.export.load wants a name ending in .pt2)
    try:
        try:
            write_export(model, tmp, args.format, args.image_size, metadata, opset=args.opset,
                         exporter=args.exporter)
        except (UserError, OSError):
            raise
        except Exception as error:  # noqa: BLE001 - exporters raise many types; say which step failed
            first = (str(error).strip().splitlines() or [''])[0][:300]
            what = f"the {args.exporter} ONNX exporter" if args.format == 'onnx' else "torch.export"
            raise UserError(f"{what} failed on {args.model_name}: {type(error).__name__}: {first}") from None
        worst = prove_parity(args, model, tmp)
        if args.file_precision == 'int8':
            quantized = f"{args.output}.tmp.int8.onnx"
            try:
                quantize_and_check(args, model, tmp, quantized)
                os.replace(quantized, args.output)
            finally:
                if os.path.exists(quantized):
                    os.remove(quantized)
        else:
            os.replace(tmp, args.output)
        return worst
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def quantize_and_check(args, model, fp32_path, path):
    """Quantize the checked fp32 file into `path`, calibrated on --calibration-data; UserError if the int8
    probabilities stray from PyTorch's (cpu_fast's guard) on those images or on --check-images."""
    from src_files.export import cpu_int8 as cpu_fast
    from src_files.export import OnnxModel
    from src_files.export.quantize import quantize_onnx
    calibration, _ = cpu_fast.load_calibration(args, None)
    quantize_onnx(fp32_path, path, [calibration[i:i + 8] for i in range(0, len(calibration), 8)])
    images = [calibration] + ([b for _, b in image_batches(args.check_images, args.image_size)]
                              if args.check_images else [])
    task = model_task(args)
    mean, worst = cpu_fast.guard(model, OnnxModel(path), torch.cat(images), task)
    print(f"int8: probabilities within {mean:.4f} on average, {worst:.3f} at most, of PyTorch's on "
          f"{sum(len(b) for b in images)} images")
    if mean > cpu_fast.GUARD_MEAN or worst > cpu_fast.GUARD_MAX:
        raise UserError(f"the int8 model strays from PyTorch's probabilities ({mean:.4f} on average, {worst:.3f} at "
                        f"most; allowed {cpu_fast.GUARD_MEAN}, {cpu_fast.GUARD_MAX}): {args.output} was not written; "
                        f"use --precision fp32")


def main(argv=None):
    args, explicit = cli.parse_args(build_parser(), argv)
    check_flags(args)
    model, class_names = load_for_export(args, explicit)
    how = f"opset {args.opset}, {args.exporter} exporter" if args.format == 'onnx' else 'torch.export'
    onnx_only = dict(opset=args.opset, exporter=args.exporter) if args.format == 'onnx' else {}
    metadata = build_metadata(args.model_name, args.image_size, class_names, zsl=args.zsl, task=model_task(args),
                              source=os.path.basename(args.model_path), format=args.format,
                              torch_version=torch.__version__, tolerance=args.tolerance, **onnx_only)
    start = time.time()
    worst = write_and_check(args, model, metadata)
    size_mb = os.path.getsize(args.output) / 2 ** 20
    how += ', int8' if args.file_precision == 'int8' else ''
    print(f"wrote {args.output} ({args.format.upper()}, {how}, {size_mb:.1f} MiB): {args.model_name} "
          f"{args.image_size}px, {len(class_names)} classes, dynamic batch; logits match PyTorch's to "
          f"{worst:.1e} of the largest (tolerance {args.tolerance:g}) ({time.time() - start:.0f} s)")
    return 0


if __name__ == '__main__':
    cli.run_main(main)
