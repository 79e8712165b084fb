"""The fast CPU path of validate.py and infer.py: the model in int8, run by ONNX Runtime.

`--precision auto` (the default) on a CPU with VNNI (int8 dot-product instructions: AVX512-VNNI, AVX-VNNI or AMX)
runs the checkpoint this way:
1. the PyTorch model (norms folded, fp32) is exported to ONNX and quantized (src_files/export/quantize.py), its
   activation ranges calibrated on CALIBRATION_IMAGES images: those of --calibration-data, else images spread
   evenly over the ones being scored (only pixels are read, never labels);
2. the accuracy guard: on those images the int8 probabilities (sigmoid, or softmax for a single-label model) must
   stay within GUARD_MEAN (mean absolute difference) and GUARD_MAX (largest difference) of the fp32 model's;
   otherwise the run goes on in fp32 and says why;
3. the int8 file is cached under ~/.cache/ml_decoder/int8 (or $ML_DECODER_CACHE/int8), keyed by the
   checkpoint's bytes, the model settings and the calibration images, so a later run on the same checkpoint
   starts at once.
Where int8 does not apply (a GPU, a CPU without VNNI, a zero-shot model, --compile, --save-attention, fewer than
MIN_IMAGES images to score, for which the first conversion would cost more than it saves) auto is fp32.
`--precision fp32` always runs the exact PyTorch path; `--precision int8` asks for int8 (and says so when the CPU
has no VNNI). Speed and accuracy against fp32: BENCHMARKS.md.

The entry points take the run's InferenceSettings (src_files/settings.py) and the ModelConfig the checkpoint was
loaded with (src_files/inference/load.py): `wants_int8`, `worth_it`, `calibration_images` and `int8_model`.
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
MIN_IMAGES = 256  # auto converts to int8 for at least this many images (see worth_it)
GUARD_MEAN, GUARD_MAX = 0.01, 0.15  # probability differences int8 may show against fp32 on the calibration images
VNNI_FLAGS = ('avx512_vnni', 'avx_vnni', 'amx_int8')
CACHE_VERSION = '1'
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
    """Whether this run takes the int8 path (settings: InferenceSettings; `zsl`: the loaded model's;
    `save_attention`: infer.py draws attention maps); UserError where --precision int8 cannot apply."""
    precision = settings.precision
    if precision not in ('auto', 'int8') or device.type != 'cpu':
        if precision == 'int8':
            raise UserError("--precision int8 is a CPU path (ONNX Runtime): add --device cpu, or use fp16 / bf16 on "
                            "the GPU")
        return False
    blockers = [flag for flag, on in (('--zsl 1', zsl), ('--compile', settings.speed.compile),
                                      ('--save-attention', save_attention)) if on]
    if str(settings.model_path).lower().endswith(('.onnx', '.pt2')):
        blockers.append('an exported --model-path')
    if precision == 'int8':
        if blockers:
            raise UserError(f"--precision int8 does not go with {blockers[0]}: leave one of them out")
        if not cpu_has_vnni():
            LOG.info("note: this CPU has no VNNI instructions: int8 may be slower than fp32 here (--precision fp32)")
        return True
    return not blockers and cpu_has_vnni()


def worth_it(settings, n_images):
    """Whether to convert for `n_images` images: always with --precision int8 or --calibration-data; under auto
    only from MIN_IMAGES on, since a first conversion (export, calibration, quantization) costs more than it saves
    on fewer images."""
    return settings.precision == 'int8' or bool(settings.calibration_data) or n_images >= MIN_IMAGES


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
    return lambda i: transform(load_rgb(paths[i]))


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
    with torch.no_grad():
        reference = probabilities(model(batch).float(), task)
    diff = np.abs(probabilities(int8(batch), task) - reference)
    return float(diff.mean()), float(diff.max())


def build_int8(model, config, model_path, class_names, batch, task, path):
    """Export `model` (fp32) to ONNX in a temporary folder and quantize it into `path`, calibrated on `batch`."""
    with tempfile.TemporaryDirectory() as tmp:
        fp32_path = os.path.join(tmp, 'model.onnx')
        meta = build_metadata(config.model_name, config.image_size, class_names, task=task, source=model_path)
        write_export(model.float().eval(), fp32_path, 'onnx', config.image_size, meta)
        batches = [batch[i:i + 8] for i in range(0, len(batch), 8)]
        # (whole or not at all: a stopped build leaves no broken cache entry)
        atomic_replace(lambda partial: quantize_onnx(fp32_path, partial, batches), path, suffix=f'.{os.getpid()}.tmp')


def int8_model(model, settings, config, class_names, calibration, task=MULTI):
    """The int8 OnnxModel of `model` (fp32, norms folded, on the CPU), or `model` itself where the accuracy guard
    fails. settings: the run's InferenceSettings (model_path, fold_norms, calibration_data); config: the
    ModelConfig the model was loaded with; `calibration`: () -> (batch, ids) of images to calibrate on when
    --calibration-data is not given (calibration_images)."""
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
    record = path[:-len('.onnx')] + '.json'  # the guard's result, written once the file is whole
    if not (os.path.isfile(path) and os.path.isfile(record)):
        LOG.info(f"quantizing the model to int8 (calibrated on {len(batch)} images; once per checkpoint, cached in "
                 f"{folder})")
        build_int8(model, config, settings.model_path, class_names, batch, task, path)
        mean, worst = guard(model, OnnxModel(path), batch, task)
        atomic_write_text(json.dumps({'mean': mean, 'max': worst, 'images': len(batch)}), record)
    with open(record) as f:
        checked = json.load(f)
    mean, worst = float(checked['mean']), float(checked['max'])
    if mean > GUARD_MEAN or worst > GUARD_MAX:
        LOG.info(f"note: int8 probabilities differ from fp32 by {mean:.4f} on average, {worst:.3f} at most, on the "
                 f"calibration images (allowed {GUARD_MEAN}, {GUARD_MAX}): running fp32")
        return model
    LOG.info(f"running int8 (ONNX Runtime; its probabilities within {mean:.4f} on average, {worst:.3f} at most, "
             f"of fp32 on {len(batch)} calibration images); --precision fp32 for the exact path")
    return OnnxModel(path)
