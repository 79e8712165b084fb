"""The training loop of train.py and train_zsl_nus.py: the published recipe (or timm's A2, recipes.py).

Adam on two parameter groups (add_weight_decay), OneCycle (max lr, pct_start 0.2, stepped every batch),
ASL(gamma_neg=4, gamma_pos=0, clip=0.05), mixed precision (fp16 + loss scaling as published, bf16, or off),
EMA of the weights; after every epoch the model and its EMA are validated, `latest.pth` is written, and
`best.pth` when the better of the two beats the best so far.

The pieces, each usable alone: `build_trainables` (model, EMA, optimizer, scheduler, scaler),
`train_one_epoch` (per batch exactly the published loop's step), `evaluate_and_save`, and `train`, which
strings them together. Determinism: every random stream (initial weights, data order, each epoch's dropout,
each image's augmentation) is derived from --seed by seeds.derive_seed, so a resumed run sees exactly the
randomness the uninterrupted run would have seen, whatever --workers it uses.
"""
import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from torch.utils.data import DataLoader, DistributedSampler

from src_files.training import checkpoint as ckpt
from src_files.engine import recipes
from src_files import distributed
from src_files.engine.loop import Precision, Progress, train_one_epoch
from src_files.engine.loop_helpers import CompileClock, NonFiniteStep
from src_files.reporting.curves import plot_history, write_metrics_csv
from src_files.training.seeded_samples import SeededSamples
from src_files.training.seeds import derive_seed, seed_everything
from src_files.errors import UserError
from src_files.ml_decoder.ml_decoder import set_head_impl
from src_files.models.compile import compile_model, uses_cuda_graphs
from src_files.models.config import ModelConfig
from src_files.models.tresnet import set_memory_efficient

LOG = logging.getLogger(__name__)


@dataclass
class TrainTask:
    """What differs between the training scripts."""
    train_set: object
    class_names: list
    # evaluate(module, precision) -> {metric_name: score that picks the best, 'details': {name: value}, 'text': str}
    evaluate: Callable
    setup_model: Optional[Callable] = None  # called on the model (and the EMA copy) before training
    title: str = ''
    meta: dict = field(default_factory=dict)  # saved into best.pth
    kind: str = 'multi-label'  # or 'single-label': targets are class indices (the loss follows)
    metric_name: str = 'mAP'  # the score printed per epoch and that picks best.pth ('top1' for single-label)
    extra_curves: tuple = ()  # details also drawn in curves.png (e.g. 'top5')


class NonFiniteLoss(UserError):
    """The loss became inf/nan: the run stops, keeping the last good checkpoint."""


def evaluate_and_save(args, task, parts, progress, precision, stats, out_dir, info):
    """Validate the model and its EMA, record the epoch in `progress`, write best.pth (when the better of the
    two beats the best so far), latest.pth, metrics.csv and curves.png; -> the line to print."""
    t1 = time.time()
    res_model = task.evaluate(parts.model, precision)
    res_ema = task.evaluate(parts.ema.module, precision)
    eval_time = time.time() - t1
    m = task.metric_name
    use_ema = res_ema[m] > res_model[m]
    score = max(res_model[m], res_ema[m])
    improved = score > progress.best
    if improved:
        progress.best, progress.best_epoch = score, progress.epoch + 1
    rate = stats.images_per_second
    row = {'epoch': progress.epoch + 1, 'loss': stats.loss, m: res_model[m], f'{m}_ema': res_ema[m],
           'best': progress.best, 'lr': parts.scheduler.get_last_lr()[0], 'train_s': stats.seconds,
           'eval_s': eval_time, 'images_per_s': rate, 'data_wait': stats.data_share}
    row.update(res_model.get('details', {}))
    row.update({k + '_ema': v for k, v in res_ema.get('details', {}).items()})
    progress.history.append(row)
    progress.epoch += 1
    progress.global_step += stats.steps
    if not info.is_main:
        return None
    if improved:
        meta = dict(task.meta, **ModelConfig.from_args(args).to_dict(), epoch=progress.epoch, **{m: score},
                    weights='ema' if use_ema else 'model')
        ckpt.save_best(os.path.join(out_dir, ckpt.BEST),
                       ckpt.cpu_state_dict(parts.ema.module if use_ema else parts.model), task.class_names, meta)
    state = dict(parts.state_dict(), **vars(progress), steps_per_epoch=stats.steps, world_size=info.world_size,
                 rng=ckpt.rng_state(), args=_args_dict(args), class_names=list(task.class_names), metric_name=m)
    ckpt.atomic_save(state, os.path.join(out_dir, ckpt.LATEST))
    write_metrics_csv(os.path.join(out_dir, 'metrics.csv'), progress.history)
    plot_history(os.path.join(out_dir, 'curves.png'), progress.history, task.title, metric=m,
                 extra=task.extra_curves)
    line = (f"epoch {progress.epoch}/{args.epochs} loss {stats.loss:.4g} {m} {res_model[m]:.2f} "
            f"{m}_ema {res_ema[m]:.2f} best {progress.best:.2f}")
    text = (res_ema if use_ema else res_model).get('text')
    if text:
        line += f" | {'ema' if use_ema else 'model'}: {text}"
    return line + (f" ({stats.seconds:.0f} s train at {rate:.{0 if rate >= 10 else 1}f} img/s, "
                   f"{stats.data_share:.0%} waiting for data, {eval_time:.0f} s eval)")


