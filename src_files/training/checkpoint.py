"""Atomic checkpoint files of a training run.

- `latest.pth`: everything needed to continue exactly (model, EMA, optimizer, scheduler, loss scaler, epoch,
  global step, RNG states, arguments, best score, class names, per-epoch history).
- `best.pth`: model-zoo format, `{'model': state_dict, 'idx_to_class': {i: name}, ...}`, holding the better
  of the model and its EMA at the best epoch; validate.py and infer.py load it.

Every file is written to a temporary file of its own (src_files/files.py), flushed to disk, then renamed over
`<path>`: a run killed at any moment leaves the previous good file in place.
"""
import contextlib
import logging
import os
import random

import numpy as np
import torch

from src_files import distributed
from src_files.checksum import verify_checksum, with_checksum
from src_files.errors import UserError, why_torch_load_failed
from src_files.files import atomic_save, folder_lock
from src_files.safe_load import torch_load

LOG = logging.getLogger(__name__)

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
    save(dict({'model': state_dict, 'idx_to_class': {i: n for i, n in enumerate(class_names)}, 'meta': meta},
              **(extra or {})), path)


def save(obj, path):
    """Write a checkpoint dict atomically, with the checksum of its tensors (src_files/checksum.py)."""
    atomic_save(with_checksum(obj), path)


def refuse_to_overwrite(output_dir, allow_unfinished_first_epoch=False):
    """A new run would overwrite the run already in `output_dir` (--resume forgotten, or a shared default folder).
    `allow_unfinished_first_epoch` (--resume auto): a best.pth without latest.pth, left by a run stopped while saving
    its first epoch, is started over: -> the note that says so (else None)."""
    latest, best = os.path.join(output_dir, LATEST), os.path.join(output_dir, BEST)
    if os.path.isfile(best) and not os.path.isfile(latest) and allow_unfinished_first_epoch:
        return (f"note: {output_dir} holds {BEST} but no {LATEST} (a run stopped while saving its first epoch): "
                f"starting that run over")
    if os.path.isfile(latest) or os.path.isfile(best):
        raise UserError(f"{output_dir} already holds a run ({LATEST} / {BEST}): continue it with --resume "
                        f"--output-dir {output_dir} (or --resume auto), or start the new run in another --output-dir "
                        f"(or delete that folder)")


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
    verify_checksum(state, path)
    needed = ('model', 'ema', 'optimizer', 'scheduler', 'epoch', 'args')
    if not isinstance(state, dict) or any(k not in state for k in needed):
        raise UserError(f"{path} is not a resumable checkpoint (it lacks the optimizer/scheduler state: resume "
                        f"needs a latest.pth written by train.py)")
    return state


@contextlib.contextmanager
def claim_output_dir(out_dir, info, fresh, allow_unfinished_first_epoch=False):
    """For the whole run: the main process holds the run folder's lock (files.folder_lock), so a second run into
    the same folder stops at once; a new run (`fresh`) checks again, under the lock, that the folder holds no run
    (two runs started together cannot both pass the first check). Every process stops if the folder cannot be
    claimed."""
    with contextlib.ExitStack() as stack:
        problem = None
        if info.is_main:
            try:
                stack.enter_context(folder_lock(out_dir))
                if fresh:
                    refuse_to_overwrite(out_dir, allow_unfinished_first_epoch)
            except UserError as error:
                problem = error
        if distributed.any_true(info, problem is not None):
            raise problem or UserError(f"the run folder {out_dir} could not be claimed (the main process says why)")
        yield
