"""A checksum of every tensor a checkpoint holds, recorded when it is written and checked when it is read.

A file damaged after it was written (a bad disk, a copy cut short then patched, bytes overwritten) may still
unpickle into finite weights that give wrong answers without complaint. Files written by train.py record
'checksum': SHA-256 over each tensor's name, dtype, shape and bytes, in a fixed order; readers recompute it and
refuse a file whose tensors do not match. Files without a checksum (the published model zoo's, other
projects') load as before.
"""
import hashlib

import torch

from src_files.errors import UserError

KEY = 'checksum'


def _tensors(value, name=''):
    """(name, tensor) of every tensor in nested dicts / lists / tuples, in a fixed order."""
    if isinstance(value, torch.Tensor):
        yield name, value
    elif isinstance(value, dict):
        for key in sorted(value, key=str):
            yield from _tensors(value[key], f"{name}/{key}")
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            yield from _tensors(item, f"{name}/{i}")


def tensor_checksum(obj):
    """SHA-256 (hex) over the tensors of `obj` (a checkpoint dict; its own KEY entry left out)."""
    digest = hashlib.sha256()
    content = {k: v for k, v in obj.items() if k != KEY} if isinstance(obj, dict) else obj
    for name, tensor in _tensors(content):
        flat = tensor.detach().cpu().contiguous().reshape(-1)
        digest.update(f"{name}:{flat.dtype}:{tuple(tensor.shape)}".encode())
        digest.update(flat.view(torch.uint8).numpy().tobytes() if flat.numel() else b'')
    return digest.hexdigest()


def with_checksum(obj):
    """The checkpoint dict `obj` with its checksum recorded."""
    return dict(obj, **{KEY: tensor_checksum(obj)})


def verify_checksum(obj, path):
    """Refuse (one-line UserError) a checkpoint whose tensors do not match the checksum it records."""
    if not isinstance(obj, dict) or not isinstance(obj.get(KEY), str):
        return
    if tensor_checksum(obj) != obj[KEY]:
        raise UserError(f"{path} is damaged: its tensors do not match the checksum recorded when it was written "
                        f"(use another copy of the file)")
