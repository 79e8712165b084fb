"""The one train/evaluate loop of train.py and train_zsl_nus.py (the published recipe, SPEC section 6).

Adam on two parameter groups (add_weight_decay), OneCycle (max lr, pct_start 0.2, stepped every batch),
ASL(gamma_neg=4, gamma_pos=0, clip=0.05), mixed precision (fp16 + loss scaling as published, bf16, or off),
EMA of the weights (0.9997); after every epoch the model and its EMA are validated, `latest.pth` is written
and `best.pth` when the better of the two beats the best so far.

Determinism: the data order comes from DistributedSampler(seed).set_epoch(epoch), each image's augmentation
from (seed, epoch, image index) (SeededSamples), and every global RNG is reseeded from (seed, epoch, rank) at
the start of each epoch, so a resumed run sees exactly the randomness the uninterrupted run would have seen,
whatever --workers it uses.
"""
import argparse
import math
import os
import random
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import numpy as np
import torch
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from src_files.engine import checkpoint as ckpt
from src_files.engine import cli, distributed
from src_files.engine.evaluation import autocast
from src_files.engine.plots import plot_history, write_metrics_csv
from src_files.engine.seeded_samples import SeededSamples
from src_files.errors import UserError
from src_files.helper_functions.ema import ModelEma
from src_files.helper_functions.optim import add_weight_decay
from src_files.loss_functions.losses import AsymmetricLoss
from src_files.ml_decoder.ml_decoder import set_head_impl
from src_files.models.compile import compile_model, compiled_graph_count, uses_cuda_graphs
from src_files.models.tresnet import set_memory_efficient

# Settings that define the run: taken from latest.pth on --resume; giving a different value is an error for
# the STRUCTURAL ones (the result would not be the run that was started).
STRUCTURAL_KEYS = ('model_name', 'num_classes', 'use_ml_decoder', 'num_of_groups', 'decoder_embedding', 'zsl',
                   'image_size', 'epochs', 'batch_size', 'lr', 'weight_decay', 'ema_decay', 'seed', 'no_aug')
RUN_KEYS = STRUCTURAL_KEYS + ('data', 'model_path', 'demo', 'amp')

AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'off': None}


# ----------------------------------------------------------------------------------------------------------
# Arguments

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
        print("note: --amp fp16 on a CPU is very slow (TResNet steps about 90x slower than fp32); --amp bf16 or off "
              "is faster there", flush=True)
    return amp


# ----------------------------------------------------------------------------------------------------------
# The loop

@dataclass
class TrainTask:
    """What differs between the training scripts."""
    train_set: object
    class_names: list
    # evaluate(module) -> {'mAP': score that picks the best, 'details': {name: value}, 'text': str}
    evaluate: Callable
    setup_model: Optional[Callable] = None  # called on the model (and the EMA copy) before training
    title: str = ''
    meta: dict = field(default_factory=dict)  # saved into best.pth


class NonFiniteLoss(UserError):
    """The loss became inf/nan: the run stops, keeping the last good checkpoint."""


def _seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)  # also every CUDA device


def _args_dict(args):
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))}


