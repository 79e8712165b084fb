"""Export a model to ONNX or torch.export (.pt2), check the file's logits against PyTorch's, and run it.

export.py is the command line; validate.py / infer.py can score an exported file with `OnnxModel(path)` (or
`load_onnx(path)` -> (runner, meta)).
"""
from .metadata import INPUT_CONVENTION, build_metadata, parse_metadata
from .onnx_export import DEFAULT_OPSET, EXPORTERS, write_export
from .parity import TOLERANCE, check_parity, compare, image_batches, random_batches
from .runtime import OnnxModel, load_exported, load_onnx, load_pt2

__all__ = ['INPUT_CONVENTION', 'build_metadata', 'parse_metadata', 'DEFAULT_OPSET', 'EXPORTERS', 'write_export',
           'TOLERANCE', 'check_parity', 'compare', 'image_batches', 'random_batches', 'OnnxModel',
           'load_exported', 'load_onnx', 'load_pt2']
