"""The training loop of train.py and train_zsl_nus.py: read this file first.

    train_step       one step of the published loop: forward (under autocast), loss, backward, optimiser,
                     schedule, EMA
    train_one_epoch  train_step over the training loader, with the running loss and its non-finite check
    evaluate         the model and its EMA on the validation data (the task's metric: mAP, top-1, ZSL mAP)
    train            the run: epochs, evaluation, best.pth when the better of model and EMA beats the best so
                     far, latest.pth (everything needed to resume exactly), metrics.csv and curves.png

What each recipe optimises (loss, optimiser, schedule, EMA) is built by optimisation.py, the data by data.py,
the speed switches by speed.py; the settings come resolved and frozen (src_files/settings.py). Every random
stream (initial weights, data order, each epoch's dropout, each image's augmentation) is derived from --seed
(seeds.py), so a resumed run sees exactly the randomness the uninterrupted run would have seen.
"""
import logging
import os
import time
from dataclasses import dataclass, field

import torch
from tqdm import tqdm

from src_files import distributed
from src_files.data.holdout import write_split_file
from src_files.errors import Interrupted, Terminated, UserError
from src_files.files import prepare_output_dir
from src_files.helper_functions.augmentations import to_float
from src_files.reporting.curves import plot_history, write_metrics_csv
from src_files.training import checkpoint as ckpt
from src_files.training.data import set_epoch, train_loader
from src_files.training.memory import check_memory
from src_files.training.optimisation import build_optimisation
from src_files.training.seeds import derive_seed, seed_everything
from src_files.training.speed import CompileClock, prepare_model, wrap_for_training

LOG = logging.getLogger(__name__)

AMP_DTYPES = {'fp16': torch.float16, 'bf16': torch.bfloat16, 'off': None}


@dataclass(frozen=True)
class Precision:
    """How the model runs on its device, decided once from the settings and handed to the evaluation."""
    device: torch.device
    amp: str = 'off'  # 'fp16' (with loss scaling), 'bf16' or 'off'
    channels_last: bool = False

    @property
    def amp_dtype(self):
        return AMP_DTYPES[self.amp]

    @classmethod
    def for_device(cls, amp, channels_last, device, warn=False):
        return cls(device, resolve_amp(amp, device, warn=warn), device.type == 'cuda' and channels_last)


def resolve_amp(amp, device, warn=False):
    """--amp for `device`: auto = bf16 on GPUs that support it, else fp16, and off on a CPU."""
    if amp == 'auto':
        if device.type != 'cuda':
            return 'off'
        return 'bf16' if torch.cuda.is_bf16_supported() else 'fp16'
    if amp == 'bf16' and device.type == 'cuda' and not torch.cuda.is_bf16_supported():
        raise UserError("--amp bf16: this GPU does not support bfloat16; use --amp fp16")
    if amp == 'fp16' and device.type == 'cpu' and warn:
        LOG.info("note: --amp fp16 on a CPU is very slow (many times slower than fp32); --amp bf16 or off is faster "
                 "there")
    return amp


# ----------------------------------------------------------------------------------------------------------
# One step, one epoch.

def train_step(train_model, parts, images, targets, precision):
    """One step of the published loop: forward (under autocast), loss, backward, optimiser, schedule, EMA. (Under
    torchrun the norm layers' running statistics are made the main process's before the EMA reads them: see
    distributed.share_buffers.)"""
    parts.optimizer.zero_grad(set_to_none=True)
    with torch.autocast(precision.device.type, dtype=precision.amp_dtype, enabled=precision.amp_dtype is not None):
        logits = train_model(images).float()
    loss = parts.criterion(logits, targets)
    parts.scaler.scale(loss).backward()
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.scheduler.step()
    distributed.share_buffers(parts.model)
    parts.ema.update(parts.model)
    return loss


@dataclass(frozen=True)
class EpochStats:
    loss: float
    steps: int
    images: int  # over all processes
    seconds: float
    compile_seconds: float = 0.0
    data_seconds: float = 0.0  # spent waiting for the loader (the first batch of the epoch included)

    @property
    def images_per_second(self):
        return self.images / max(self.seconds - self.compile_seconds, 1e-9)

    @property
    def data_share(self):
        """The part of the training time (compilation left out) spent waiting for batches."""
        return self.data_seconds / max(self.seconds - self.compile_seconds, 1e-9)


