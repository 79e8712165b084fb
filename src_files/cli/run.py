"""How the scripts start and end: their log lines on stdout, and `run_main`, which turns every error a user can
cause (bad flags or data, a missing file, a full disk, Ctrl-C) into one line on stderr and an exit code."""
import errno
import logging
import os
import signal
import sys
import threading

import torch

from src_files import distributed
from src_files.errors import Terminated, UserError
from src_files.models.config import ConfigError


class _StdoutHandler(logging.StreamHandler):
    """Writes each message as a line to the current sys.stdout (looked up at every message, so redirections made
    after set-up are followed) and flushes it."""

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup_logging():
    """The library logs its notes and progress lines (logger 'src_files'); the scripts show them as plain
    lines on stdout, as print would. Called once by run_main."""
    logger = logging.getLogger('src_files')
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter('%(message)s'))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def _one_line(message):
    """The user-facing line of an error message.

    Exceptions raised in DataLoader workers come back with the worker's traceback in the message; the last
    line of it is the original message.
    """
    text = str(message).strip()
    if 'Traceback (most recent call last)' in text:
        last = [line for line in text.splitlines() if line.strip()][-1].strip()
        for prefix in ('src_files.errors.UserError: ', 'UserError: '):
            if last.startswith(prefix):
                last = last[len(prefix):]
        if ': ' in last and last.split(': ', 1)[0].replace('.', '').isidentifier() and \
                last.split(': ', 1)[0].split('.')[-1].endswith('Error'):
            last = last.split(': ', 1)[1]
        text = last
    return ' '.join(text.split())


def describe_os_error(error):
    parts = [error.strerror or str(error) or type(error).__name__]
    if error.filename:
        parts.append(str(error.filename))
    if getattr(error, 'filename2', None):
        parts.append(str(error.filename2))
    text = ': '.join(parts)
    if error.errno == errno.ENOSPC:
        text += ' (free some disk space)'
    return text


def stop_on_signals():
    """Ctrl-C (SIGINT) and SIGTERM (what job schedulers and `timeout` send) stop the run: the first one raises
    KeyboardInterrupt (Terminated for SIGTERM) in the main thread, so the run ends through its own clean-up (loader
    processes shut down, the one error line printed); any signal after it is ignored, so a second Ctrl-C cannot
    break into that clean-up or the interpreter's exit. -> the handlers it replaced (restore_signals)."""
    if threading.current_thread() is not threading.main_thread():
        return {}
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    previous = {sig: handler for sig, handler in previous.items() if handler != signal.SIG_IGN}  # (nohup, `&`)

    def stop(signum, frame):
        for sig in previous:  # (a Python no-op, not SIG_IGN: a signal already on its way must find a handler)
            signal.signal(sig, _ignore)
        if distributed.world_size() > 1:  # (a rank blocked in a collective would wait for peers that are stopping)
            code = 143 if signum == signal.SIGTERM else 130
            timer = threading.Timer(STOP_GRACE_S, _stop_now, args=(code,))
            timer.daemon = True
            timer.start()
        raise Terminated() if signum == signal.SIGTERM else KeyboardInterrupt()

    for sig in previous:
        signal.signal(sig, stop)
    return previous


def _ignore(signum, frame):
    """The handler after the first signal: the run is already ending."""


STOP_GRACE_S = 30  # a stopped training process of several that has not ended by then (a peer gone) exits at once


def _stop_now(code):
    print(f"error: stopped; this process did not end within {STOP_GRACE_S} s (the others had stopped): the saved "
          f"epochs are intact, continue with --resume", file=sys.stderr, flush=True)
    os._exit(code)


def restore_signals(previous):
    """Put back the handlers stop_on_signals replaced, unless a signal came (the process is ending: later ones stay
    ignored)."""
    if any(signal.getsignal(sig) is _ignore for sig in previous):
        return
    for sig, handler in previous.items():
        signal.signal(sig, handler if handler is not None else signal.SIG_DFL)


def out_of_host_memory(error):
    """Whether `error` says that the CPU allocator ran out of memory."""
    return isinstance(error, MemoryError) or "can't allocate memory" in str(error) or \
        'DefaultCPUAllocator: not enough memory' in str(error)


def run_main(main, argv=None):
    """Run `main(argv)` and exit with its return code; user errors print `error: <message>` and exit 1 (130 after
    Ctrl-C, 143 after SIGTERM, as shells report a process the signal ended)."""
    setup_logging()
    code = 0
    handlers = stop_on_signals()
    try:
        code = main(argv) or 0
    except UserError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr, flush=True)
        code = error.exit_code
    except ConfigError as error:  # model settings: named by their flags here
        print(f"error: {_one_line(error.as_flags())}", file=sys.stderr, flush=True)
        code = 1
    except OSError as error:  # missing / unwritable paths, full disk, ...
        print(f"error: {_one_line(describe_os_error(error))}", file=sys.stderr, flush=True)
        code = 1
    except torch.cuda.OutOfMemoryError:
        print("error: out of GPU memory: lower --batch-size (or --image-size)", file=sys.stderr, flush=True)
        code = 1
    except (MemoryError, RuntimeError) as error:
        if distributed.peer_lost(error):
            message = (f"another training process of this run stopped ({_one_line(error)[:160]}); the saved epochs "
                       f"are intact: restart with --resume auto (torchrun --max-restarts does it)")
        elif out_of_host_memory(error):
            message = ("out of memory (RAM): lower --batch-size (or --image-size, or --workers); what was saved "
                       "before is intact")
        else:
            raise
        print(f"error: {message}", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt as stop:
        print("error: interrupted", file=sys.stderr, flush=True)
        code = 143 if isinstance(stop, Terminated) else 130
    finally:
        distributed.cleanup()
        restore_signals(handlers)
    sys.stdout.flush()
    sys.exit(code)
