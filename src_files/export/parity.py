"""Parity proof of an exported file: its logits against the PyTorch model's on the same inputs.

The measure is max |exported - pytorch| / max |pytorch| over a batch (the largest difference relative to the
largest logit); fp32 exports pass at TOLERANCE = 1e-4.
"""
import numpy as np
import torch

from src_files.data.files import load_rgb
from src_files.helper_functions.augmentations import val_transform
from src_files.inference.predictions import list_images

TOLERANCE = 1e-4
MAX_CHECK_IMAGES = 16  # --check-images: the first images of the folder, in sorted order
CHECK_BATCH = 8


def compare(reference, candidate):
    """(max abs difference, max abs difference / max |reference|) of two [N, C] arrays."""
    reference = np.asarray(reference, dtype=np.float64)
    candidate = np.asarray(candidate, dtype=np.float64)
    if reference.shape != candidate.shape:
        return float('inf'), float('inf')
    diff = np.abs(candidate - reference)
    if not np.all(np.isfinite(diff)):
        return float('inf'), float('inf')
    max_abs = float(diff.max()) if diff.size else 0.0
    scale = float(np.abs(reference).max()) if reference.size else 0.0
    return max_abs, max_abs / max(scale, np.finfo(np.float32).tiny)


def random_batches(image_size):
    """[('random batch 1', x[:1]), ('random batch 2', x)]: uniform [0, 1) images, as the transforms give."""
    x = torch.rand(2, 3, image_size, image_size, generator=torch.Generator().manual_seed(1234))
    return [('random batch 1', x[:1]), ('random batch 2', x)]


def image_batches(folder, image_size, limit=MAX_CHECK_IMAGES):
    """Batches of the first `limit` images of `folder` (or an image list / one image), as val_transform
    makes them: [(name, tensor [n, 3, S, S])]."""
    paths, _ = list_images(folder)
    paths = paths[:limit]
    transform = val_transform(image_size)
    out = []
    for start in range(0, len(paths), CHECK_BATCH):
        chunk = paths[start:start + CHECK_BATCH]
        images = torch.stack([transform(load_rgb(p, upright=True)) for p in chunk])
        out.append((f'images {start + 1}-{start + len(chunk)} of {folder}', images))
    return out


def check_parity(model, runner, batches):
    """[(name, max abs difference, relative difference)] of `runner` (an exported file's) against `model` on
    each (name, images) of `batches`."""
    results = []
    for name, images in batches:
        with torch.no_grad():
            reference = model(images).float().numpy()
        max_abs, rel = compare(reference, runner(images))
        results.append((name, max_abs, rel))
    return results
