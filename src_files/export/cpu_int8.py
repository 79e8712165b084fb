"""The int8 CPU path of validate.py and infer.py (`--precision int8`): the model in int8, run by ONNX Runtime.

It is never the default: by default both scripts give the fp32 model's scores and labels, whatever the machine or
the number of images. With --precision int8 on the CPU:
1. the PyTorch model (norms folded, fp32) is exported to ONNX and quantized (src_files/export/quantize.py), its
   activation ranges calibrated on CALIBRATION_IMAGES images: those of --calibration-data, else images spread
   evenly over the ones being scored (only pixels are read, never labels);
2. the accuracy guard, on those images: the int8 probabilities (sigmoid, or softmax for a single-label model) must
   stay within GUARD_MEAN (mean absolute difference) and GUARD_MAX (largest difference) of the fp32 model's, and
   change the labels (the classes above the thresholds used; the top-1 class of a single-label model) of at most
   GUARD_LABELS of the images; the share it changes is reported. Otherwise the run goes on in fp32 and says why;
3. the int8 file is cached under ~/.cache/ml_decoder/int8 (or $ML_DECODER_CACHE/int8), keyed by the
   checkpoint's bytes, the model settings and the calibration images, with both models' probabilities on the
   calibration images, so a later run on the same checkpoint starts at once.
int8 runs best on CPUs with VNNI (int8 dot-product instructions: AVX512-VNNI, AVX-VNNI or AMX); elsewhere it says
so. Speed, and how many labels it changes on a real validation set: BENCHMARKS.md, "CPU inference".

The entry points take the run's InferenceSettings (src_files/settings.py) and the ModelConfig the checkpoint was
loaded with (src_files/inference/load.py): `wants_int8`, `calibration_images` and `int8_model`.
"""
import hashlib
import json
import logging
import os
import tempfile

import numpy as np
import torch

from src_files.data.files import load_rgb
from src_files.errors import UserError
from src_files.export.metadata import build_metadata
from src_files.export.onnx_export import write_export
from src_files.export.quantize import quantize_onnx
from src_files.export.runtime import OnnxModel
from src_files.files import atomic_replace, atomic_write_text
from src_files.helper_functions.augmentations import val_transform
from src_files.inference.predictions import IMAGE_EXTENSIONS
from src_files.settings import MULTI, SINGLE

LOG = logging.getLogger(__name__)

CALIBRATION_IMAGES = 32
GUARD_MEAN, GUARD_MAX = 0.01, 0.15  # probability differences int8 may show against fp32 on the calibration images
GUARD_LABELS = 0.1  # the share of calibration images whose labels int8 may change
VNNI_FLAGS = ('avx512_vnni', 'avx_vnni', 'amx_int8')
CACHE_VERSION = '2'
# The model settings in the cache key (with fold_norms), in this order.
KEY_FIELDS = ('model_name', 'image_size', 'num_classes', 'num_of_groups', 'decoder_embedding', 'use_ml_decoder')


def cpu_has_vnni():
    """True when the CPU has int8 dot-product instructions (read from /proc/cpuinfo; False where unreadable)."""
    try:
        with open('/proc/cpuinfo') as f:
            flags = next((line.split(':', 1)[1].split() for line in f if line.startswith('flags')), [])
    except OSError:
        return False
    return any(flag in flags for flag in VNNI_FLAGS)


def wants_int8(settings, device, zsl=0, save_attention=False):
    """Whether this run takes the int8 path: --precision int8 only (settings: InferenceSettings; `zsl`: the loaded
    model's; `save_attention`: infer.py draws attention maps); UserError where it cannot apply."""
    if settings.precision != 'int8':
        return False
    if device.type != 'cpu':
        raise UserError("--precision int8 is a CPU path (ONNX Runtime): add --device cpu, or use fp16 / bf16 on the "
                        "GPU")
    blockers = [flag for flag, on in (('--zsl 1', zsl), ('--compile', settings.speed.compile),
                                      ('--save-attention', save_attention)) if on]
    if str(settings.model_path).lower().endswith(('.onnx', '.pt2')):
        blockers.append('an exported --model-path')
    if blockers:
        raise UserError(f"--precision int8 does not go with {blockers[0]}: leave one of them out")
    if not cpu_has_vnni():
        LOG.info("note: this CPU has no VNNI instructions: int8 may be slower than fp32 here (--precision fp32)")
    return True


