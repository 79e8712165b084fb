"""Atomic checkpoint files of a training run.

- `latest.pth`: everything needed to continue exactly (model, EMA, optimizer, scheduler, loss scaler, epoch,
  global step, RNG states, arguments, best score, class names, per-epoch history).
- `best.pth`: model-zoo format, `{'model': state_dict, 'idx_to_class': {i: name}, ...}`, holding the better
  of the model and its EMA at the best epoch; validate.py and infer.py load it.

Every file is written to `<path>.tmp`, flushed to disk, then renamed over `<path>`: a run killed at any
moment leaves the previous good file in place.
"""
import os
import random

import numpy as np
import torch

from src_files.errors import UserError, why_torch_load_failed
from src_files.files import atomic_save
from src_files.safe_load import torch_load

LATEST = 'latest.pth'
BEST = 'best.pth'


def cpu_state_dict(module):
    return {k: v.detach().cpu().contiguous().clone() for k, v in module.state_dict().items()}


def rng_state():
    """Python, numpy, torch and CUDA RNG states, as types torch.load(weights_only=True) accepts."""
    np_state = np.random.get_state()
    state = {'python': random.getstate(),
             'numpy': (np_state[0], torch.from_numpy(np_state[1].astype(np.int64)), int(np_state[2]),
                       int(np_state[3]), float(np_state[4])),
             'torch': torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state['cuda'] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state):
    random.setstate(_tuplify(state['python']))
    name, keys, pos, has_gauss, cached = state['numpy']
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state['torch'])
    if 'cuda' in state and torch.cuda.is_available():
        cuda_states = state['cuda']
        if len(cuda_states) == torch.cuda.device_count():
            torch.cuda.set_rng_state_all(cuda_states)


def _tuplify(x):
    if isinstance(x, (list, tuple)):
        return tuple(_tuplify(v) for v in x)
    return x


def save_best(path, state_dict, class_names, meta, extra=None):
    """Model-zoo format: {'model': state_dict, 'idx_to_class': {i: name}} plus 'meta' (how it was trained) and the
    `extra` entries (a zero-shot model's 'wordvecs' [300, n] and 'wordvec_classes', the classes it can name)."""
    atomic_save(dict({'model': state_dict, 'idx_to_class': {i: n for i, n in enumerate(class_names)}, 'meta': meta},
                     **(extra or {})), path)


def load_latest(path):
    """The dict saved as latest.pth, or a UserError saying what is wrong with the file."""
    if not os.path.isfile(path):
        raise UserError(f"nothing to resume: {path} not found (start without --resume, or point --output-dir "
                        f"at the folder of the run to continue)")
    try:
        state = torch_load(path)  # (never runs code from the file)
    except Exception as error:  # noqa: BLE001 - any failure means the file is not a resume checkpoint
        raise UserError(f"{path} is not a readable training checkpoint ({why_torch_load_failed(path, error)})") \
            from None
    needed = ('model', 'ema', 'optimizer', 'scheduler', 'epoch', 'args')
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise UserError(f"{path} is not a resumable checkpoint (it lacks the optimizer/scheduler state: resume "
                        f"needs a latest.pth written by train.py)")
    return state
