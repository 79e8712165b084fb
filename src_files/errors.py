"""The one exception type whose message is meant for the user.

Library code raises ``UserError`` for bad input (a missing folder, a corrupt image, a checkpoint of another
model, ...). The top-level scripts catch it and print ``error: <message>`` as a single line and exit 1, so a
user never sees a traceback for a mistake they can fix. Messages name the problem, the path where there is
one, and what to do. `why_torch_load_failed` words the usual reasons a checkpoint file cannot be read.
"""
import os
import zipfile


class UserError(Exception):
    """An error caused by the user's input; its message is printed as one line by the scripts."""


def _starts_like_a_pickle(path):
    try:
        with open(path, 'rb') as f:
            return f.read(1) == b'\x80'  # the PROTO opcode that every binary pickle starts with
    except OSError:
        return False


def why_torch_load_failed(path, error):
    """A short reason, for a user, why torch.load could not read the file at `path`."""
    first = (str(error).strip().splitlines() or [''])[0][:200]
    try:
        empty = os.path.getsize(path) == 0
    except OSError:
        empty = False
    if empty:
        return 'the file is empty'
    if isinstance(error, EOFError) or 'central directory' in first or 'unexpected pos' in first:
        return 'the file is truncated or corrupt: copy it again'
    # torch.save writes a zip file (before PyTorch 1.6: a bare pickle)
    if not zipfile.is_zipfile(path) and not _starts_like_a_pickle(path):
        return 'it was not written by torch.save'
    return f'{type(error).__name__}: {first}' if first else type(error).__name__
