"""What a training step optimises, and how: the loss, the optimiser, its schedule, the EMA and the loss scaler.

`build_optimisation` sets up both recipes around a model:
- published (the default): Adam on two parameter groups (no weight decay on biases and norms), OneCycle (max lr,
  pct_start 0.2, stepped every batch), the EMA of the weights, and the fp16 loss scaler;
- a2 ("ResNet strikes back" A2, from timm's parts): timm's create_optimizer_v2 (LAMB by default) and
  create_scheduler_v2 'cosine' with warm-up (stepped as timm's train.py steps it), the EMA, and timm's Mixup /
  CutMix on single-label data.
`build_loss` gives the loss: the published ASL (gamma_neg 4, gamma_pos 0, clip 0.05) on multi-label data in both
recipes; on single-label data the published single-label ASL, cross-entropy or timm's BinaryCrossEntropy.
"""
import warnings
from dataclasses import dataclass
from typing import Callable, Optional

import torch
from timm.data import Mixup
from timm.loss import BinaryCrossEntropy
from timm.optim import create_optimizer_v2
from timm.scheduler import create_scheduler_v2

from src_files.errors import UserError
from src_files.helper_functions.ema import ModelEma
from src_files.helper_functions.optim import add_weight_decay
from src_files.loss_functions.losses import ASLSingleLabel, AsymmetricLoss
from src_files.settings import SINGLE, OptimSettings
from src_files.training.checkpoint import cpu_state_dict
from src_files.training.zero_shot import QueryDrop, add_query_noise


@dataclass
class Trainables:
    """What training changes besides the progress: saved to latest.pth and loaded back on --resume."""
    model: torch.nn.Module
    ema: ModelEma
    optimizer: torch.optim.Optimizer
    scheduler: object  # torch's OneCycleLR, or EpochSchedule around a timm scheduler
    scaler: torch.amp.GradScaler
    criterion: torch.nn.Module
    mix: Optional[Callable] = None  # (images, targets) -> mixed batch before each step (--recipe a2's Mixup)

    def state_dict(self):
        return {'model': cpu_state_dict(self.model), 'ema': cpu_state_dict(self.ema.module),
                'optimizer': self.optimizer.state_dict(), 'scheduler': self.scheduler.state_dict(),
                'scaler': self.scaler.state_dict() if self.scaler.is_enabled() else None}

    def load_state_dict(self, state):
        self.model.load_state_dict(state['model'])
        self.ema.module.load_state_dict(state['ema'])
        self.optimizer.load_state_dict(state['optimizer'])
        self.scheduler.load_state_dict(state['scheduler'])
        if state.get('scaler') and self.scaler.is_enabled():
            self.scaler.load_state_dict(state['scaler'])


def build_loss(optim, task=None, unknown_as_negative=False):
    """The loss of `task`'s targets: multi-label (1 / 0 / -1 unknown per class) -> the published ASL (unknown
    labels ignored, or trained as negatives); single-label (class indices, or Mixup's mixed targets) ->
    optim.loss."""
    if task != SINGLE:
        return AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05, disable_torch_grad_focal_loss=True,
                              unknown_as_negative=unknown_as_negative)
    if optim.loss == 'asl':
        return ASLSingleLabel(gamma_pos=0, gamma_neg=4, eps=optim.smoothing)
    if optim.loss == 'ce':  # (with Mixup the mixed targets carry the smoothing)
        return torch.nn.CrossEntropyLoss(label_smoothing=0.0 if optim.mixing else optim.smoothing)
    return BinaryCrossEntropy(smoothing=optim.smoothing, target_threshold=optim.bce_target_thresh)


