"""Scoring a dataset: sigmoid (multi-label) or softmax (single-label) outputs for every image exactly once,
across any number of processes; the multi-label metrics and single-label top-k accuracy; a checkpoint's classes
matched to the data's by name, and the note on unknown labels."""
import contextlib
import logging

import numpy as np
import torch
from torch.utils.data import DataLoader, Subset
from tqdm import tqdm

from src_files import distributed
from src_files.errors import UserError
from src_files.helper_functions.augmentations import to_float
from src_files.helper_functions.metrics import mAP, threshold_metrics

LOG = logging.getLogger(__name__)


def autocast(device, dtype):
    """torch.autocast for dtype (None = full precision)."""
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)


def eval_loader(dataset, info, batch_size, workers, persistent=False):
    """The loader of predict: this process's share of `dataset` (every world_size-th image), in order. With
    `persistent`, its loader processes are kept for the next pass (train.py evaluates every epoch)."""
    indices = distributed.shard_indices(len(dataset), info)
    return DataLoader(Subset(dataset, indices), batch_size=batch_size, shuffle=False, num_workers=workers,
                      pin_memory=info.device.type == 'cuda', drop_last=False,
                      persistent_workers=persistent and workers > 0)


@torch.no_grad()
def predict(module, dataset, info, batch_size, workers, amp_dtype=None, input_dtype=None, channels_last=False,
            desc='validate', activation='sigmoid', loader=None):
    """(scores, targets): numpy [N, C] scores (`activation`: 'sigmoid' per class, or 'softmax' over the classes)
    and targets ([N, C], or class indices [N] for single-label data) of the whole `dataset`, in dataset order.

    Each rank scores every world_size-th image (no padding, so nothing is counted twice) and the rows are
    gathered on every rank. `amp_dtype` runs the forward under autocast; `input_dtype` casts the inputs (for a
    model converted with .half()). `loader`: eval_loader's of `dataset`, kept from an earlier call.
    """
    device = info.device
    loader = loader if loader is not None else eval_loader(dataset, info, batch_size, workers)
    indices = loader.dataset.indices
    was_training = module.training
    module.eval()
    scores, targets = [], []
    bar = tqdm(loader, desc=desc, disable=not info.is_main, leave=False, dynamic_ncols=True, mininterval=1.0)
    try:
        for images, target in bar:
            images = to_float(images.to(device, non_blocking=True))  # (uint8 batches: scaled on the device)
            if input_dtype is not None:
                images = images.to(input_dtype)
            if channels_last and device.type == 'cuda':
                images = images.contiguous(memory_format=torch.channels_last)
            with autocast(device, amp_dtype):
                logits = module(images)
            logits = logits.float()
            scores.append(torch.softmax(logits, dim=1) if activation == 'softmax' else torch.sigmoid(logits))
            targets.append(target)
    finally:
        bar.close()
    module.train(was_training)
    if scores:
        scores = torch.cat(scores).cpu().numpy()
        targets = torch.cat(targets).numpy().astype(np.float32)
    else:
        num_classes = len(getattr(dataset, 'class_names', [])) or 1
        scores = np.zeros((0, num_classes), np.float32)
        single = getattr(dataset, 'task', None) == 'single-label'
        targets = np.zeros((0,) if single else (0, num_classes), np.float32)
    return distributed.gather_rows(info, indices, scores, targets)


def multilabel_metrics(scores, targets, thr=0.75):
    """mAP plus the threshold metrics CP, CR, CF1, OP, OR, OF1, all in percent."""
    out = {'mAP': mAP(targets, scores)}
    out.update(threshold_metrics(targets, scores, thr))
    return out


def topk_accuracy(scores, labels, ks=(1, 5)):
    """{'top1': ..., 'top5': ...} in percent: how often the true class (`labels`, class indices [N]) is among the
    k best scores of its row (ties: the lower class index first, as numpy's argmax). With fewer than k classes,
    top-k counts every class."""
    scores = np.asarray(scores)
    labels = np.asarray(labels).astype(np.int64)
    order = np.argsort(-scores, axis=1, kind='stable') if len(labels) else np.zeros((0, 1), np.int64)
    out = {}
    for k in ks:
        hits = (order[:, :k] == labels[:, None]).any(axis=1)
        out[f'top{k}'] = 100.0 * float(hits.mean()) if len(labels) else 0.0
    return out


def _normalised(name):
    return str(name).strip().lower()


def match_classes(model_classes, splits, model_path, num_outputs):
    """Column of the model's output for each class of the data, in the data's order (None: the identity).

    A checkpoint that names its classes is matched by name (the data's class names, or their display names such
    as OpenImages' for its label ids); one that does not must have as many outputs as the data has classes.
    """
    data_classes = list(splits.class_names)
    named = model_classes and model_classes != [str(i) for i in range(len(model_classes))]
    if not named:
        if num_outputs != len(data_classes):
            raise UserError(f"the model scores {num_outputs} classes but {splits.format} data has "
                            f"{len(data_classes)}: give the checkpoint of a model trained on these classes")
        return None
    column_of = {}
    for i, name in enumerate(model_classes):
        column_of.setdefault(_normalised(name), i)
    displays = list(getattr(splits, 'display_names', None) or data_classes)
    columns, missing = [], []
    for name, display in zip(data_classes, displays):
        column = column_of.get(_normalised(name), column_of.get(_normalised(display)))
        (missing.append(name) if column is None else columns.append(column))
    if missing:
        raise UserError(f"{len(missing)} of the {len(data_classes)} classes of the data are not among the "
                        f"{len(model_classes)} classes of {model_path} (e.g. {missing[0]!r}; the model has "
                        f"{model_classes[0]!r}, ...): score it on data with the classes it was trained on")
    if columns != list(range(num_outputs)):
        LOG.info(f"note: the classes of {model_path} are in another order than the data's (or a superset of them): "
                 f"the scores are matched by class name")
        return np.asarray(columns)
    return None


def unknown_note(targets):
    """The line saying how many label entries were unknown (None when there were none)."""
    unknown = int((np.asarray(targets) < 0).sum())
    if not unknown:
        return None
    return (f"{unknown} of {np.size(targets)} label entries ({100 * unknown / np.size(targets):.1f}%) are unknown "
            f"and left out of each class's AP and counts")
