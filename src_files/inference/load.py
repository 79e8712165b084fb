"""Loading a checkpoint for validate.py, infer.py and export.py: model-zoo files, bare state dicts, our best.pth and
latest.pth, and the files of export.py (.onnx / .pt2).

`load_model(settings, device)` -> Loaded: the model ready for inference and the settings it was built with. Model
settings not given on the command line (InferenceSettings.given) are read from the checkpoint itself: what a
best.pth records (model name, image size, head settings), else the head's tensor shapes (query groups, embedding
width), and the class count from its class names; so `validate.py --model-path best.pth` needs no other flag. A
flag given always wins; where it differs from the checkpoint's record the loader says so.

How a model's outputs are read (its task: a sigmoid per class, or a softmax over the classes) is --task, else what
the checkpoint records (a best.pth's 'task', a latest.pth's data format), else the data's (validate.py), else
multi-label: `resolve_task`.
"""
import dataclasses
import logging
from dataclasses import dataclass, field
from typing import Optional

import numpy as np
import torch

from src_files.data.formats import SINGLE_LABEL_FORMATS
from src_files.errors import UserError
from src_files.export.runtime import OnnxModel
from src_files.ml_decoder.ml_decoder import set_head_impl
from src_files.models import create_model, fold_norm_layers, load_checkpoint, load_model_weights
from src_files.models.compile import compile_model
from src_files.models.config import MODEL_FIELDS, ModelConfig
from src_files.models.factory import guess_tresnet, head_shape
from src_files.models.zoo import recorded_settings, zoo_image_size
from src_files.settings import MULTI, SINGLE, InferenceSettings, SpeedSettings, fill_defaults

LOG = logging.getLogger(__name__)

# Read from a checkpoint's recorded settings; the class count comes from its class names (a zero-shot head
# scores however many word vectors it is given).
META_KEYS = tuple(k for k in MODEL_FIELDS if k != 'num_classes')
EXPORTED_SUFFIXES = ('.onnx', '.pt2')
ZSL_DEFAULT_CLASSES = 925  # a zero-shot checkpoint without class names: NUS-WIDE's seen classes


@dataclass(frozen=True)
class Loaded:
    """A loaded checkpoint: `model` (eval mode, on the device, in `dtype`; an OnnxModel for an exported file),
    `config` (the settings it was built with: flags given, else the checkpoint's record, else its head's shapes),
    `class_names` (the checkpoint's, else '0'..'n-1'; None for a zero-shot head without names), `channels_last`
    (whether inputs go in channels-last), `meta` (the settings the checkpoint records; {} for model-zoo files and
    exported files) and `task` (how its outputs are read: `resolve_task` of --task, the checkpoint's record and
    the data's task where the caller knew it)."""
    model: object
    config: ModelConfig
    class_names: Optional[list]
    dtype: torch.dtype
    channels_last: bool = False
    meta: dict = field(default_factory=dict)
    task: str = MULTI
    vocabulary: Optional[tuple] = None  # zero-shot: (word vectors [d, n], their n class names) the file records
    text_record: Optional[dict] = None  # zero-shot: the text encoder the file was trained with (text_encoder.py)


def is_exported(model_path):
    """Whether `model_path` is a file of export.py (run as it was exported)."""
    return str(model_path).lower().endswith(EXPORTED_SUFFIXES)


def require_model_path(model_path, demo=False):
    """--model-path is needed unless --demo gives the demo model (the published default named a file that is
    not in the repository)."""
    if not model_path and not demo:
        raise UserError("no checkpoint given: pass --model-path FILE, or --demo for the model that train.py --demo "
                        "writes")


def recorded_task(meta):
    """The task a checkpoint's meta records (a best.pth's 'task', a latest.pth's data format), or None."""
    meta = meta or {}
    if meta.get('task') in (MULTI, SINGLE):
        return meta['task']
    if meta.get('data_format') in SINGLE_LABEL_FORMATS:
        return SINGLE
    return None


def resolve_task(requested, meta, data_task=None):
    """`requested` (--task) unless it is 'auto', else the task `meta` records, else `data_task` (the data's, for
    validate.py), else multi-label."""
    if requested != 'auto':
        return requested
    return recorded_task(meta) or data_task or MULTI


