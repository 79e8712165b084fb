"""Export a model to ONNX or torch.export (.pt2), check the file's logits against PyTorch's, and run it.

export.py is the command line; validate.py / infer.py can score an exported file with `OnnxModel(path)` (or
`load_onnx(path)` -> (runner, meta)).

- metadata.py: what an exported file records (class names, image size, input convention).
- onnx_export.py: write a model as an ONNX file or a .pt2 program.
- runtime.py: run an exported file (ONNX Runtime, torch.export.load): OnnxModel, load_onnx, load_pt2.
- parity.py: an exported file's logits against the PyTorch model's.
- quantize.py: ONNX Runtime static int8 quantization of an ONNX file.
- checked.py: export.py's writing: write, prove parity, quantize, then rename (or leave no file).
- cpu_int8.py: the fast CPU path of validate.py and infer.py (int8 through ONNX Runtime, cached, guarded).
- zsl_inputs.py: word vectors and class names baked into a zero-shot export.
"""
from .metadata import INPUT_CONVENTION, build_metadata, parse_metadata
from .onnx_export import DEFAULT_OPSET, EXPORTERS, write_export
from .parity import TOLERANCE, check_parity, compare, image_batches, random_batches
from .runtime import OnnxModel, load_exported, load_onnx, load_pt2

__all__ = ['INPUT_CONVENTION', 'build_metadata', 'parse_metadata', 'DEFAULT_OPSET', 'EXPORTERS', 'write_export',
           'TOLERANCE', 'check_parity', 'compare', 'image_batches', 'random_batches', 'OnnxModel',
           'load_exported', 'load_onnx', 'load_pt2']