def build_optimisation(model, optim: OptimSettings, steps_per_epoch, amp='off', fused=False, task=None,
                       num_classes=None, unknown_as_negative=False):
    """Trainables of `optim`'s recipe around `model` (already on its device). `amp`: the precision decided for
    the device ('fp16' enables the loss scaler); `fused`: Adam's fused kernel (CUDA)."""
    device_type = next(model.parameters()).device.type
    scaler = torch.amp.GradScaler(device_type, enabled=amp == 'fp16')
    if scaler.is_enabled():  # the scaler skips the steps whose gradients overflow: expected, as published
        warnings.filterwarnings('ignore', message=r'Detected call of `lr_scheduler\.step\(\)` before')
    criterion = build_loss(optim, task, unknown_as_negative)
    if optim.query_drop:  # zero-shot query augmentation (off in the published recipe)
        criterion = QueryDrop(criterion, optim.query_drop)
    ema = ModelEma(model, optim.ema_decay)
    if optim.query_noise:  # (after the EMA copy: evaluation never sees the noise)
        add_query_noise(model, optim.query_noise)
    if optim.recipe != 'a2':
        optimizer = torch.optim.Adam(add_weight_decay(model, optim.weight_decay), lr=optim.lr, weight_decay=0,
                                     **({'fused': True} if fused else {}))
        # OneCycleLR divides by zero when pct_start x total steps is exactly 1 (a 5-step run): warm up a hair longer.
        pct_start = 0.2 if steps_per_epoch * optim.epochs != 5 else 0.21
        scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=optim.lr, steps_per_epoch=steps_per_epoch,
                                                        epochs=optim.epochs, pct_start=pct_start)
        return Trainables(model, ema, optimizer, scheduler, scaler, criterion)
    try:
        optimizer = create_optimizer_v2(model, opt=optim.opt, lr=optim.lr, weight_decay=optim.weight_decay)
    except (ValueError, AssertionError, KeyError) as error:
        raise UserError(f"--opt {optim.opt}: not an optimizer timm knows ({error})") from None
    scheduler, _ = create_scheduler_v2(optimizer, sched='cosine', num_epochs=optim.epochs,
                                       warmup_epochs=optim.warmup_epochs, step_on_epochs=True,
                                       updates_per_epoch=steps_per_epoch)
    mix = None
    if optim.mixing:
        mix = Mixup(mixup_alpha=optim.mixup, cutmix_alpha=optim.cutmix, label_smoothing=optim.smoothing,
                    num_classes=num_classes)
    return Trainables(model, ema, optimizer, EpochSchedule(scheduler, optimizer, steps_per_epoch), scaler, criterion,
                      mix)


class EpochSchedule:
    """A timm scheduler, stepped after every batch as timm's train.py steps it (step_update after each batch,
    step(epoch) after each epoch's last), behind the interface train_step and the checkpoints use."""

    def __init__(self, scheduler, optimizer, updates_per_epoch):
        self.scheduler, self.optimizer, self.updates_per_epoch = scheduler, optimizer, updates_per_epoch
        self.num_updates = 0

    def step(self):
        self.num_updates += 1
        self.scheduler.step_update(num_updates=self.num_updates)
        if self.num_updates % self.updates_per_epoch == 0:
            self.scheduler.step(self.num_updates // self.updates_per_epoch)

    def get_last_lr(self):
        return [group['lr'] for group in self.optimizer.param_groups]

    def state_dict(self):
        return {'timm': self.scheduler.state_dict(), 'num_updates': self.num_updates}

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state['timm'])
        self.num_updates = int(state['num_updates'])
        self.scheduler.step_update(num_updates=self.num_updates)  # (the lr of the next step)
        self.scheduler.step(self.num_updates // self.updates_per_epoch)


def describe_recipe(optim, task):
    """One line on the recipe's settings, printed at the start of a run (None for the published multi-label one,
    whose output stays as it was)."""
    if optim.recipe != 'a2' and task != SINGLE:
        return None
    loss = 'published ASL' if task != SINGLE else (
        f"single-label {optim.loss}, smoothing {optim.smoothing:g}" +
        (f", target threshold {optim.bce_target_thresh:g}" if optim.bce_target_thresh is not None else ''))
    if optim.recipe != 'a2':
        return (f"recipe: published (Adam, OneCycle, lr {optim.lr:g}, weight decay {optim.weight_decay:g}); "
                f"loss {loss}")
    return (f"recipe: a2 ({optim.opt} lr {optim.lr:g} weight decay {optim.weight_decay:g}, cosine with "
            f"{optim.warmup_epochs} warm-up epochs, RandAugment {optim.rand_aug}, Mixup {optim.mixup:g} / CutMix "
            f"{optim.cutmix:g}, {optim.aug_repeats} repeats, drop path {optim.drop_path:g}); loss {loss}")