def train_one_epoch(train_model, parts, loader, precision, info=None, clock=None, cuda_graphs=False, desc=''):
    """One pass over `loader` -> EpochStats. Raises NonFiniteStep at an inf/nan loss. `train_model` is
    `parts.model` or its compiled / DistributedDataParallel wrapper."""
    info = info or distributed.DistInfo(device=precision.device)
    cuda = precision.device.type == 'cuda'
    meter = LossMeter(info, sync_every=10 if cuda else 1)
    train_model.train()
    t0, images_seen, steps, waited = time.time(), 0, len(loader), 0.0
    bar = tqdm(total=steps, desc=desc, disable=not info.is_main, leave=False, dynamic_ncols=True, mininterval=1.0)
    try:
        fetch_start = time.time()
        for step, (images, targets) in enumerate(loader):
            step_start = time.time()
            waited += step_start - fetch_start
            images = to_float(images.to(precision.device, non_blocking=cuda))  # (uint8 batches: scaled there)
            targets = targets.to(precision.device, non_blocking=cuda)
            if parts.mix is not None:  # (--recipe a2: timm's Mixup / CutMix; the published recipe has none)
                images, targets = parts.mix(images, targets)
            if precision.channels_last:
                images = images.contiguous(memory_format=torch.channels_last)
            if cuda_graphs:  # a new step: the graphs may reuse the last step's output and gradient memory
                torch.compiler.cudagraph_mark_step_begin()
            meter.add(train_step(train_model, parts, images, targets, precision))
            images_seen += images.shape[0] * info.world_size
            if clock is not None:
                clock.after_step(step_start, images.shape[0])
            if meter.due(step == steps - 1):
                bar.update(meter.flush(step))
                elapsed = max(time.time() - t0 - (clock.seconds if clock else 0.0), 1e-9)
                bar.set_postfix(loss=f"{meter.mean:.2f}", lr=f"{parts.scheduler.get_last_lr()[0]:.2e}",
                                img_s=f"{images_seen / elapsed:.0f}", data=f"{waited / elapsed:.0%}", refresh=False)
            fetch_start = time.time()
    finally:
        bar.close()
    return EpochStats(distributed.mean_over_ranks(info, meter.mean), steps, images_seen, time.time() - t0,
                      clock.seconds if clock else 0.0, waited)


class NonFiniteStep(Exception):
    """The loss of step `step` (0-based, within the epoch) was `value` (inf or nan)."""

    def __init__(self, step, value):
        super().__init__(f'non-finite loss {value} at step {step}')
        self.step, self.value = step, value


class NonFiniteLoss(UserError):
    """The loss became inf/nan: the run stops, keeping the last good checkpoint."""


class LossMeter:
    """Collects the step losses on the device and looks at them every `sync_every` steps (one host sync)."""

    def __init__(self, info, sync_every):
        self.info, self.sync_every = info, sync_every
        self.pending, self.total, self.count = [], 0.0, 0

    def add(self, loss):
        self.pending.append(loss.detach())

    def due(self, last_step):
        return len(self.pending) >= self.sync_every or (last_step and self.pending)

    def flush(self, step):
        """Add the pending losses (the last of them is step `step`); raise NonFiniteStep on any rank's inf/nan."""
        values = torch.stack(self.pending).float().cpu()
        bad = ~torch.isfinite(values)
        if distributed.any_true(self.info, bool(bad.any())):
            first = int(bad.nonzero()[0, 0]) if bad.any() else 0
            value = values[first].item() if bad.any() else float('nan')
            raise NonFiniteStep(step - len(self.pending) + 1 + first, value)
        self.total += float(values.double().sum())
        self.count += len(self.pending)
        done = len(self.pending)
        self.pending = []
        return done

    @property
    def mean(self):
        return self.total / max(self.count, 1)


# ----------------------------------------------------------------------------------------------------------
# Evaluation and saving, once per epoch.

@dataclass
class Progress:
    """Where the run stands (saved in latest.pth beside the Trainables)."""
    epoch: int = 0  # epochs done
    global_step: int = 0
    best: float = -1.0  # best score so far (mAP or top-1, of the model or EMA), and the epoch that reached it
    best_epoch: int = 0
    history: list = field(default_factory=list)  # one row of metrics per epoch
    saved: int = 0  # the epoch latest.pth holds (this process's view: 0 on other ranks until resumed)


def evaluate(task, parts, precision):
    """(model's results, EMA's results, seconds): the task's metrics of the model and of its EMA."""
    start = time.time()
    res_model = task.evaluate(parts.model, precision)
    res_ema = task.evaluate(parts.ema.module, precision)
    return res_model, res_ema, time.time() - start