@dataclass
class _Trainables:
    """What training changes besides the progress: saved to latest.pth and loaded back on --resume."""
    model: torch.nn.Module
    ema: ModelEma
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler

    def state_dict(self):
        return {'model': ckpt.cpu_state_dict(self.model), 'ema': ckpt.cpu_state_dict(self.ema.module),
                'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(),
                'scaler': self.scaler.state_dict() if self.scaler.is_enabled() else None}

    def load_state_dict(self, state):
        self.model.load_state_dict(state['model'])
        self.ema.module.load_state_dict(state['ema'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        if state.get('scaler') and self.scaler.is_enabled():
            self.scaler.load_state_dict(state['scaler'])


@dataclass
class _Progress:
    """Where the run stands (saved in latest.pth beside the _Trainables)."""
    epoch: int = 0  # epochs done
    global_step: int = 0
    best: float = -1.0  # best mAP so far (model or EMA), and the epoch that reached it
    best_epoch: int = 0
    history: list = field(default_factory=list)  # one row of metrics per epoch


def _resume(state, parts, steps_per_epoch, args):
    """Load latest.pth's `state` into `parts` and the global RNGs; -> the _Progress where the run stopped."""
    if state.get('steps_per_epoch') != steps_per_epoch:
        raise UserError(f"{args.resume_path} was made with {state.get('steps_per_epoch')} steps per epoch but this "
                        f"run has {steps_per_epoch}: resume with the same data, --batch-size and number of "
                        f"processes ({state.get('world_size', 1)})")
    parts.load_state_dict(state)
    if 'rng' in state:
        ckpt.set_rng_state(state['rng'])
    epoch = int(state['epoch'])
    return _Progress(epoch=epoch, global_step=int(state.get('global_step', epoch * steps_per_epoch)),
                     best=float(state.get('best', -1.0)), best_epoch=int(state.get('best_epoch', 0)),
                     history=list(state.get('history', [])))


def train(args, info, model, task, resume_state=None):
    """Train `model` (already built and initialised) on task.train_set; returns 0."""
    device = info.device
    cuda = device.type == 'cuda'
    main = info.is_main
    amp = resolve_amp(args.amp, device, warn=info.is_main)
    amp_dtype = AMP_DTYPES[amp]
    channels_last = cuda and args.channels_last
    if cuda:
        torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    out_dir = ckpt.prepare_output_dir(args.output_dir)  # only now: bad data or weights leave no empty folder
    latest_path = os.path.join(out_dir, ckpt.LATEST)
    best_path = os.path.join(out_dir, ckpt.BEST)

    raw = model.to(device)
    if channels_last:
        raw = raw.to(memory_format=torch.channels_last)
    set_head_impl(raw, args.head_impl)
    set_memory_efficient(raw, args.lowmem)
    if task.setup_model:
        task.setup_model(raw)
    ema = ModelEma(raw, args.ema_decay)

    param_groups = add_weight_decay(raw, args.weight_decay)
    fused = bool(cuda and args.fused_optimizer)
    optimizer = torch.optim.Adam(param_groups, lr=args.lr, weight_decay=0, **({'fused': True} if fused else {}))

    sampler = DistributedSampler(task.train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                 seed=args.seed, drop_last=False)
    loader_gen = torch.Generator()
    train_samples = SeededSamples(task.train_set, args.seed)
    loader = DataLoader(train_samples, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                        pin_memory=cuda, drop_last=False, generator=loader_gen, persistent_workers=False)
    steps_per_epoch = len(loader)
    if steps_per_epoch == 0:
        raise UserError("the training set is empty")
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=args.lr, steps_per_epoch=steps_per_epoch,
                                                    epochs=args.epochs, pct_start=0.2)
    scaler = torch.amp.GradScaler(device.type, enabled=amp == 'fp16')
    if scaler.is_enabled():  # the scaler skips the steps whose gradients overflow: expected, as published
        warnings.filterwarnings('ignore', message=r'Detected call of `lr_scheduler\.step\(\)` before')
    criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True)

    parts = _Trainables(raw, ema, optimizer, scheduler, scaler)
    progress = _Progress()
    if resume_state is not None:
        progress = _resume(resume_state, parts, steps_per_epoch, args)
        if main:
            print(f"resuming {args.resume_path}: {progress.epoch}/{args.epochs} epochs done, best mAP "
                  f"{progress.best:.2f}", flush=True)
    start_epoch = progress.epoch

    train_model = raw
    compile_mode = getattr(args, 'compile_mode', 'default')
    cuda_graphs = args.compile and uses_cuda_graphs(compile_mode)
    if cuda_graphs and info.distributed:
        raise UserError(f"--compile-mode {compile_mode} records CUDA graphs, which this trainer supports in a single "
                        f"process only: use --compile-mode default with torchrun")
    if args.compile and args.compile_scope == 'regional':
        compile_model(raw, 'regional', compile_mode)  # in place: evaluation of `raw` runs compiled too
    if info.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(raw, device_ids=[device.index] if cuda else None)
    if args.compile and args.compile_scope == 'full':
        train_model = compile_model(train_model, 'full', compile_mode)
    graphs_before = compiled_graph_count()

    if main:
        n_params = sum(p.numel() for p in raw.parameters())
        epochs = f"{args.epochs} epoch" + ('s' if args.epochs != 1 else '')
        print(f"training {args.model_name} ({n_params / 1e6:.1f}M parameters) on {len(task.train_set)} images, "
              f"{len(task.class_names)} classes, {epochs} x {steps_per_epoch} steps, batch "
              f"{args.batch_size} x {info.world_size} process(es), device {device}, amp {amp}, "
              f"output {out_dir}", flush=True)

    sync_every = 10 if cuda else 1
    epochs_run = 0
    for epoch in range(start_epoch, args.epochs):
        _seed_everything(distributed.seed_for(args.seed, epoch, info.rank))
        sampler.set_epoch(epoch)
        train_samples.set_epoch(epoch)
        loader_gen.manual_seed(distributed.seed_for(args.seed, epoch, info.rank) + 1)
        train_model.train()
        t0 = time.time()
        pending, loss_sum, loss_count, compile_time = [], 0.0, 0, 0.0
        graphs_seen = compiled_graph_count()  # (evaluation may have compiled graphs of its own)
        images_seen = 0
        bar = tqdm(total=steps_per_epoch, desc=f"epoch {epoch + 1}/{args.epochs}", disable=not main,
                   leave=False, dynamic_ncols=True, mininterval=1.0)
        try:
            for step, (images, targets) in enumerate(loader):
                step_start = time.time()
                images = images.to(device, non_blocking=cuda)
                targets = targets.to(device, non_blocking=cuda)
                if channels_last:
                    images = images.contiguous(memory_format=torch.channels_last)
                optimizer.zero_grad(set_to_none=True)
                if cuda_graphs:  # a new step: the graphs may reuse the last step's output and gradient memory
                    torch.compiler.cudagraph_mark_step_begin()
                with autocast(device, amp_dtype):
                    logits = train_model(images).float()
                loss = criterion(logits, targets)
                scaler.scale(loss).backward()
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                ema.update(raw)
                progress.global_step += 1
                images_seen += images.shape[0] * info.world_size
                pending.append(loss.detach())
                first_step = step == 0 and epoch == start_epoch
                if args.compile and (first_step or compiled_graph_count() != graphs_seen):
                    # This step compiled (the first one, or a new batch size such as an epoch's last batch):
                    # its time is left out of images/s.
                    if cuda:
                        torch.cuda.synchronize(device)
                    took = time.time() - step_start
                    compile_time += took
                    graphs_seen = compiled_graph_count()
                    if main and first_step:
                        graphs = graphs_seen - graphs_before
                        print(f"torch.compile: first step took {took:.1f} s (compilation; left out of "
                              f"images/s), {graphs} graph(s)", flush=True)
                        # (DDP's compiler splits the graph at its gradient buckets on purpose.)
                        if args.compile_scope == 'full' and not info.distributed and graphs > 1:
                            print(f"warning: torch.compile split the model into {graphs} graphs (graph breaks), "
                                  f"which costs most of its speed; `python benchmarks/graph_breaks.py` shows where",
                                  flush=True)
                    elif main:
                        print(f"torch.compile: compiled again for a batch of {images.shape[0]} ({took:.1f} s, left "
                              f"out of images/s)", flush=True)
                if len(pending) >= sync_every or step == steps_per_epoch - 1:
                    values = torch.stack(pending).float().cpu()
                    bad = ~torch.isfinite(values)
                    if distributed.any_true(info, bool(bad.any())):
                        first = int(bad.nonzero()[0, 0]) if bad.any() else 0
                        bad_step = step - len(pending) + 1 + first
                        bad_global_step = progress.global_step - len(pending) + first + 1
                        value = values[first].item() if bad.any() else float('nan')
                        raise NonFiniteLoss(_non_finite_message(args, epoch, bad_step, steps_per_epoch,
                                                                bad_global_step, value, latest_path, progress.epoch))
                    loss_sum += float(values.double().sum())
                    loss_count += len(pending)
                    bar.update(len(pending))
                    pending = []
                    elapsed = max(time.time() - t0 - compile_time, 1e-9)
                    bar.set_postfix(loss=f"{loss_sum / loss_count:.2f}", lr=f"{scheduler.get_last_lr()[0]:.2e}",
                                    img_s=f"{images_seen / elapsed:.0f}", refresh=False)
        finally:
            bar.close()
        train_time = time.time() - t0
        epoch_loss = distributed.mean_over_ranks(info, loss_sum / max(loss_count, 1))

        # Validate the model and its EMA; keep the better of the two.
        t1 = time.time()
        res_model = task.evaluate(raw)
        res_ema = task.evaluate(ema.module)
        eval_time = time.time() - t1
        use_ema = res_ema['mAP'] > res_model['mAP']
        score = max(res_model['mAP'], res_ema['mAP'])
        improved = score > progress.best
        if improved:
            progress.best, progress.best_epoch = score, epoch + 1
        row = {'epoch': epoch + 1, 'loss': epoch_loss, 'mAP': res_model['mAP'], 'mAP_ema': res_ema['mAP'],
               'best': progress.best, 'lr': scheduler.get_last_lr()[0], 'train_s': train_time, 'eval_s': eval_time,
               'images_per_s': images_seen / max(train_time - compile_time, 1e-9)}
        for k, v in res_model.get('details', {}).items():
            row[k] = v
        for k, v in res_ema.get('details', {}).items():
            row[k + '_ema'] = v
        progress.history.append(row)
        progress.epoch = epoch + 1
        epochs_run += 1

        if main:
            if improved:
                better = ema.module if use_ema else raw
                meta = dict(task.meta, **{k: getattr(args, k) for k in
                                          ('model_name', 'image_size', 'use_ml_decoder', 'num_of_groups',
                                           'decoder_embedding', 'zsl', 'num_classes')},
                            epoch=epoch + 1, mAP=score, weights='ema' if use_ema else 'model')
                ckpt.save_best(best_path, ckpt.cpu_state_dict(better), task.class_names, meta)
            state = dict(parts.state_dict(), **vars(progress), steps_per_epoch=steps_per_epoch,
                         world_size=info.world_size, rng=ckpt.rng_state(), args=_args_dict(args),
                         class_names=list(task.class_names))
            ckpt.atomic_save(state, latest_path)
            write_metrics_csv(os.path.join(out_dir, 'metrics.csv'), progress.history)
            plot_history(os.path.join(out_dir, 'curves.png'), progress.history, task.title)
            line = (f"epoch {epoch + 1}/{args.epochs} loss {epoch_loss:.4g} mAP {res_model['mAP']:.2f} "
                    f"mAP_ema {res_ema['mAP']:.2f} best {progress.best:.2f}")
            text = (res_ema if use_ema else res_model).get('text')
            if text:
                line += f" | {'ema' if use_ema else 'model'}: {text}"
            rate = row['images_per_s']
            line += f" ({train_time:.0f} s train at {rate:.{0 if rate >= 10 else 1}f} img/s, {eval_time:.0f} s eval)"
            print(line, flush=True)
        distributed.barrier(info)
        if args.stop_after and epochs_run >= args.stop_after and epoch + 1 < args.epochs:
            if main:
                print(f"stopped after {epochs_run} epoch(s) as asked (--stop-after); continue with: --resume "
                      f"--output-dir {out_dir}", flush=True)
            return 0

    if main:
        # (a run resumed from a copied latest.pth has no best.pth until an epoch beats the saved best)
        where = f"best weights in {best_path}" if os.path.isfile(best_path) else f"{best_path} was not written here"
        print(f"done: best mAP {progress.best:.2f} at epoch {progress.best_epoch}; {where}, "
              f"curves in {os.path.join(out_dir, 'curves.png')}", flush=True)
    return 0