def _args_dict(args):
    return {k: v for k, v in vars(args).items() if isinstance(v, (str, int, float, bool, type(None)))}



def _resume(state, parts, steps_per_epoch, args):
    """Load latest.pth's `state` into `parts` and the global RNGs; -> the Progress where the run stopped."""
    if state.get('steps_per_epoch') != steps_per_epoch:
        raise UserError(f"{args.resume_path} was made with {state.get('steps_per_epoch')} steps per epoch but this "
                        f"run has {steps_per_epoch}: resume with the same data, --batch-size and number of "
                        f"processes ({state.get('world_size', 1)})")
    parts.load_state_dict(state)
    if 'rng' in state:
        ckpt.set_rng_state(state['rng'])
    epoch = int(state['epoch'])
    return Progress(epoch=epoch, global_step=int(state.get('global_step', epoch * steps_per_epoch)),
                    best=float(state.get('best', -1.0)), best_epoch=int(state.get('best_epoch', 0)),
                    history=list(state.get('history', [])))


def _prepare_model(args, info, model, task, precision):
    """The model on its device and memory format, with the chosen head and norm implementations."""
    if precision.device.type == 'cuda':
        torch.backends.cudnn.benchmark = bool(args.cudnn_benchmark)
    model = model.to(precision.device)
    if precision.channels_last:
        model = model.to(memory_format=torch.channels_last)
    set_head_impl(model, args.head_impl)
    set_memory_efficient(model, args.lowmem)
    if task.setup_model:
        task.setup_model(model)
    return model


def _compiled(args, info, raw):
    """-> (the module the steps call, whether it records CUDA graphs): compiled and/or wrapped for DDP."""
    compile_mode = getattr(args, 'compile_mode', 'default')
    cuda_graphs = args.compile and uses_cuda_graphs(compile_mode)
    if cuda_graphs and info.distributed:
        raise UserError(f"--compile-mode {compile_mode} records CUDA graphs, which this trainer supports in a single "
                        f"process only: use --compile-mode default with torchrun")
    if args.compile and args.compile_scope == 'regional':
        compile_model(raw, 'regional', compile_mode)  # in place: evaluation of `raw` runs compiled too
    train_model = raw
    if info.distributed:
        train_model = torch.nn.parallel.DistributedDataParallel(raw, device_ids=[info.device.index]
                                                                if info.device.type == 'cuda' else None)
    if args.compile and args.compile_scope == 'full':
        train_model = compile_model(train_model, 'full', compile_mode)
    return train_model, cuda_graphs


def _loader(args, info, task, precision):
    """The training loader: order from DistributedSampler (--recipe a2: timm's RepeatAugSampler), each image's
    augmentation from SeededSamples."""
    if getattr(args, 'recipe', 'published') == 'a2':  # timm's repeated-augmentation sampler (recipes.py)
        sampler, drop_last = recipes.a2_sampler(args, info, task.train_set)
    else:
        sampler = DistributedSampler(task.train_set, num_replicas=info.world_size, rank=info.rank, shuffle=True,
                                     seed=derive_seed(args.seed, 'order'), drop_last=False)
        drop_last = False
    samples = SeededSamples(task.train_set, args.seed)
    # The loader processes are kept from one epoch to the next (SeededSamples shares the epoch with them): started
    # anew each epoch, they cost their start-up every epoch, and on a CPU each fork made the next writes to the
    # weights and Adam's state copy their memory pages (BENCHMARKS.md, "Loader processes kept across epochs").
    loader = DataLoader(samples, batch_size=args.batch_size, sampler=sampler, num_workers=args.workers,
                        pin_memory=precision.device.type == 'cuda', drop_last=drop_last, generator=torch.Generator(),
                        persistent_workers=args.workers > 0)
    if len(loader) == 0:
        raise UserError("the training set is empty" if not len(task.train_set) else
                        f"{len(sampler)} training images per process make no whole batch of --batch-size "
                        f"{args.batch_size} (Mixup / CutMix drop the last, smaller batch): lower --batch-size")
    return loader


def set_epoch(loader, seed, epoch, rank):
    """Every random stream of `epoch`: data order, augmentation, loader processes, and dropout (global RNGs)."""
    seed_everything(derive_seed(seed, 'dropout', epoch, rank))
    loader.sampler.set_epoch(epoch)
    loader.dataset.set_epoch(epoch)
    loader.generator.manual_seed(derive_seed(seed, 'loader', epoch, rank))