def end_epoch(settings, task, parts, progress, precision, stats, info):
    """Validate the model and its EMA, record the epoch in `progress`, write best.pth (when the better of the
    two beats the best so far), latest.pth, metrics.csv and curves.png; -> the line to print (main process)."""
    res_model, res_ema, eval_time = evaluate(task, parts, precision)
    m, out_dir = task.metric_name, settings.run.output_dir
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
        meta = dict(task.meta, **settings.model.to_dict(), epoch=progress.epoch, **{m: score},
                    weights='ema' if use_ema else 'model')
        ckpt.save_best(os.path.join(out_dir, ckpt.BEST),
                       ckpt.cpu_state_dict(parts.ema.module if use_ema else parts.model), task.class_names, meta,
                       task.saved)
    state = dict(parts.state_dict(), **vars(progress), steps_per_epoch=stats.steps, world_size=info.world_size,
                 rng=ckpt.rng_state(), args=dict(settings.record_dict(), **settings.model.to_dict()),
                 class_names=list(task.class_names), metric_name=m)
    ckpt.save(state, os.path.join(out_dir, ckpt.LATEST))
    progress.saved = progress.epoch
    write_metrics_csv(os.path.join(out_dir, 'metrics.csv'), progress.history)
    plot_history(os.path.join(out_dir, 'curves.png'), progress.history, task.title, metric=m,
                 extra=task.extra_curves)
    line = (f"epoch {progress.epoch}/{settings.optim.epochs} loss {stats.loss:.4g} {m} {res_model[m]:.2f} "
            f"{m}_ema {res_ema[m]:.2f} best {progress.best:.2f}")
    text = (res_ema if use_ema else res_model).get('text')
    if text:
        line += f" | {'ema' if use_ema else 'model'}: {text}"
    return line + (f" ({stats.seconds:.0f} s train at {rate:.{0 if rate >= 10 else 1}f} img/s, "
                   f"{stats.data_share:.0%} waiting for data, {eval_time:.0f} s eval)")


# ----------------------------------------------------------------------------------------------------------
# The run.

def reseed_for_init(seed):
    """Same initial weights on every process (DDP also broadcasts them) and in every run with this seed."""
    seed_everything(derive_seed(seed, 'init'))


def train(settings, info, model, task, resume_state=None):
    """Train `model` (already built and initialised) on task.train_set; returns 0."""
    optim, run = settings.optim, settings.run
    precision = Precision.for_device(optim.amp, settings.speed.channels_last, info.device, warn=info.is_main)
    if run.memory_check:  # (CPU processes of one machine share its memory; each GPU process has its own GPU)
        sharing = int(os.environ.get('LOCAL_WORLD_SIZE', '1')) if info.device.type == 'cpu' else 1
        note = check_memory(settings, info.device, processes=sharing)
        if note and info.is_main:
            LOG.info(note)
    out_dir = prepare_output_dir(run.output_dir)  # only now: bad data or weights leave no empty folder
    with ckpt.claim_output_dir(out_dir, info, fresh=resume_state is None,
                               allow_unfinished_first_epoch=run.resume_auto):
        raw = prepare_model(model, settings.speed, precision.device, precision.channels_last)
        if task.setup_model:
            task.setup_model(raw)
        loader = train_loader(settings, info, task.train_set)
        parts = build_optimisation(raw, optim, len(loader), amp=precision.amp, task=task.kind,
                                   fused=precision.device.type == 'cuda' and settings.speed.fused_optimizer,
                                   num_classes=len(task.class_names),
                                   unknown_as_negative=settings.data.unknown_as_negative)
        if task.split_rows and info.is_main:  # (which images this run validates on, where it chose them)
            write_split_file(out_dir, task.split_rows)
        progress = Progress()
        if resume_state is not None:
            progress = resume(resume_state, parts, len(loader), run.resume_path)
            if info.is_main:
                LOG.info(f"resuming {run.resume_path}: {progress.epoch}/{optim.epochs} epochs done, best "
                         f"{task.metric_name} {progress.best:.2f}")
        train_model, cuda_graphs = wrap_for_training(raw, settings.speed, info)
        clock = CompileClock(settings.speed, info)
        if info.is_main:
            print_start(settings, info, raw, task, len(loader), precision, out_dir)
        try:
            epochs_run = 0
            for epoch in range(progress.epoch, optim.epochs):
                set_epoch(loader, optim.seed, epoch, info.rank)
                clock.start_epoch()
                try:
                    stats = train_one_epoch(train_model, parts, loader, precision, info, clock, cuda_graphs,
                                            desc=f"epoch {epoch + 1}/{optim.epochs}")
                except NonFiniteStep as bad:
                    raise NonFiniteLoss(non_finite_message(settings, epoch, bad, len(loader), progress)) from None
                line = end_epoch(settings, task, parts, progress, precision, stats, info)
                if line:
                    LOG.info(line)
                    note = data_bound_note(settings.data.workers, stats) if epochs_run == 0 else None
                    if note:
                        LOG.info(note)
                epochs_run += 1
                distributed.barrier(info)
                progress.saved = progress.epoch  # (every rank: the main one has written latest.pth)
                if run.stop_after and epochs_run >= run.stop_after and epoch + 1 < optim.epochs:
                    if info.is_main:
                        LOG.info(f"stopped after {epochs_run} epoch(s) as asked (--stop-after); continue with: "
                                 f"--resume --output-dir {out_dir}")
                    return 0
        except KeyboardInterrupt as stop:
            raise Interrupted(interrupted_message(settings, progress),
                              'SIGTERM' if isinstance(stop, Terminated) else 'SIGINT') from None
        if info.is_main:
            best_path = os.path.join(out_dir, ckpt.BEST)
            # (a run resumed from a copied latest.pth has no best.pth until an epoch beats the saved best)
            where = f"best weights in {best_path}" if os.path.isfile(best_path) else f"{best_path} was not written here"
            LOG.info(f"done: best {task.metric_name} {progress.best:.2f} at epoch {progress.best_epoch}; {where}, "
                     f"curves in {os.path.join(out_dir, 'curves.png')}")
        return 0