def _non_finite_message(args, epoch, step, steps_per_epoch, global_step, value, latest_path, done):
    """`done`: the epochs finished (and saved) before this one."""
    if done > 0 and os.path.isfile(latest_path):
        kept = f"the last good checkpoint {latest_path} (epoch {done}) is kept"
    else:
        kept = "no checkpoint had been written yet"
    return (f"the training loss became non-finite ({value}) at epoch {epoch + 1}/{args.epochs}, step "
            f"{step + 1}/{steps_per_epoch} (global step {global_step}); training stopped and {kept}. "
            f"Lower --lr (now {args.lr:g})" + (" or try --amp bf16 / off" if args.amp == 'fp16' else ''))


def finished_message(args, state):
    """The line printed by --resume on a run whose last epoch is done (None if it is not finished)."""
    epochs = int(state['args'].get('epochs', args.epochs))
    if int(state['epoch']) < epochs:
        return None
    return (f"the run in {args.output_dir} already finished ({state['epoch']}/{epochs} epochs, best mAP "
            f"{float(state.get('best', float('nan'))):.2f} at epoch {state.get('best_epoch', '?')}); nothing to do")


def reseed_for_init(seed, rank=0):
    """Same initial weights on every process (DDP also broadcasts them) and in every run with this seed."""
    _seed_everything(seed)


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
        print(f"note: --compile-mode {args.compile_mode} acts only with --compile; training without either", flush=True)
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