def calibration_paths(folder, limit=CALIBRATION_IMAGES):
    """Up to `limit` image files of `folder` (searched recursively), spread evenly over its sorted list."""
    if not os.path.isdir(folder):
        raise UserError(f"--calibration-data folder not found: {folder}")
    paths = sorted(os.path.join(d, name) for d, _, names in os.walk(folder) for name in names
                   if name.lower().endswith(IMAGE_EXTENSIONS))
    if not paths:
        raise UserError(f"no image in --calibration-data {folder}")
    return [paths[i] for i in spread(len(paths), limit)]


def spread(n, limit=CALIBRATION_IMAGES):
    """Indices of up to `limit` items spread evenly over n (the first and the last included)."""
    return sorted(set(np.linspace(0, n - 1, min(n, limit)).round().astype(int).tolist())) if n else []


def calibration_images(n, load, name):
    """(batch [M, 3, S, S], ids) of the default calibration: the items spread evenly over `n` (spread) that
    `load(i)` -> image tensor can read (a UserError skips the item: an unreadable file is reported when its turn
    comes), each named `name(i)` in the cache key. validate.py calibrates on its dataset's images, infer.py on
    its image files."""
    batch, ids = [], []
    for i in spread(n):
        try:
            batch.append(load(i))
        except UserError:
            continue
        ids.append(name(i))
    return (torch.stack(batch) if batch else torch.zeros(0)), ids


def image_file_loader(paths, image_size):
    """load(i) for calibration_images of image files: paths[i] transformed as validate.py does."""
    transform = val_transform(image_size)
    return lambda i: transform(load_rgb(paths[i], upright=True))


def load_calibration(calibration_data, image_size, fallback):
    """(batch [N, 3, S, S], ids): the images of the folder `calibration_data` (--calibration-data), else
    `fallback()` -> (batch, ids)."""
    if not calibration_data:
        return fallback()
    paths = calibration_paths(calibration_data)
    load = image_file_loader(paths, image_size)
    return torch.stack([load(i) for i in range(len(paths))]), [os.path.abspath(p) for p in paths]


def cache_key(model_path, config, fold_norms, ids, task):
    """The cache file's name: the checkpoint's bytes, the model settings, the calibration images and the
    versions that make the file."""
    digest = hashlib.sha256()
    with open(model_path, 'rb') as f:
        for block in iter(lambda: f.read(1 << 20), b''):
            digest.update(block)
    import onnxruntime
    settings = {k: getattr(config, k) for k in KEY_FIELDS}
    settings['fold_norms'] = fold_norms
    digest.update(json.dumps([CACHE_VERSION, settings, task, list(map(str, ids)), onnxruntime.__version__,
                              torch.__version__]).encode())
    return digest.hexdigest()[:24]


def cache_dir():
    root = os.environ.get('ML_DECODER_CACHE') or os.path.join(os.path.expanduser('~'), '.cache', 'ml_decoder')
    return os.path.join(root, 'int8')


def probabilities(logits, task):
    logits = torch.as_tensor(np.asarray(logits, dtype=np.float32))
    return (torch.softmax(logits, 1) if task == SINGLE else torch.sigmoid(logits)).numpy()


def guard(model, int8, batch, task):
    """(mean, max) absolute probability difference of the int8 model against the fp32 `model` on `batch`."""
    reference, quantized = both_probabilities(model, int8, batch, task)
    diff = np.abs(quantized - reference)
    return float(diff.mean()), float(diff.max())


def both_probabilities(model, int8, batch, task):
    """(fp32 probabilities, int8 probabilities) [N, C] of `batch`."""
    with torch.no_grad():
        reference = probabilities(model(batch).float(), task)
    return reference, probabilities(int8(batch), task)


