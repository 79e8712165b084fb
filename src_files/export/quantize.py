"""int8: ONNX Runtime static quantization of an exported ONNX file, the fast CPU path.

Convolution and matrix-product weights become int8 per output channel, activations uint8 per tensor, in the QDQ
format (QuantizeLinear / DequantizeLinear pairs around each quantized op, which ONNX Runtime fuses into int8
kernels); the activation ranges are calibrated (min / max) on a few batches of real images. CPUs with VNNI
(AVX512-VNNI, AVX-VNNI or AMX) run the int8 kernels natively; elsewhere int8 is not faster, and may saturate.
The file keeps the export's metadata and records `precision: int8` and the number of calibration images.
"""
import logging
import os
import tempfile

import numpy as np

from src_files.errors import UserError

CALIBRATION_IMAGES = 32  # enough for stable min / max ranges; each costs one fp32 forward at quantization time


def _reader(input_name, batches):
    from onnxruntime.quantization import CalibrationDataReader

    class Batches(CalibrationDataReader):
        def __init__(self):
            self.items = iter([{input_name: np.ascontiguousarray(b, dtype=np.float32)} for b in batches])

        def get_next(self):
            return next(self.items, None)
    return Batches()


def quantize_onnx(src, dst, batches):
    """Write the int8 version of the fp32 ONNX file `src` to `dst`, calibrated on `batches` (numpy or torch
    float32 [N, 3, S, S]); the metadata of `src` is kept."""
    import onnx
    try:
        from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
        from onnxruntime.quantization.shape_inference import quant_pre_process
    except ImportError:
        raise UserError("int8 quantization needs onnxruntime: pip install onnxruntime") from None
    batches = [b.detach().cpu().numpy() if hasattr(b, 'detach') else b for b in batches]
    if not batches:
        raise UserError("int8 quantization needs calibration images: none were found")
    source = onnx.load(src)
    input_name = [i.name for i in source.graph.input][0]
    root = logging.getLogger()  # (the quantizer logs a warning per 1-D weight it leaves per-tensor)
    level, handlers = root.level, list(root.handlers)
    with tempfile.TemporaryDirectory() as tmp:
        prepared = os.path.join(tmp, 'prepared.onnx')
        try:
            root.setLevel(logging.ERROR)
            quant_pre_process(src, prepared)
            quantize_static(prepared, dst, _reader(input_name, batches), quant_format=QuantFormat.QDQ,
                            per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)
        finally:
            root.setLevel(level)
            for handler in [h for h in root.handlers if h not in handlers]:  # (its logging.info() gives the root
                root.removeHandler(handler)  # logger a handler, which would print the scripts' later lines twice)
    model = onnx.load(dst)
    del model.metadata_props[:]
    props = {p.key: p.value for p in source.metadata_props}
    props.update(precision='int8', calibration_images=str(sum(len(b) for b in batches)))
    for key, value in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, dst)