def train(args, info, model, task, resume_state=None):
    """Train `model` (already built and initialised) on task.train_set; returns 0."""
    precision = Precision.from_args(args, info.device, warn=info.is_main)
    out_dir = ckpt.prepare_output_dir(args.output_dir)  # only now: bad data or weights leave no empty folder
    raw = _prepare_model(args, info, model, task, precision)
    loader = _loader(args, info, task, precision)
    parts = recipes.build_trainables(args, raw, len(loader), precision, task)
    progress = Progress()
    if resume_state is not None:
        progress = _resume(resume_state, parts, len(loader), args)
        if info.is_main:
            LOG.info(f"resuming {args.resume_path}: {progress.epoch}/{args.epochs} epochs done, best "
                     f"{task.metric_name} {progress.best:.2f}")
    train_model, cuda_graphs = _compiled(args, info, raw)
    clock = CompileClock(args, info, enabled=args.compile)
    if info.is_main:
        _print_start(args, info, raw, task, len(loader), precision, out_dir)
    try:
        return _epochs(args, info, task, parts, progress, precision, loader, train_model, clock, cuda_graphs,
                       out_dir)
    except KeyboardInterrupt:
        raise UserError(_interrupted_message(args, progress, out_dir)) from None


def _epochs(args, info, task, parts, progress, precision, loader, train_model, clock, cuda_graphs, out_dir):
    epochs_run = 0
    for epoch in range(progress.epoch, args.epochs):
        set_epoch(loader, args.seed, epoch, info.rank)
        clock.start_epoch()
        try:
            stats = train_one_epoch(train_model, parts, loader, precision, info, clock, cuda_graphs,
                                    desc=f"epoch {epoch + 1}/{args.epochs}")
        except NonFiniteStep as bad:
            raise NonFiniteLoss(_non_finite_message(args, epoch, bad, len(loader), progress, out_dir)) from None
        line = evaluate_and_save(args, task, parts, progress, precision, stats, out_dir, info)
        if line:
            LOG.info(line)
            note = data_bound_note(args, stats) if epochs_run == 0 else None
            if note:
                LOG.info(note)
        epochs_run += 1
        distributed.barrier(info)
        if args.stop_after and epochs_run >= args.stop_after and epoch + 1 < args.epochs:
            if info.is_main:
                LOG.info(f"stopped after {epochs_run} epoch(s) as asked (--stop-after); continue with: --resume "
                      f"--output-dir {out_dir}")
            return 0
    if info.is_main:
        best_path = os.path.join(out_dir, ckpt.BEST)
        # (a run resumed from a copied latest.pth has no best.pth until an epoch beats the saved best)
        where = f"best weights in {best_path}" if os.path.isfile(best_path) else f"{best_path} was not written here"
        LOG.info(f"done: best {task.metric_name} {progress.best:.2f} at epoch {progress.best_epoch}; {where}, "
                 f"curves in {os.path.join(out_dir, 'curves.png')}")
    return 0


def data_bound_note(args, stats, bound=0.25):
    """The note printed after the first epoch when the training waited for batches more than `bound` of its time."""
    if stats.data_share <= bound:
        return None
    return (f"note: the training waited for batches {stats.data_share:.0%} of the time: the data loading limits its "
            f"speed (--workers {args.workers}; BENCHMARKS.md, 'Data loading', gives what one CPU core delivers)")


def _print_start(args, info, raw, task, steps_per_epoch, precision, out_dir):
    n_params = sum(p.numel() for p in raw.parameters())
    epochs = f"{args.epochs} epoch" + ('s' if args.epochs != 1 else '')
    LOG.info(f"training {args.model_name} ({n_params / 1e6:.1f}M parameters) on {len(task.train_set)} images, "
          f"{len(task.class_names)} classes, {epochs} x {steps_per_epoch} steps, batch {args.batch_size} x "
          f"{info.world_size} process(es), device {precision.device}, amp {precision.amp}, output {out_dir}")


def _interrupted_message(args, progress, out_dir):
    if progress.epoch == 0:
        return "interrupted during epoch 1: no epoch was finished, nothing is saved"
    script = os.path.basename(sys.argv[0]) if sys.argv[0].endswith('.py') else 'train.py'
    return (f"interrupted during epoch {progress.epoch + 1}/{args.epochs}; epoch {progress.epoch} is saved in "
            f"{os.path.join(out_dir, ckpt.LATEST)}. Continue with: python {script} --resume --output-dir {out_dir}")


def _non_finite_message(args, epoch, bad, steps_per_epoch, progress, out_dir):
    latest_path = os.path.join(out_dir, ckpt.LATEST)
    if progress.epoch > 0 and os.path.isfile(latest_path):
        kept = f"the last good checkpoint {latest_path} (epoch {progress.epoch}) is kept"
    else:
        kept = "no checkpoint had been written yet"
    return (f"the training loss became non-finite ({bad.value}) at epoch {epoch + 1}/{args.epochs}, step "
            f"{bad.step + 1}/{steps_per_epoch} (global step {progress.global_step + bad.step + 1}); training stopped "
            f"and {kept}. Lower --lr (now {args.lr:g})" + (" or try --amp bf16 / off" if args.amp == 'fp16' else ''))


def reseed_for_init(seed):
    """Same initial weights on every process (DDP also broadcasts them) and in every run with this seed."""
    seed_everything(derive_seed(seed, 'init'))
