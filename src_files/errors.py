"""The one exception type whose message is meant for the user.

Library code raises ``UserError`` for bad input (a missing folder, a corrupt image, a checkpoint of another
model, ...). The top-level scripts catch it and print ``error: <message>`` as a single line and exit 1, so a
user never sees a traceback for a mistake they can fix. Messages name the problem, the path where there is
one, and what to do. `why_torch_load_failed` words the usual reasons a checkpoint file cannot be read, among
them `refused_global`: the file pickles something that only a full (code-running) unpickling would rebuild.
"""
import os
import re
import zipfile


class UserError(Exception):
    """An error caused by the user's input; its message is printed as one line by the scripts."""
    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (what schedulers send to stop a job), handled as Ctrl-C is."""


class Interrupted(UserError):
    """A run stopped by Ctrl-C (exit code 130) or SIGTERM (143); the message says what was kept."""

    def __init__(self, message, signal_name='SIGINT'):
        super().__init__(message)
        self.exit_code = 143 if signal_name == 'SIGTERM' else 130


def _starts_like_a_pickle(path):
    try:
        with open(path, 'rb') as f:
            return f.read(1) == b'\x80'  # the PROTO opcode that every binary pickle starts with
    except OSError:
        return False


def refused_global(error):
    """The type or function (e.g. 'posix.system') that a weights_only torch.load refused to unpickle, or None if
    `error` is not such a refusal."""
    text = str(error)
    if 'Weights only load failed' not in text:
        return None
    match = re.search(r'GLOBAL (\S+) (?:was not an allowed global|whose module)', text) or re.search(
        r"(?:add_safe_globals`,? but got|reduce for unrecognized function) (?:<class '([\w.]+)'>|(\S+))", text)
    return next((name for name in match.groups() if name), None) if match else None


def _weights_only_detail(text):
    """The line of a weights_only failure message that says what failed (torch wraps it in advice)."""
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.startswith('Check the doc')]
    return lines[-1].replace('WeightsUnpickler error: ', '')[:200] if lines else ''


def why_torch_load_failed(path, error):
    """A short reason, for a user, why torch.load could not read the file at `path`."""
    refused = refused_global(error)
    if refused:
        return (f'it pickles {refused}, which is none of the plain types a checkpoint holds; it was not unpickled, '
                f'as that could run code')
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
    if 'Weights only load failed' in first:
        first = _weights_only_detail(str(error))
    return f'{type(error).__name__}: {first}' if first else type(error).__name__
