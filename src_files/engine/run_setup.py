"""Setting up a training run: the flags, their checks, --demo defaults, --resume and the output folder.

Everything here happens before the first batch; the loop itself is in trainer.py.
"""
import argparse
import logging
import math
import os

import torch

from src_files.training import checkpoint as ckpt
from src_files.cli import flags as cli
from src_files.errors import UserError
from src_files.models.config import MODEL_FIELDS

LOG = logging.getLogger(__name__)

# Settings that define the run: taken from latest.pth on --resume; giving a different value is an error for
# the STRUCTURAL ones (the result would not be the run that was started).
STRUCTURAL_KEYS = MODEL_FIELDS + ('epochs', 'batch_size', 'lr', 'weight_decay', 'ema_decay', 'seed', 'no_aug',
                                   'unknown_as_negative',
                                   # train.py's recipe (recipes.RECIPE_KEYS)
                                   'recipe', 'loss', 'smoothing', 'bce_target_thresh', 'opt', 'warmup_epochs',
                                   'mixup', 'cutmix', 'aug_repeats', 'rand_aug', 'drop_path')
RUN_KEYS = STRUCTURAL_KEYS + ('data', 'data_format', 'train_split', 'val_split', 'model_path', 'demo', 'amp')

AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'off': None}


def add_train_args(parser, *, data, model_name, image_size, batch_size, lr, weight_decay, num_of_groups, zsl,
                   output_dir, num_classes_help, demo_defaults):
    """All flags of the training scripts, with the published defaults given by the caller."""
    parser.add_argument('--data', default=data, help="dataset folder")
    parser.add_argument('--lr', type=float, default=lr, help="maximum learning rate of the OneCycle schedule")
    parser.add_argument('--model-path', default='',
                        help="pretrained weights to start from, e.g. an ImageNet-21K backbone: its plain classifier "
                             "(head.fc) and head tensors of another shape are skipped, an ML-Decoder head of the "
                             "same shape is loaded (as published); '' = random initialisation")
    cli.add_model_args(parser, model_name=model_name, image_size=image_size, num_of_groups=num_of_groups, zsl=zsl,
                       num_classes_help=num_classes_help)
    g = parser.add_argument_group('training')
    g.add_argument('-j', '--workers', type=int, default=cli.default_workers(),
                   help="data-loading processes per training process (0 = load in the main process)")
    g.add_argument('--batch-size', type=int, default=batch_size, help="images per step and process")
    g.add_argument('--epochs', type=int, default=40, help="training epochs (the OneCycle schedule spans them)")
    g.add_argument('--weight-decay', type=float, default=weight_decay,
                   help="L2 weight decay of Adam on weights with 2+ dims that are not biases")
    g.add_argument('--ema-decay', type=float, default=0.9997, help="decay of the EMA of the weights")
    g.add_argument('--amp', choices=('auto', 'fp16', 'bf16', 'off'), default='auto',
                   help="mixed precision: fp16 with loss scaling (published), bf16, or off; auto = bf16 on GPUs "
                        "that support it, else fp16, and off on CPU")
    g.add_argument('--no-aug', action='store_true', default=False,
                   help="train on resized images only (no Cutout / RandAugment)")
    g.add_argument('--aug', dest='no_aug', action='store_false', default=argparse.SUPPRESS,
                   help="train with Cutout + RandAugment even where --demo turns them off (default: as --no-aug "
                        "says)")
    g.add_argument('--seed', type=int, default=0, help="seed of the initialisation, data order and augmentation")
    cli.add_device_arg(g)
    g = parser.add_argument_group('output')
    g.add_argument('--output-dir', default=output_dir,
                   help="folder for latest.pth, best.pth, metrics.csv and curves.png")
    g.add_argument('--resume', nargs='?', const='', default=None, metavar='PATH',
                   help="continue the run in --output-dir from its latest.pth (or the latest.pth or run folder given)")
    g.add_argument('--stop-after', type=int, default=0, metavar='N',
                   help="stop (cleanly) after N epochs of this invocation, to continue later with --resume "
                        "(0 = run to --epochs)")
    g.add_argument('--demo', action='store_true', default=False,
                   help="train on the built-in demo dataset (made on first use) with small, fast settings: " +
                        ', '.join(f"--{k.replace('_', '-')}" + ('' if v is True else f" {v}")
                                  for k, v in demo_defaults.items()) +
                        " (flags given explicitly win)")
    cli.add_speed_args(parser, training=True)