def changed_labels(reference, quantized, thresholds, task):
    """How many images (rows) get other labels from `quantized` than from `reference`: the classes above
    `thresholds` (a number, or one per class) for a multi-label model, the top-1 class for a single-label one."""
    reference, quantized = np.asarray(reference), np.asarray(quantized)
    if task == SINGLE:
        return int((reference.argmax(1) != quantized.argmax(1)).sum())
    thresholds = np.broadcast_to(np.asarray(thresholds, dtype=np.float64), reference.shape[1:])
    return int(((reference > thresholds) != (quantized > thresholds)).any(axis=1).sum())


def build_int8(model, config, model_path, class_names, batch, task, path):
    """Export `model` (fp32) to ONNX in a temporary folder and quantize it into `path`, calibrated on `batch`."""
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = os.path.join(tmp, 'model.onnx')
        meta = build_metadata(config.model_name, config.image_size, class_names, task=task, source=model_path)
        write_export(model.float().eval(), fp32_path, 'onnx', config.image_size, meta)
        batches = [batch[i:i + 8] for i in range(0, len(batch), 8)]
        # (whole or not at all: a stopped build leaves no broken cache entry)
        atomic_replace(lambda partial: quantize_onnx(fp32_path, partial, batches), path)


def int8_model(model, settings, config, class_names, calibration, task=MULTI, thresholds=0.75):
    """The int8 OnnxModel of `model` (fp32, norms folded, on the CPU), or `model` itself where the accuracy guard
    fails. settings: the run's InferenceSettings (model_path, fold_norms, calibration_data); config: the
    ModelConfig the model was loaded with; `calibration`: () -> (batch, ids) of images to calibrate on when
    --calibration-data is not given (calibration_images); `thresholds`: the run's (a number, or one per class), at
    which the guard counts the calibration images whose labels int8 changes."""
    batch, ids = load_calibration(settings.calibration_data, config.image_size, calibration)
    if not len(batch):
        LOG.info("note: no image to calibrate int8 on: running fp32")
        return model
    folder = cache_dir()
    try:
        os.makedirs(folder, exist_ok=True)
        path = os.path.join(folder, cache_key(settings.model_path, config, settings.fold_norms, ids, task) + '.onnx')
    except OSError:  # an unwritable cache: build in a temporary folder
        folder = tempfile.mkdtemp(prefix='ml_decoder_int8_')
        path = os.path.join(folder, 'model.onnx')
    record = path[:-len('.onnx')] + '.json'  # both models' probabilities, written once the file is whole
    if not (os.path.isfile(path) and os.path.isfile(record)):
        LOG.info(f"quantizing the model to int8 (calibrated on {len(batch)} images; once per checkpoint, cached in "
                 f"{folder})")
        build_int8(model, config, settings.model_path, class_names, batch, task, path)
        reference, quantized = both_probabilities(model, OnnxModel(path), batch, task)
        atomic_write_text(json.dumps({'fp32': reference.tolist(), 'int8': quantized.tolist()}), record)
    with open(record) as f:
        checked = json.load(f)
    reference, quantized = np.asarray(checked['fp32']), np.asarray(checked['int8'])
    diff = np.abs(quantized - reference)
    mean, worst = float(diff.mean()), float(diff.max())
    changed, n = changed_labels(reference, quantized, thresholds, task), len(reference)
    compared = (f"its probabilities within {mean:.4f} on average, {worst:.3f} at most, of fp32's, and other labels "
                f"for {changed} of the {n} calibration images")
    if mean > GUARD_MEAN or worst > GUARD_MAX or changed > GUARD_LABELS * n:
        LOG.info(f"note: int8 is too far from fp32 ({compared}; allowed {GUARD_MEAN}, {GUARD_MAX} and "
                 f"{GUARD_LABELS:.0%} of the images): running fp32")
        return model
    LOG.info(f"running int8 (ONNX Runtime; {compared}); --precision fp32 for the exact path")
    return OnnxModel(path)
