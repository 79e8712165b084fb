"""Loading a checkpoint for validate.py and infer.py: model-zoo files, bare state dicts and our best.pth.

Head settings that the flags leave at their defaults are read from the checkpoint itself (class count, query
groups, embedding width, and for our own best.pth also the model name and image size), so that
`validate.py --model-path best.pth` needs no other flag. A flag given explicitly always wins; if it does not
fit the checkpoint the loader says so.
"""
import argparse
import logging

import numpy as np
import torch

from src_files.cli import flags as cli
from src_files.errors import UserError
from src_files.models.compile import compile_model
from src_files.models.config import MODEL_FIELDS

LOG = logging.getLogger(__name__)

# Read from a checkpoint's recorded settings; the class count comes from its class names (a zero-shot head
# scores however many word vectors it is given).
META_KEYS = tuple(k for k in MODEL_FIELDS if k != 'num_classes')


def add_inference_speed_args(parser):
    g = cli.add_speed_args(parser, training=False)
    g.add_argument('--fold-norms', action=argparse.BooleanOptionalAction, default=True,
                   help="fold the norm layers into the convolutions (same outputs, faster)")
    g.add_argument('--precision', choices=('auto', 'fp16', 'bf16', 'fp32', 'int8'), default='auto',
                   help="dtype of the weights and inputs; auto = fp16 on CUDA (as published); on a CPU int8 (ONNX "
                        "Runtime, calibrated once per checkpoint and cached, checked against fp32) where the CPU has "
                        "VNNI, else fp32; fp32 = the exact path (see src_files/engine/cpu_fast.py)")
    g.add_argument('--calibration-data', default='', metavar='DIR',
                   help="int8: calibrate on images of this folder (default: images spread over the ones scored; "
                        "only pixels are read)")
    g.add_argument('--autotune-gemms', action=argparse.BooleanOptionalAction, default=False,
                   help="with --compile: run the 1x1 convolutions as matrix products, each timed as cuBLAS and as "
                        "Triton kernels that also apply the bias, activation and residual after it, and keep the "
                        "fastest (longer compile; see BENCHMARKS.md)")


def resolve_precision(precision, device):
    if precision == 'auto':
        return torch.float16 if device.type == 'cuda' else torch.float32
    # (int8: the PyTorch model stays fp32; cpu_fast.int8_model converts it once the calibration images are known)
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'fp32': torch.float32, 'int8': torch.float32}[precision]
    if dtype == torch.float16 and device.type == 'cpu':
        LOG.info("note: fp16 on CPU is slow; --precision fp32 or bf16 is faster there")
    return dtype


EXPORTED_SUFFIXES = ('.onnx', '.pt2')


def load_exported(args, explicit):
    """(model, class names, dtype, channels_last) for a file of export.py (.onnx: ONNX Runtime, .pt2:
    torch.export), run on the CPU in fp32; its image size, model name and classes come from the file."""
    from src_files.export import OnnxModel
    if getattr(args, 'zsl', 0):
        raise UserError(f"{args.model_path} is an exported model, whose word vectors are fixed at export: score the "
                        f".pth checkpoint with --zsl 1 instead")
    model = OnnxModel(args.model_path)
    for key, value in (('image_size', model.image_size), ('model_name', model.model_name)):
        if key in explicit and getattr(args, key) != value:
            raise UserError(f"{args.model_path} was exported for --{key.replace('_', '-')} {value}, not "
                            f"{getattr(args, key)}: leave the flag out (exported files fix it)")
        setattr(args, key, value)
    args.num_classes = model.num_classes
    for flag in ('compile', 'save_attention'):
        if getattr(args, flag, None):
            raise UserError(f"--{flag.replace('_', '-')} needs the PyTorch checkpoint, not the exported "
                            f"{args.model_path}")
    LOG.info(f"running the exported {args.model_path} ({model.meta.get('format', 'onnx')}) on the CPU in fp32")
    return model, list(model.class_names), torch.float32, False