def check_train_args(args):
    for key in ('lr', 'batch_size', 'epochs', 'image_size'):
        if not getattr(args, key) > 0:
            raise UserError(f"--{key.replace('_', '-')} must be positive, got {getattr(args, key)}")
    for key in ('workers', 'stop_after'):
        if getattr(args, key) < 0:
            raise UserError(f"--{key.replace('_', '-')} must be 0 or more, got {getattr(args, key)}")
    if not 0 <= args.ema_decay < 1:
        raise UserError(f"--ema-decay must be in [0, 1), got {args.ema_decay}")
    if not math.isfinite(args.lr) or not 0 <= args.weight_decay < math.inf:
        raise UserError(f"--lr must be finite and --weight-decay 0 or more, got {args.lr} and {args.weight_decay}")
    if not 0 <= args.seed < 2 ** 32:
        raise UserError(f"--seed must be in [0, 2**32), got {args.seed}")


def resolve_resume(args, explicit):
    """Load latest.pth when --resume is given and merge its settings with the command line.

    Returns the checkpoint dict, or None for a fresh run. Settings of the run come from the checkpoint;
    flags given now override them, except the ones that would change the run (an error).
    """
    if args.resume is None:
        return None
    path = args.resume or os.path.join(args.output_dir, ckpt.LATEST)
    if os.path.isdir(path):  # --resume RUN_FOLDER means its latest.pth
        path = os.path.join(path, ckpt.LATEST)
    if args.resume and 'output_dir' not in explicit:
        args.output_dir = os.path.dirname(os.path.abspath(path))
    state = ckpt.load_latest(path)
    saved = state['args']
    for key in STRUCTURAL_KEYS:
        if key in explicit and key in saved and getattr(args, key) != saved[key]:
            flag = '--' + key.replace('_', '-')
            raise UserError(f"{flag} {getattr(args, key)} differs from the run being resumed ({flag} {saved[key]} "
                            f"in {path}); resume with the same setting or start a new run in another --output-dir")
    for key in RUN_KEYS:
        if key in saved and key not in explicit:
            setattr(args, key, saved[key])
    args.resume_path = path
    return state


def resolve_amp(amp, device, warn=False):
    if amp == 'auto':
        if device.type != 'cuda':
            return 'off'
        return 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    if amp == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise UserError("--amp bf16: this GPU does not support bfloat16; use --amp fp16")
    if amp == 'fp16' and device.type == 'cpu' and warn:
        LOG.info("note: --amp fp16 on a CPU is very slow (TResNet steps about 90x slower than fp32); --amp bf16 or off "
              "is faster there")
    return amp


def finished_message(args, state):
    """The line printed by --resume on a run whose last epoch is done (None if it is not finished)."""
    epochs = int(state['args'].get('epochs', args.epochs))
    if int(state['epoch']) < epochs:
        return None
    return (f"the run in {args.output_dir} already finished ({state['epoch']}/{epochs} epochs, best "
            f"{state.get('metric_name', 'mAP')} {float(state.get('best', float('nan'))):.2f} at epoch "
            f"{state.get('best_epoch', '?')}); nothing to do")


def prepare(args, explicit, demo_defaults, demo_root_fn):
    """Common start of the training scripts: --demo defaults, --resume merge, checks (train() makes the folder).

    Returns (resume_state, finished) where finished means that --resume found a completed run.
    """
    if args.demo:
        values = dict(demo_defaults)
        if 'data' not in explicit:
            values['data'] = demo_root_fn()
        cli.fill_defaults(args, explicit, values, note="demo settings")
    state = resolve_resume(args, explicit)
    if state is not None and args.demo and 'data' not in explicit and not os.path.isdir(str(args.data)):
        args.data = demo_root_fn()  # the demo cache was cleared: build it again
    check_train_args(args)
    if 'compile_mode' in explicit and not args.compile and os.environ.get('RANK', '0') == '0':
        LOG.info(f"note: --compile-mode {args.compile_mode} acts only with --compile; training without either")
    if state is not None:
        msg = finished_message(args, state)
        if msg:
            return state, msg
    else:
        refuse_to_overwrite(args.output_dir)
    return state, None


def refuse_to_overwrite(output_dir):
    """A new run would overwrite the run already in `output_dir` (--resume forgotten, or a shared default folder)."""
    latest = os.path.join(output_dir, ckpt.LATEST)
    if os.path.isfile(latest) or os.path.isfile(os.path.join(output_dir, ckpt.BEST)):
        raise UserError(f"{output_dir} already holds a run ({ckpt.LATEST} / {ckpt.BEST}): continue it with --resume "
                        f"--output-dir {output_dir}, or start the new run in another --output-dir (or delete that "
                        f"folder)")

