"""Argument parsing shared by the scripts, and `run_main`, which turns user errors into one line on stderr.

Every parser uses ArgumentDefaultsHelpFormatter, so `--help` shows each flag's default. Each flag also takes
its underscore spelling (`--model_name` for `--model-name`, as in the published commands), and a mistyped
flag gets one line naming the closest known one. `parse_args` also returns the set of flags the user typed,
so that `--demo`, `--resume` and checkpoint metadata can fill in the other ones without overriding what the
user asked for.
"""
import argparse
import difflib
import errno
import logging
import os
import sys

import torch

from src_files.errors import UserError
from src_files.models.compile import COMPILE_MODES
from src_files.models.config import ConfigError

LOG = logging.getLogger(__name__)

_UNSET = object()


class Parser(argparse.ArgumentParser):
    """An ArgumentParser that accepts `--a_b` (and `--a_b=value`) for each known flag `--a-b`, and reports a bad
    command line in one line (exit code 2, as argparse) instead of the usage text."""

    def parse_known_args(self, args=None, namespace=None):
        args = sys.argv[1:] if args is None else list(args)
        return super().parse_known_args(self._dashed(args), namespace)

    def parse_args(self, args=None, namespace=None):
        parsed, extras = self.parse_known_args(args, namespace)
        if extras:
            self.error(self._unrecognized(extras))
        return parsed

    def error(self, message):
        self.exit(2, f"error: {message}\n")

    def _dashed(self, argv):
        out = list(argv)
        for i, token in enumerate(out):
            if token == '--':  # what follows is not a flag
                break
            flag, equals, value = token.partition('=')
            dashed = flag.replace('_', '-')
            if flag.startswith('--') and flag not in self._option_string_actions and \
                    dashed in self._option_string_actions:
                out[i] = dashed + equals + value
        return out

    def _unrecognized(self, extras):
        """'unrecognized argument --modle-name; did you mean --model-name?' (each unknown flag, with a guess)."""
        flags = [token.split('=', 1)[0] for token in extras if token.startswith('-') and token != '--'] or extras
        known = [option for option in self._option_string_actions if option.startswith('--')]
        named = []
        for flag in flags:
            guess = difflib.get_close_matches(flag.replace('_', '-'), known, n=1)
            named.append((flag, guess[0] if guess else None))
        if len(named) == 1:
            flag, guess = named[0]
            return f"unrecognized argument {flag}; " + (f"did you mean {guess}?" if guess else "see --help")
        return "unrecognized arguments " + ', '.join(flag + (f" (did you mean {guess}?)" if guess else '')
                                                     for flag, guess in named) + "; see --help"


def make_parser(description):
    return Parser(description=description, formatter_class=argparse.ArgumentDefaultsHelpFormatter,
                  epilog="Each flag may also be spelled with underscores, e.g. --model_name=tresnet_l.")


def default_device():
    return 'cuda' if torch.cuda.is_available() else 'cpu'


def default_workers():
    """This process's share of the usable CPU cores (torchrun starts LOCAL_WORLD_SIZE processes per machine),
    at most 16: the published train transform runs on the CPU, and a fast GPU needs many processes for it (its
    measured rate per core is in BENCHMARKS.md)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    per_process = cores // max(1, int(os.environ.get('LOCAL_WORLD_SIZE', '1') or 1))
    return max(1, min(16, per_process))


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
    lines on stdout, as print would. Called once by parse_args."""
    logger = logging.getLogger('src_files')
    if not any(isinstance(h, _StdoutHandler) for h in logger.handlers):
        handler = _StdoutHandler()
        handler.setFormatter(logging.Formatter('%(message)s'))
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)


def parse_args(parser, argv=None):
    """(args, explicit): the parsed namespace and the set of destinations the user gave on the command line."""
    setup_logging()
    args = parser.parse_args(argv)
    dests = {a.dest for a in parser._actions if a.dest not in ('help', argparse.SUPPRESS)}
    probe = argparse.Namespace(**{d: _UNSET for d in dests})
    parser.parse_args(argv, namespace=probe)
    explicit = {d for d in dests if getattr(probe, d) is not _UNSET}
    return args, explicit


def fill_defaults(args, explicit, values, note=None):
    """Set each field of `values` on `args` unless the user gave it; returns the names that were filled."""
    filled = []
    for key, value in values.items():
        if key not in explicit and getattr(args, key, _UNSET) != value:
            setattr(args, key, value)
            filled.append(key)
    if note and filled and os.environ.get('RANK', '0') == '0':  # (under torchrun: once, not once per process)
        LOG.info(f"{note}: " + ', '.join(f"{k}={getattr(args, k)}" for k in filled))
    return filled


# ----------------------------------------------------------------------------------------------------------
# Argument groups used by several scripts.

def add_model_args(parser, model_name='tresnet_l', image_size=448, num_of_groups=-1, zsl=0,
                   num_classes_help=None, from_checkpoint=False):
    """The model flags, and --unsafe-load for the script's --model-path. from_checkpoint=True (validate.py,
    infer.py): the help says that a checkpoint which records a setting (a best.pth's 'meta', or the head's
    shapes) fills it in unless the flag is given."""
    add_unsafe_load_arg(parser)
    g = parser.add_argument_group('model' + (' (flags not given are read from the checkpoint where it records '
                                             'them)' if from_checkpoint else ''))
    g.add_argument('--model-name', default=model_name,
                   help="backbone: tresnet_m, tresnet_l, tresnet_xl or a timm model name")
    g.add_argument('--num-classes', type=int, default=None,
                   help=num_classes_help or "number of classes (None = the dataset's / checkpoint's count)")
    g.add_argument('--image-size', type=int, default=image_size, help="input images are resized to this square")
    g.add_argument('--use-ml-decoder', type=int, default=1, choices=(0, 1),
                   help="1: ML-Decoder head; 0: global average pooling + fully-connected layer")
    g.add_argument('--num-of-groups', type=int, default=num_of_groups,
                   help="ML-Decoder query groups (-1 = min(100, num classes))")
    g.add_argument('--decoder-embedding', type=int, default=768, help="ML-Decoder embedding width")
    g.add_argument('--zsl', type=int, default=zsl, choices=(0, 1),
                   help="1: zero-shot head whose queries are the classes' word vectors")
    return g