def resume(state, parts, steps_per_epoch, path):
    """Load latest.pth's `state` into `parts` and the global RNGs; -> the Progress where the run stopped."""
    if state.get('steps_per_epoch') != steps_per_epoch:
        raise UserError(f"{path} was made with {state.get('steps_per_epoch')} steps per epoch but this run has "
                        f"{steps_per_epoch}: resume with the same data, --batch-size and number of processes "
                        f"({state.get('world_size', 1)})")
    parts.load_state_dict(state)
    if 'rng' in state:
        ckpt.set_rng_state(state['rng'])
    epoch = int(state['epoch'])
    return Progress(epoch=epoch, global_step=int(state.get('global_step', epoch * steps_per_epoch)),
                    best=float(state.get('best', -1.0)), best_epoch=int(state.get('best_epoch', 0)),
                    history=list(state.get('history', [])), saved=epoch)


# ----------------------------------------------------------------------------------------------------------
# What the run says.

def print_start(settings, info, raw, task, steps_per_epoch, precision, out_dir):
    n_params = sum(p.numel() for p in raw.parameters())
    epochs = settings.optim.epochs
    LOG.info(f"training {settings.model.model_name} ({n_params / 1e6:.1f}M parameters) on {len(task.train_set)} "
             f"images, {len(task.class_names)} classes, {epochs} epoch{'s' if epochs != 1 else ''} x "
             f"{steps_per_epoch} steps, batch {settings.data.batch_size} x {info.world_size} process(es), device "
             f"{precision.device}, amp {precision.amp}, output {out_dir}")


def data_bound_note(workers, stats, bound=0.25):
    """The note printed after the first epoch when the training waited for batches more than `bound` of its time."""
    if stats.data_share <= bound:
        return None
    return (f"note: the training waited for batches {stats.data_share:.0%} of the time: the data loading limits its "
            f"speed (--workers {workers}; BENCHMARKS.md, 'Data loading', gives what one CPU core delivers)")


def interrupted_message(settings, progress):
    """The line of a stopped run: the epoch latest.pth really holds (an interrupted save leaves the one before)."""
    out_dir = settings.run.output_dir
    if progress.saved == 0:
        return "interrupted during epoch 1: no epoch was saved yet, nothing to resume"
    return (f"interrupted during epoch {progress.saved + 1}/{settings.optim.epochs}; epoch {progress.saved} is saved "
            f"in {os.path.join(out_dir, ckpt.LATEST)}. Continue with: python {settings.run.script} --resume "
            f"--output-dir {out_dir}")


def non_finite_message(settings, epoch, bad, steps_per_epoch, progress):
    optim, latest_path = settings.optim, os.path.join(settings.run.output_dir, ckpt.LATEST)
    if progress.epoch > 0 and os.path.isfile(latest_path):
        kept = f"the last good checkpoint {latest_path} (epoch {progress.epoch}) is kept"
    else:
        kept = "no checkpoint had been written yet"
    return (f"the training loss became non-finite ({bad.value}) at epoch {epoch + 1}/{optim.epochs}, step "
            f"{bad.step + 1}/{steps_per_epoch} (global step {progress.global_step + bad.step + 1}); training stopped "
            f"and {kept}. Lower --lr (now {optim.lr:g})" + (" or try --amp bf16 / off" if optim.amp == 'fp16' else ''))