def load_model(args, explicit, device, wordvecs_for_zsl=None):
    """(model ready for inference, class names, extras) for args.model_path (an exported .onnx / .pt2 file runs
    as it was exported: load_exported).

    Fills args fields the user did not give from the checkpoint; raises UserError on any mismatch.
    """
    if str(args.model_path).lower().endswith(EXPORTED_SUFFIXES):
        return load_exported(args, explicit)
    from src_files.ml_decoder.ml_decoder import set_head_impl
    from src_files.models import create_model, fold_norm_layers, load_checkpoint, load_model_weights
    from src_files.models.factory import head_shape

    state_dict, extras = load_checkpoint(args.model_path, unsafe=getattr(args, 'unsafe_load', False))
    meta = extras.get('meta') if isinstance(extras.get('meta'), dict) else {}
    if not meta and isinstance(extras.get('args'), dict) and 'optimizer' in extras:  # a training latest.pth
        meta = extras['args']
        LOG.info(f"note: {args.model_path} is a training checkpoint: scoring its model weights (best.pth holds the "
              f"better of the model and its EMA)")
    args.checkpoint_meta = meta  # single-label support: tasks.model_task reads the task a best.pth records
    from_meta = {k: meta[k] for k in META_KEYS if k in meta and hasattr(args, k)}
    cli.fill_defaults(args, explicit, from_meta, note=f"settings from {args.model_path}")
    shape = {k: v for k, v in head_shape(state_dict).items() if hasattr(args, k)}
    _note_overrides(args, explicit, dict(from_meta, **shape))
    filled = cli.fill_defaults(args, explicit, shape)
    if filled and ('num_of_groups' in filled or 'decoder_embedding' in filled):
        LOG.info("head from the checkpoint: " + ', '.join(f"{k}={getattr(args, k)}" for k in filled))

    class_names = _class_names(extras)
    if getattr(args, 'num_classes', None) is None:
        if args.zsl:  # a zero-shot head scores however many word vectors it is given
            args.num_classes = len(class_names) if class_names else 925
        elif class_names:
            args.num_classes = len(class_names)
        else:
            raise UserError(f"cannot tell the number of classes of {args.model_path}: give --num-classes")
    if args.zsl and not args.use_ml_decoder:
        raise UserError("--zsl 1 needs --use-ml-decoder 1")

    model = create_model(args, load_head=True, model_path='')
    load_model_weights(model, state_dict, strict=True, model_name=args.model_name)
    if class_names and len(class_names) != args.num_classes and not args.zsl:
        class_names = None
    if not class_names and not args.zsl:
        class_names = [str(i) for i in range(args.num_classes)]

    model.eval()
    if getattr(args, 'fold_norms', True):
        model = fold_norm_layers(model)
    dtype = resolve_precision(getattr(args, 'precision', 'auto'), device)
    model = model.to(device=device, dtype=dtype)
    channels_last = device.type == 'cuda' and getattr(args, 'channels_last', False)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = bool(getattr(args, 'cudnn_benchmark', True))
    set_head_impl(model, getattr(args, 'head_impl', 'fast'))
    return model, class_names, dtype, channels_last


def _class_names(extras):
    """The class names a checkpoint records ('idx_to_class' of model-zoo files and best.pth, 'class_names' of
    latest.pth), or None."""
    idx_to_class = extras.get('idx_to_class')
    if not idx_to_class and isinstance(extras.get('class_names'), list):  # latest.pth
        idx_to_class = dict(enumerate(extras['class_names']))
    if not isinstance(idx_to_class, dict) or not idx_to_class:
        return None
    try:
        return [v for _, v in sorted((int(k), str(v)) for k, v in idx_to_class.items())]
    except (TypeError, ValueError):
        return None


def _note_overrides(args, explicit, recorded):
    """A flag given explicitly wins over what the checkpoint records; say so when they differ."""
    differ = {k: v for k, v in recorded.items() if k in explicit and getattr(args, k) != v}
    if differ:
        LOG.info(f"note: {args.model_path} records " + ', '.join(
            f"--{k.replace('_', '-')} {v}" for k, v in differ.items()) + "; using " + ', '.join(
            f"--{k.replace('_', '-')} {getattr(args, k)}" for k in differ) + " as given")


def precision_label(model, dtype):
    """What the closing line calls the run's precision: 'int8 (ONNX Runtime)', or the dtype."""
    meta = getattr(model, 'meta', None)
    if isinstance(meta, dict):
        return f"{meta.get('precision', 'fp32')} (ONNX Runtime)"
    return str(dtype).replace('torch.', '')


def check_finite(scores, dtype):
    """Refuse NaN scores: they would rank first in mAP (as published) and give a plausible, wrong number."""
    bad = int(np.count_nonzero(~np.isfinite(scores)))
    if bad:
        hint = ("; try --precision fp32 (half precision may overflow)" if dtype in (torch.float16, torch.bfloat16)
                else "; the checkpoint's weights may be broken")
        raise UserError(f"the model gave {bad} non-finite scores of {scores.size}{hint}")


def maybe_compile(model, args):
    """--compile / --compile-scope / --compile-mode / --autotune-gemms (see src_files/models/compile.py)."""
    if not getattr(args, 'compile', False):
        if getattr(args, 'autotune_gemms', False):
            LOG.info("note: --autotune-gemms acts only with --compile; running without either")
        return model
    on_cuda = next(model.parameters()).device.type == 'cuda'  # (the speed flags change nothing on a CPU)
    return compile_model(model, getattr(args, 'compile_scope', 'full'), getattr(args, 'compile_mode', 'default'),
                         gemm_autotune=on_cuda and getattr(args, 'autotune_gemms', False))