PRECISION_NOTES = {
    'fp32': "the exact model (--precision int8 on a CPU, bf16 or fp16 run faster and approximate it)",
    'fp16': "half precision, approximate (--precision fp32 for the exact model)",
    'bf16': "bfloat16, approximate (--precision fp32 for the exact model)",
    'int8': "int8 through ONNX Runtime, approximate: checked against fp32 on calibration images",
}


def precision_line(settings, device):
    """The first line of validate.py and infer.py: which precision the run uses, and whether it is exact."""
    if is_exported(settings.model_path):
        return f"precision: as exported ({settings.model_path}, run by ONNX Runtime or torch.export on the CPU)"
    return f"precision: {settings.precision} on {device.type}, {PRECISION_NOTES[settings.precision]}"


def resolve_precision(precision, device):
    """The dtype of the weights and inputs for --precision (fp32 by default: the exact model on every device; int8
    keeps the PyTorch model in fp32 until cpu_int8.int8_model converts it)."""
    dtype = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'fp32': torch.float32, 'int8': torch.float32}[precision]
    if dtype == torch.float16 and device.type == 'cpu':
        LOG.info("note: fp16 on CPU is slow; --precision fp32 or bf16 is faster there")
    if device.type == 'cuda' and dtype == torch.float32:  # fp32 means fp32: no TF32 rounding in convs or matmuls
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    return dtype


def load_exported(settings: InferenceSettings, data_task=None):
    """Loaded of a file of export.py (.onnx: ONNX Runtime, .pt2: torch.export), run on the CPU in fp32; its image
    size, model name and classes come from the file."""
    path = settings.model_path
    if settings.model.zsl:
        raise UserError(f"{path} is an exported model, whose word vectors are fixed at export: score the .pth "
                        f"checkpoint with --zsl 1 instead")
    model = OnnxModel(path)
    for key, value in (('image_size', model.image_size), ('model_name', model.model_name)):
        if key in settings.given and getattr(settings.model, key) != value:
            raise UserError(f"{path} was exported for --{key.replace('_', '-')} {value}, not "
                            f"{getattr(settings.model, key)}: leave the flag out (exported files fix it)")
    config = dataclasses.replace(settings.model, image_size=model.image_size, model_name=model.model_name,
                                 num_classes=model.num_classes)
    if settings.speed.compile:
        raise UserError(f"--compile needs the PyTorch checkpoint, not the exported {path}")
    LOG.info(f"running the exported {path} ({model.meta.get('format', 'onnx')}) on the CPU in fp32")
    return Loaded(model=model, config=config, class_names=list(model.class_names), dtype=torch.float32,
                  channels_last=False, meta={}, task=resolve_task(settings.task, {}, data_task))


def load_model(settings: InferenceSettings, device, data_task=None):
    """Loaded of settings.model_path, ready for inference on `device` (an exported .onnx / .pt2 file runs as it
    was exported: load_exported). `data_task`: the data's task, where known, for Loaded.task. UserError on any
    mismatch between the flags given and the checkpoint."""
    if is_exported(settings.model_path):
        return load_exported(settings, data_task)
    path = settings.model_path
    state_dict, extras = load_checkpoint(path, unsafe=settings.unsafe_load)
    meta = recorded_settings(extras)
    if meta is extras.get('args'):  # a training latest.pth
        LOG.info(f"note: {path} is a training checkpoint: scoring its model weights (best.pth holds the better of "
                 f"the model and its EMA)")
    shape = head_shape(state_dict)
    backbone = guess_tresnet(state_dict)
    if backbone:
        shape['model_name'] = backbone
    config, class_names = resolve_config(settings, meta, shape, _class_names(extras))

    model = create_model(config, load_head=True, model_path='')
    load_model_weights(model, state_dict, strict=True, model_name=config.model_name)
    if class_names and len(class_names) != config.num_classes and not config.zsl:
        class_names = None
    if not class_names and not config.zsl:
        class_names = [str(i) for i in range(config.num_classes)]

    model.eval()
    if settings.fold_norms:
        model = fold_norm_layers(model)
    dtype = resolve_precision(settings.precision, device)
    model = model.to(device=device, dtype=dtype)
    channels_last = device.type == 'cuda' and settings.speed.channels_last
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    if device.type == 'cuda':
        torch.backends.cudnn.benchmark = bool(settings.speed.cudnn_benchmark)
    set_head_impl(model, settings.speed.head_impl)
    return Loaded(model=model, config=config, class_names=class_names, dtype=dtype, channels_last=channels_last,
                  meta=meta, task=resolve_task(settings.task, meta, data_task), vocabulary=_vocabulary(extras),
                  text_record=extras.get('text_encoder') if isinstance(extras.get('text_encoder'), dict) else None)