def add_unsafe_load_arg(parser):
    """--unsafe-load: the one way to unpickle a --model-path file in full (see src_files/safe_load.py)."""
    parser.add_argument('--unsafe-load', action='store_true', default=False,
                        help="unpickle the --model-path file in full, which runs any code it holds: only for a "
                             "trusted file that pickles more than tensors, numbers, strings, argparse Namespaces "
                             "and numpy values (without it such a file is refused)")


def add_threshold_arg(parser, help):
    """--thr (validate.py's name) and --th (infer.py's): the same probability threshold."""
    parser.add_argument('--thr', '--th', dest='thr', type=float, default=0.75, help=help)


def check_threshold(thr):
    if not 0 <= thr < 1:
        raise UserError(f"--thr is a probability threshold in [0, 1), got {thr}")


def require_model_path(args):
    """--model-path is needed unless --demo gives the demo model (the published default named a file that is
    not in the repository)."""
    if not args.model_path and not getattr(args, 'demo', False):
        raise UserError("no checkpoint given: pass --model-path FILE, or --demo for the model that train.py --demo "
                        "writes")


def add_speed_args(parser, training=True):
    """Fast-path switches (their speed is measured in BENCHMARKS.md). Channels-last, fused Adam, cuDNN autotuning
    and CUDA graphs act only on CUDA; --head-impl, --lowmem and --compile act on CPUs too (the same code runs
    there)."""
    g = parser.add_argument_group('speed (each part can be switched off; channels-last' +
                                  (', fused Adam' if training else '') + ' and cuDNN autotuning act only on CUDA)')
    g.add_argument('--channels-last', action=argparse.BooleanOptionalAction, default=True,
                   help="channels-last memory format for the model and its inputs")
    g.add_argument('--head-impl', choices=('fast', 'published'), default='fast',
                   help="ML-Decoder head: one batched group-FC matmul and fused attention, or the published "
                        "per-group loop (same numbers)")
    if training:
        g.add_argument('--fused-optimizer', action=argparse.BooleanOptionalAction, default=True,
                       help="Adam with fused=True")
        g.add_argument('--lowmem', action=argparse.BooleanOptionalAction, default=False,
                       help="memory-saving backward with the same math: InPlaceABN-style norms keep only their "
                            "output and squeeze-excite products are recomputed instead of kept")
    g.add_argument('--uint8-batches', action=argparse.BooleanOptionalAction, default=True,
                   help="on CUDA, the loader processes send the images as uint8 and the GPU scales them to [0, 1] "
                        "(the same values as on the CPU): a quarter of the bytes to copy, and less CPU work per image")
    g.add_argument('--cudnn-benchmark', action=argparse.BooleanOptionalAction, default=True,
                   help="let cuDNN pick the fastest convolution algorithms")
    g.add_argument('--compile', action=argparse.BooleanOptionalAction, default=False,
                   help="torch.compile the model (its first step compiles; that time is reported)")
    g.add_argument('--compile-scope', choices=('full', 'regional'), default='full',
                   help="with --compile: the whole model as one graph, or each distinct TResNet block compiled "
                        "once and reused (see BENCHMARKS.md)")
    g.add_argument('--compile-mode', choices=COMPILE_MODES, default='default',
                   help="with --compile: torch.compile's mode, where reduce-overhead replays CUDA graphs (one "
                        "launch per graph instead of one per kernel; single process only) and max-autotune also "
                        "times kernel choices (a long compile)")
    return g


def uint8_batches(args, device):
    """Whether the transforms should end in uint8 tensors (--uint8-batches, which acts on CUDA only)."""
    return device.type == 'cuda' and getattr(args, 'uint8_batches', True)


def add_device_arg(parser):
    parser.add_argument('--device', default=default_device(),
                        help="cpu, cuda or cuda:N (the default is cuda when a GPU is visible)")


# ----------------------------------------------------------------------------------------------------------
# Errors -> one line.

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


def run_main(main, argv=None):
    """Run `main(argv)` and exit with its return code; user errors print `error: <message>` and exit 1."""
    from src_files import distributed
    code = 0
    try:
        code = main(argv) or 0
    except UserError as error:
        print(f"error: {_one_line(error)}", file=sys.stderr, flush=True)
        code = 1
    except ConfigError as error:  # model settings: named by their flags here
        print(f"error: {_one_line(error.as_flags())}", file=sys.stderr, flush=True)
        code = 1
    except OSError as error:  # missing / unwritable paths, full disk, ...
        print(f"error: {_one_line(describe_os_error(error))}", file=sys.stderr, flush=True)
        code = 1
    except torch.cuda.OutOfMemoryError:
        print("error: out of GPU memory: lower --batch-size (or --image-size)", file=sys.stderr, flush=True)
        code = 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr, flush=True)
        code = 130
    finally:
        distributed.cleanup()
    sys.stdout.flush()
    sys.exit(code)
