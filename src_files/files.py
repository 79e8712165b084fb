"""Writing files so that a run stopped at any moment, or a disk that fills up, leaves either the previous file or the
new one, never a half-written one, and no temporary file.

Everything is written to `<path>.<pid>.tmp` (one name per writing process: two processes never share one),
flushed to disk, then renamed onto `<path>`. Any failure removes the temporary file; a failed write (a full disk,
a folder that cannot be written) becomes one line naming the file and saying that the previous one is intact.
"""
import contextlib
import errno
import os
import socket
import time

import torch

try:
    import fcntl
except ImportError:  # (Windows)
    fcntl = None

from src_files.errors import UserError


def temporary_name(path, suffix='.tmp'):
    """The temporary file of `path` for this process."""
    return f"{path}.{os.getpid()}{suffix}"


def write_error(path, error):
    """The UserError of a failed write of `path`: what failed (a full disk said as such) and that the previous file,
    if any, is intact. `error`: an OSError, or torch.save's RuntimeError around one."""
    return UserError(f"cannot write {path}: {_reason(path, error)}; the previous {os.path.basename(path)}, if any, "
                     f"is intact")


def _reason(path, error):
    os_error = _behind(error, OSError)
    if os_error is not None and os_error.errno == errno.ENOSPC or _disk_full(path):
        return "no space left on the device (free some disk space)"
    if os_error is not None:
        return os_error.strerror or str(os_error)
    return (str(error).strip().splitlines() or [type(error).__name__])[-1]


def _writer_failed(error):
    """torch.save's zip writer reporting that the file could not be written (it does not keep the OSError)."""
    text = str(error)
    return isinstance(error, RuntimeError) and ('inline_container' in text or 'PytorchStreamWriter' in text or
                                                'file write failed' in text)


def _disk_full(path):
    try:
        stats = os.statvfs(os.path.dirname(os.path.abspath(path)))
    except OSError:
        return False
    return stats.f_bavail * stats.f_frsize < (1 << 20)


def _behind(error, kind):
    """The exception of type `kind` that `error` is, or was raised while handling (torch.save's zip writer turns an
    OSError or a Ctrl-C into a RuntimeError on its way out); None if none."""
    while error is not None:
        if isinstance(error, kind):
            return error
        error = error.__cause__ or error.__context__
    return None


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


def _remove(path):
    try:
        os.remove(path)
    except OSError:
        pass


def atomic_replace(write, path, suffix='.tmp'):
    """Call `write(tmp)` to make the temporary file of `path` (its name ends in `suffix`), then rename it onto `path`;
    on any failure the temporary file is removed and `path` is left as it was. A failed write (OSError, or the
    RuntimeError torch.save makes of one) is a UserError naming `path`; Ctrl-C / SIGTERM go on as they are."""
    tmp = temporary_name(path, suffix)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException as error:
        _remove(tmp)
        interrupt = _behind(error, KeyboardInterrupt)
        if interrupt is not None:
            if interrupt is error:
                raise
            raise interrupt from None
        if isinstance(error, OSError) or _behind(error, OSError) is not None or _writer_failed(error):
            raise write_error(path, error) from None
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(path)))


def _write_file(tmp, mode, write, **kwargs):
    with open(tmp, mode, **kwargs) as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())


def atomic_save(obj, path):
    """torch.save `obj` to `path`, atomically (atomic_replace)."""
    atomic_replace(lambda tmp: _write_file(tmp, 'wb', lambda f: torch.save(obj, f)), path)


def atomic_write_text(text, path):
    """Write `text` to `path` (UTF-8), atomically (atomic_replace)."""
    atomic_replace(lambda tmp: _write_file(tmp, 'w', lambda f: f.write(text), encoding='utf-8', newline=''), path)


def _cannot_write_in(folder):
    """Why no file can be written in `folder`, created if missing (None if one can): found with a probe file, which is
    always removed."""
    probe = os.path.join(folder, f'.write_test_{os.getpid()}')
    try:
        os.makedirs(folder, exist_ok=True)
        with open(probe, 'w') as f:
            f.write('ok')
            f.flush()
            os.fsync(f.fileno())
    except OSError as error:
        return _reason(probe, error)
    finally:
        _remove(probe)
    return "no space left on the device (free some disk space)" if _disk_full(probe) else None


def check_writable(path, flag):
    """Before the work: create the folder of the file `path` (given with `flag`) and check that a file can be written
    there, or a one-line UserError."""
    reason = _cannot_write_in(os.path.dirname(os.path.abspath(path)))
    if reason:
        raise UserError(f"cannot write {flag} {path}: {reason}")


def prepare_output_dir(path, flag='--output-dir'):
    """Create the folder `path` and check that a file can be written in it, or raise a UserError naming it (and
    `flag`)."""
    reason = _cannot_write_in(path)
    if reason:
        raise UserError(f"cannot write to the output folder {path}: {reason} (choose another {flag})")
    return path


@contextlib.contextmanager
def folder_lock(folder):
    """Hold an exclusive lock on `folder` (flock on `folder/.lock`, which names the holder) for the block: a second
    process asking for it gets a UserError at once, naming the holder. The kernel releases the lock when the process
    ends, however it ends, so a killed run never leaves the folder locked. (No-op where flock does not exist.)"""
    if fcntl is None:
        yield
        return
    path = os.path.join(folder, '.lock')
    handle = open(path, 'a+', encoding='utf-8')
    try:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.seek(0)
            holder = handle.read().strip() or 'another process'
            raise UserError(f"another run is writing to {folder} ({holder}): wait for it to end, or give this run "
                            f"another --output-dir") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} on {socket.gethostname()}, since {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        handle.flush()
        yield
    finally:
        handle.close()