def _vocabulary(extras):
    """(word vectors [d, n], n class names) a zero-shot best.pth records, or None."""
    vectors, names = extras.get('wordvecs'), extras.get('wordvec_classes')
    if isinstance(vectors, torch.Tensor) and vectors.dim() == 2 and \
            isinstance(names, (list, tuple)) and len(names) == vectors.shape[1]:
        return vectors.float(), [str(n) for n in names]
    return None


def resolve_config(settings, meta, shape, class_names):
    """(ModelConfig, class names) of a checkpoint: the flags given (settings.given) win; the others are what its
    `meta` records, else its weights' `shape` (head_shape of its state dict, and the model name its blocks show);
    the class count comes from its `class_names` when not given; a file that records no image size is run at the
    model zoo's (zoo.zoo_image_size). Prints what it read and where a flag given differs from the record."""
    path, given = settings.model_path, settings.given
    values = settings.model.to_dict()
    from_meta = {k: meta[k] for k in META_KEYS if k in meta}
    fill_defaults(values, given, from_meta, note=f"settings from {path}")
    shape = {k: v for k, v in shape.items() if k in MODEL_FIELDS}
    note_overrides(path, values, given, dict(from_meta, **shape))
    filled = fill_defaults(values, given, shape)
    if 'model_name' in filled:
        LOG.info(f"model from the weights of {path}: {values['model_name']}")
    head = [k for k in filled if k != 'model_name']
    if head and ('num_of_groups' in head or 'decoder_embedding' in head):
        LOG.info("head from the checkpoint: " + ', '.join(f"{k}={values[k]}" for k in head))
    if values['num_classes'] is None:
        if values['zsl']:  # a zero-shot head scores however many word vectors it is given
            values['num_classes'] = len(class_names) if class_names else ZSL_DEFAULT_CLASSES
        elif class_names:
            values['num_classes'] = len(class_names)
        else:
            raise UserError(f"cannot tell the number of classes of {path}: give --num-classes")
    if values['zsl'] and not values['use_ml_decoder']:
        raise UserError("--zsl 1 needs --use-ml-decoder 1")
    if 'image_size' not in given and 'image_size' not in from_meta:
        size, why = zoo_image_size(values['model_name'], values['num_classes'])
        if size:
            values['image_size'] = size
            LOG.info(f"image size {size}: {why} ({path} records none; --image-size to change it)")
    return ModelConfig(**values), class_names


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


def note_overrides(path, values, given, recorded):
    """A flag given explicitly wins over what the checkpoint records; say so when they differ."""
    differ = {k: v for k, v in recorded.items() if k in given and values[k] != v}
    if differ:
        LOG.info(f"note: {path} records " + ', '.join(
            f"--{k.replace('_', '-')} {v}" for k, v in differ.items()) + "; using " + ', '.join(
            f"--{k.replace('_', '-')} {values[k]}" for k in differ) + " as given")


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


def maybe_compile(model, speed: SpeedSettings):
    """--compile / --compile-scope / --compile-mode / --autotune-gemms (see src_files/models/compile.py)."""
    if not speed.compile:
        if speed.autotune_gemms:
            LOG.info("note: --autotune-gemms acts only with --compile; running without either")
        return model
    on_cuda = next(model.parameters()).device.type == 'cuda'  # (the speed flags change nothing on a CPU)
    return compile_model(model, speed.compile_scope, speed.compile_mode,
                         gemm_autotune=on_cuda and speed.autotune_gemms)
