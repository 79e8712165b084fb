"""torch.load that runs no code from the file it reads.

A .pth file is a pickle, and unpickling can call any function the file names. Every load here uses
torch.load(weights_only=True), which rebuilds only tensors, containers, numbers and strings, plus the few
harmless types in SAFE_GLOBALS that published and older checkpoints keep beside their weights: the
argparse Namespace of their run, numpy numbers, dtypes and arrays. A file that names anything else is refused
(errors.refused_global tells which name); unsafe=True, the scripts' --unsafe-load, unpickles it in full and is
meant for trusted files only.

A .safetensors file (timm's and Hugging Face's format) is no pickle: a JSON header and raw tensor bytes.
load_safetensors reads it with the `safetensors` package, which never runs code from the file.
"""
import argparse
import struct

import numpy as np
import torch
from safetensors.torch import load_file


def _numpy_globals():
    """numpy scalars, dtypes and arrays, under the module names of numpy 1 (numpy.core) and 2 (numpy._core)."""
    scalar = np.float64(0).__reduce__()[0]  # multiarray.scalar
    reconstruct = np.zeros(0).__reduce__()[0]  # multiarray._reconstruct
    found = [np.ndarray, np.dtype] + [type(np.dtype(code)) for code in '?bBhHiIlLqQefdgFDGSUO']
    for function in (scalar, reconstruct):
        found += [(function, f'{package}.multiarray.{function.__name__}') for package in ('numpy.core', 'numpy._core')]
    return found


SAFE_GLOBALS = [argparse.Namespace] + _numpy_globals()


def torch_load(path, map_location='cpu', unsafe=False):
    """torch.load(path) with weights_only=True and SAFE_GLOBALS allowed for this load only; unsafe=True: a
    full unpickling (it runs whatever the file asks for)."""
    if unsafe:
        return torch.load(path, map_location=map_location, weights_only=False)
    with torch.serialization.safe_globals(SAFE_GLOBALS):
        return torch.load(path, map_location=map_location, weights_only=True)


def is_safetensors(path):
    """True if the file starts like a safetensors file: an 8-byte little-endian header length, then a JSON object
    of that length (a torch.save file starts with a zip or a pickle header instead)."""
    try:
        with open(path, 'rb') as f:
            head = f.read(9)
            if len(head) < 9 or head[8:9] != b'{':
                return False
            size = struct.unpack('<Q', head[:8])[0]
            f.seek(0, 2)
            return 8 + size <= f.tell()
    except OSError:
        return False


def load_safetensors(path, map_location='cpu'):
    """The tensors of a .safetensors file, as {name: tensor} on `map_location` (safe: no unpickling)."""
    device = map_location if isinstance(map_location, (str, torch.device)) else 'cpu'
    return load_file(path, device=str(device))
