"""Run an exported file: ONNX through ONNX Runtime (CPU), .pt2 through torch.export.load.

    runner, meta = load_onnx('model.onnx')       # runner(images [N, 3, S, S] float32) -> numpy logits [N, C]
    model = OnnxModel('model.onnx')              # model(images) -> torch logits; drop-in for `model(images)` code
    meta['class_names'], meta['image_size']      # and the input convention: meta['input'] (values in [0, 1])
"""
import json
import os

import numpy as np
import torch

from src_files.errors import UserError
from src_files.export.metadata import PT2_EXTRA_FILE, parse_metadata


def _first_line(error):
    return (str(error).strip().splitlines() or [''])[0][:200]


def _require_file(path, what):
    if not path or not os.path.isfile(path):
        raise UserError(f"{what} not found: {path}")


def _as_batch(images, image_size, path):
    """images (torch or numpy) -> contiguous float32 numpy [N, 3, S, S], or a UserError naming the shape wanted."""
    if isinstance(images, torch.Tensor):
        images = images.detach().to('cpu', torch.float32).numpy()
    images = np.ascontiguousarray(images, dtype=np.float32)
    if images.ndim != 4 or tuple(images.shape[1:]) != (3, image_size, image_size):
        raise UserError(f"{path} takes images of shape [N, 3, {image_size}, {image_size}], got "
                        f"{list(images.shape)} (resize the images to --image-size {image_size})")
    return images


class OnnxRunner:
    """runner(images) -> numpy float32 logits [N, C] from an ONNX Runtime session."""

    def __init__(self, session, image_size, path):
        self.session = session
        self.image_size = image_size
        self.path = path
        self.input_name = session.get_inputs()[0].name

    def __call__(self, images):
        batch = _as_batch(images, self.image_size, self.path)
        return self.session.run(None, {self.input_name: batch})[0]


def load_onnx(path, threads=None):
    """(runner, meta) for an ONNX file written by export.py; runner(images [N, 3, S, S] float32, torch or numpy)
    -> numpy logits [N, C]; meta: class_names, image_size, model_name, num_classes, zsl, input (the
    convention: RGB in [0, 1], no mean/std), and the export's other records (opset, exporter, source, ...).
    `threads`: ONNX Runtime's intra-op threads (None: its default). UserError if onnxruntime is missing or the
    file is not such a model."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise UserError("running an ONNX model needs onnxruntime: pip install onnxruntime") from None
    _require_file(path, 'ONNX model')
    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    if threads:
        options.intra_op_num_threads = int(threads)
    try:
        session = ort.InferenceSession(str(path), sess_options=options, providers=['CPUExecutionProvider'])
    except Exception as error:  # noqa: BLE001 - onnxruntime raises its own types for any unreadable file
        raise UserError(f"{path} is not a readable ONNX model ({type(error).__name__}: {_first_line(error)})") \
            from None
    meta = parse_metadata(dict(session.get_modelmeta().custom_metadata_map), path)
    if len(session.get_inputs()) != 1:
        raise UserError(f"{path} takes {len(session.get_inputs())} inputs; an export of this project takes only "
                        f"images")
    return OnnxRunner(session, meta['image_size'], path), meta


def load_pt2(path):
    """(runner, meta) for a .pt2 file written by export.py (torch.export.load), as load_onnx."""
    _require_file(path, '.pt2 program')
    extra = {PT2_EXTRA_FILE: ''}
    try:
        program = torch.export.load(str(path), extra_files=extra)
    except Exception as error:  # noqa: BLE001 - torch.export.load raises many types on a foreign file
        raise UserError(f"{path} is not a readable torch.export program ({type(error).__name__}: "
                        f"{_first_line(error)})") from None
    try:
        props = json.loads(extra[PT2_EXTRA_FILE]) if extra[PT2_EXTRA_FILE] else {}
    except ValueError:
        props = {}
    meta = parse_metadata(props if isinstance(props, dict) else {}, path)
    module = program.module()

    def runner(images):
        batch = torch.from_numpy(_as_batch(images, meta['image_size'], path))
        with torch.no_grad():
            return module(batch).numpy()
    return runner, meta


def load_exported(path, threads=None):
    """load_pt2 for a .pt2 file, else load_onnx."""
    return load_pt2(path) if str(path).endswith('.pt2') else load_onnx(path, threads=threads)


class OnnxModel:
    """An exported file (ONNX, or .pt2 by its extension) that behaves like the PyTorch model for inference
    code: `model(images)` returns torch float32 logits [N, C] (on the images' device), `.eval()` / `.train()` /
    `.to()` return the model itself. Attributes: class_names, image_size, model_name, num_classes, meta, path."""

    training = False

    def __init__(self, path, threads=None):
        self.path = str(path)
        self.runner, self.meta = load_exported(path, threads=threads)
        self.class_names = self.meta['class_names']
        self.image_size = self.meta['image_size']
        self.model_name = self.meta.get('model_name', '')
        self.num_classes = self.meta['num_classes']

    def __call__(self, images):
        device = images.device if isinstance(images, torch.Tensor) else torch.device('cpu')
        return torch.from_numpy(np.asarray(self.runner(images))).to(device)

    def eval(self):
        return self

    def train(self, mode=True):
        if mode:
            raise UserError(f"{self.path} is an exported model: it can only run inference")
        return self

    def to(self, *device_or_dtype, **options):
        return self  # runs on the CPU, in fp32; inputs of any device or dtype are converted

    def __repr__(self):
        return f"OnnxModel({self.path!r}, {self.model_name} {self.image_size}px, {self.num_classes} classes)"
