"""Writing files so that a run stopped at any moment leaves either the previous file or the new one, never a
half-written one: everything is written to `<path>.tmp`, flushed to disk, then renamed onto `<path>`."""
import os

import torch

from src_files.errors import UserError


def prepare_output_dir(path, flag='--output-dir'):
    """Create `path` and check that a file can be written in it, or raise a UserError naming it (and `flag`)."""
    try:
        os.makedirs(path, exist_ok=True)
        probe = os.path.join(path, f'.write_test_{os.getpid()}')
        with open(probe, 'w') as f:
            f.write('ok')
        os.remove(probe)
    except OSError as error:
        reason = error.strerror or str(error)
        raise UserError(f"cannot write to the output folder {path}: {reason} (choose another {flag})") \
            from None
    return path


def _fsync_dir(path):
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_save(obj, path):
    """torch.save to `path.tmp`, fsync, then os.replace onto `path`."""
    tmp = path + '.tmp'
    try:
        with open(tmp, 'wb') as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        try:
            os.remove(tmp)
        except OSError:
            pass
        if isinstance(error, OSError):
            raise UserError(f"cannot write {path}: {error.strerror or error} (the previous file, if any, is "
                            f"intact)") from None
        interrupt = _interrupt_behind(error)  # (torch.save's zip writer turns Ctrl-C into a RuntimeError)
        if interrupt is not None and interrupt is not error:
            raise interrupt from None
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _interrupt_behind(error):
    """The KeyboardInterrupt (or Terminated) that `error` is, or was raised while handling; None if none."""
    while error is not None:
        if isinstance(error, KeyboardInterrupt):
            return error
        error = error.__context__
    return None


def atomic_write_text(text, path):
    """Write `text` to `path.tmp`, fsync, then os.replace onto `path` (UTF-8)."""
    tmp = path + '.tmp'
    with open(tmp, 'w', encoding='utf-8', newline='') as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def atomic_replace(write, path, suffix='.tmp'):
    """Call `write(tmp)` to make the file `path + suffix`, then rename it onto `path`; on any failure the
    partial file is removed and `path` is left as it was (for writers that take a file name: plots, images)."""
    tmp = path + suffix
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
