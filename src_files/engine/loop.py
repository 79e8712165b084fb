"""The published training step and epoch, over the pieces that training changes (Trainables).

`build_trainables` sets up the published optimisation around a model: Adam on two parameter groups
(add_weight_decay), OneCycle (max lr, pct_start 0.2, stepped every batch), ASL(gamma_neg=4, gamma_pos=0,
clip=0.05), the EMA copy and the fp16 loss scaler. `train_step` is, batch for batch, the published loop's step;
`train_one_epoch` runs it over a loader. trainer.py strings these into a whole run.
"""
import time
import warnings
from dataclasses import dataclass, field
from typing import Callable, Optional

import torch
from tqdm import tqdm

from src_files.training import checkpoint as ckpt
from src_files import distributed
from src_files.evaluation.predict import autocast
from src_files.engine.loop_helpers import LossMeter
from src_files.engine.run_setup import AMP_DTYPES, resolve_amp
from src_files.helper_functions.augmentations import to_float
from src_files.helper_functions.ema import ModelEma
from src_files.helper_functions.optim import add_weight_decay
from src_files.loss_functions.losses import AsymmetricLoss


@dataclass
class Precision:
    """How the model runs, decided once by the trainer and handed to the task's evaluation."""
    device: torch.device
    amp: str = 'off'  # 'fp16' (with loss scaling), 'bf16' or 'off'
    channels_last: bool = False

    @property
    def amp_dtype(self):
        return AMP_DTYPES[self.amp]

    @classmethod
    def from_args(cls, args, device, warn=False):
        return cls(device, resolve_amp(args.amp, device, warn=warn), device.type == 'cuda' and args.channels_last)


@dataclass
class Trainables:
    """What training changes besides the progress: saved to latest.pth and loaded back on --resume."""
    model: torch.nn.Module
    ema: ModelEma
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    criterion: torch.nn.Module
    mix: Optional[Callable] = None  # (images, targets) -> mixed batch before each step (--recipe a2's Mixup)

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
class Progress:
    """Where the run stands (saved in latest.pth beside the Trainables)."""
    epoch: int = 0  # epochs done
    global_step: int = 0
    best: float = -1.0  # best score so far (mAP or top-1, of the model or EMA), and the epoch that reached it
    best_epoch: int = 0
    history: list = field(default_factory=list)  # one row of metrics per epoch


def build_trainables(model, steps_per_epoch, epochs, lr, weight_decay, ema_decay, amp='off', fused=False,
                     unknown_as_negative=False, criterion=None):
    """The published optimisation around `model` (already on its device): Adam on two parameter groups,
    OneCycle stepped per batch, ASL (unknown labels ignored, or trained as negatives; `criterion` replaces it,
    e.g. single-label ASL), the EMA copy, and the fp16 loss scaler (enabled for amp 'fp16' only)."""
    ema = ModelEma(model, ema_decay)
    optimizer = torch.optim.Adam(add_weight_decay(model, weight_decay), lr=lr, weight_decay=0,
                                 **({'fused': True} if fused else {}))
    # OneCycleLR divides by zero when pct_start x total steps is exactly 1 (a 5-step run): warm up a hair longer.
    pct_start = 0.2 if steps_per_epoch * epochs != 5 else 0.21
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, steps_per_epoch=steps_per_epoch,
                                                    epochs=epochs, pct_start=pct_start)
    device_type = next(model.parameters()).device.type
    scaler = torch.amp.GradScaler(device_type, enabled=amp == 'fp16')
    if scaler.is_enabled():  # the scaler skips the steps whose gradients overflow: expected, as published
        warnings.filterwarnings('ignore', message=r'Detected call of `lr_scheduler\.step\(\)` before')
    if criterion is None:
        criterion = AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True,
                                   unknown_as_negative=unknown_as_negative)
    return Trainables(model, ema, optimizer, scheduler, scaler, criterion)


@dataclass
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


def train_step(train_model, parts, images, targets, precision):
    """One step of the published loop: forward (under autocast), ASL, backward, Adam, OneCycle, EMA."""
    parts.optimizer.zero_grad(set_to_none=True)
    with autocast(precision.device, precision.amp_dtype):
        logits = train_model(images).float()
    loss = parts.criterion(logits, targets)
    parts.scaler.scale(loss).backward()
    parts.scaler.step(parts.optimizer)
    parts.scaler.update()
    parts.scheduler.step()
    parts.ema.update(parts.model)
    return loss


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
