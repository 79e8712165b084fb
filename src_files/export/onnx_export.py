"""Write a model (fp32, on the CPU, norms folded) as an ONNX file or a torch.export program (.pt2).

The batch dimension is dynamic; the image size is fixed (TResNet's space-to-depth stem and the head's token
count depend on it). The default exporter is torch.onnx's dynamo exporter (torch.export + onnxscript) at opset
18: it traces the same graph as the .pt2 format, writes the head's attention (scaled_dot_product_attention) as
plain MatMul + Softmax, which every ONNX runtime runs, and keeps the batch symbolic without shape arithmetic.
Opset 23 writes one Attention node instead (ONNX Runtime 1.32 runs it). The legacy TorchScript exporter
(exporter='torchscript') gives the same numbers but is deprecated since PyTorch 2.9.
"""
import contextlib
import io
import json
import logging
import os
import warnings

import torch

from src_files.errors import UserError
from src_files.export.metadata import PT2_EXTRA_FILE

DEFAULT_OPSET = 18
EXPORTERS = ('dynamo', 'torchscript')
INPUT_NAME, OUTPUT_NAME = 'images', 'logits'
SAMPLE_BATCH = 2  # torch.export specialises a dimension of size 0 or 1: trace with 2


def sample_input(image_size, batch=SAMPLE_BATCH):
    return torch.rand(batch, 3, image_size, image_size, generator=torch.Generator().manual_seed(0))


def _batch_dim():
    return torch.export.Dim('batch', min=1)


def export_program(model, image_size):
    """torch.export.ExportedProgram of `model` (eval mode, CPU, fp32) with a dynamic batch dimension."""
    with torch.no_grad():
        return torch.export.export(model, (sample_input(image_size),), dynamic_shapes=({0: _batch_dim()},))


def write_pt2(model, path, image_size, metadata):
    """Save the ExportedProgram with torch.export.save; `metadata` goes into the archive as PT2_EXTRA_FILE."""
    program = export_program(model, image_size)
    torch.export.save(program, path, extra_files={PT2_EXTRA_FILE: json.dumps(metadata)})


@contextlib.contextmanager
def _quiet():
    """torch.onnx and onnxscript print progress lines and warnings that say nothing to a user of export.py."""
    loggers = [logging.getLogger(name) for name in ('torch.onnx', 'onnxscript', 'onnx_ir', 'torch.export')]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.ERROR)
        with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
            warnings.simplefilter('ignore')
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _export_dynamo(model, path, image_size, opset):
    try:
        import onnxscript  # noqa: F401  (what the dynamo exporter translates with)
    except ImportError:
        raise UserError("the dynamo ONNX exporter needs onnxscript: pip install onnxscript (or pass --exporter "
                        "torchscript)") from None
    with torch.no_grad():
        program = torch.onnx.export(model, (sample_input(image_size),), dynamo=True, opset_version=opset,
                                    input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                                    dynamic_shapes=({0: _batch_dim()},), verbose=False)
    program.save(path, external_data=False)


def _export_torchscript(model, path, image_size, opset):
    with torch.no_grad():
        torch.onnx.export(model, (sample_input(image_size),), path, dynamo=False, opset_version=opset,
                          input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                          dynamic_axes={INPUT_NAME: {0: 'batch'}, OUTPUT_NAME: {0: 'batch'}})


def write_onnx(model, path, image_size, metadata, opset=DEFAULT_OPSET, exporter='dynamo'):
    """Export `model` to the ONNX file `path` (one file, weights inside) and store `metadata` in its
    metadata_props."""
    if exporter not in EXPORTERS:
        raise ValueError(f'exporter must be one of {EXPORTERS}, got {exporter!r}')
    try:
        import onnx
    except ImportError:
        raise UserError("exporting to ONNX needs the onnx package: pip install onnx onnxruntime") from None
    with _quiet():
        (_export_dynamo if exporter == 'dynamo' else _export_torchscript)(model, path, image_size, opset)
    proto = onnx.load(path)
    inputs = [i.name for i in proto.graph.input if i.name not in {t.name for t in proto.graph.initializer}]
    if inputs != [INPUT_NAME]:  # a zero-shot head's word vectors must be constants, not inputs
        raise UserError(f"the exported graph takes {inputs} instead of only '{INPUT_NAME}'")
    del proto.metadata_props[:]
    for key, value in metadata.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    try:
        onnx.save(proto, path)
    except ValueError as error:  # protobuf's 2 GB limit
        raise UserError(f"cannot write {path} as one ONNX file: {error}") from None


def write_export(model, path, fmt, image_size, metadata, opset=DEFAULT_OPSET, exporter='dynamo'):
    """Write `model` to `path` in `fmt` ('onnx' or 'pt2'); the model must be in eval mode, fp32, on the CPU."""
    param = next(model.parameters())
    if param.device.type != 'cpu' or param.dtype != torch.float32 or model.training:
        raise ValueError('export a model in eval mode, fp32, on the CPU')
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise UserError(f"cannot write {path}: the folder {directory} does not exist")
    if fmt == 'onnx':
        write_onnx(model, path, image_size, metadata, opset=opset, exporter=exporter)
    elif fmt == 'pt2':
        write_pt2(model, path, image_size, metadata)
    else:
        raise ValueError(f"format must be 'onnx' or 'pt2', got {fmt!r}")
