"""Training recipes of train.py: the published one (the default) and timm's ImageNet A2, plus the single-label
losses.

- `--recipe published`: Adam, OneCycle, the published augmentation and ASL (loop.build_trainables). Single-label
  data trains with the published single-label ASL (gamma_pos 0, gamma_neg 4, eps = --smoothing 0.1), or
  `--loss ce` (cross-entropy with --smoothing 0.1) or `--loss bce` (timm's BinaryCrossEntropy).
- `--recipe a2`: "ResNet strikes back" A2, put together from timm's own components: create_optimizer_v2 'lamb'
  (weight decay 0.02, none on biases and norms), create_scheduler_v2 'cosine' with 5 warm-up epochs (stepped as
  timm's train.py steps it), lr 4e-3 per 256 images of the global batch, create_transform with RandAugment
  rand-m7-mstd0.5-inc1 and bicubic RandomResizedCrop + flip, Mixup 0.1 / CutMix 1.0, RepeatAugSampler with 3
  repeats, BinaryCrossEntropy with target threshold 0.2, drop path 0.05. Each has a flag.
  On multi-label data LAMB, the cosine schedule, RandAugment, repeated augmentation and drop path apply and the
  loss stays the published ASL; Mixup and CutMix are off there and refused if asked for: they would turn ASL's
  0 / 1 / unknown targets into fractions (and an unknown label has nothing to be mixed with).
The published train_step is used by both: a2 only changes the parts it steps (optimizer, schedule, loss) and
mixes each batch before it (Trainables.mix).
"""
import argparse
import collections
import logging

import torch

from src_files.engine import loop
from src_files.training.seeds import derive_seed
from src_files.errors import UserError
from src_files.helper_functions.ema import ModelEma
from src_files.loss_functions.losses import AsymmetricLoss
from src_files.models.config import TRESNET_NAMES

LOG = logging.getLogger(__name__)

A2 = dict(opt='lamb', weight_decay=0.02, warmup_epochs=5, mixup=0.1, cutmix=1.0, aug_repeats=3,
          rand_aug='rand-m7-mstd0.5-inc1', bce_target_thresh=0.2, drop_path=0.05, smoothing=0.0)
A2_LR, A2_LR_BATCH = 4e-3, 256  # lr per A2_LR_BATCH images of the global batch (--batch-size x processes)
A2_ONLY = ('opt', 'warmup_epochs', 'mixup', 'cutmix', 'aug_repeats', 'rand_aug', 'drop_path')
RECIPE_KEYS = ('recipe', 'loss', 'smoothing', 'bce_target_thresh') + A2_ONLY  # settings of the run (--resume)


def _flag(key):
    return '--' + key.replace('_', '-')


def add_recipe_args(parser):
    g = parser.add_argument_group('recipe (--recipe a2 fills every flag below left unset with its A2 value)')
    g.add_argument('--recipe', choices=('published', 'a2'), default='published',
                   help="published: Adam + OneCycle + ASL (the paper's recipe); a2: timm's ImageNet A2 recipe "
                        "(LAMB, cosine, RandAugment, Mixup/CutMix, repeated augmentation, BCE, drop path; with "
                        f"--lr unset, lr {A2_LR:g} x global batch / {A2_LR_BATCH}; --weight-decay unset: "
                        f"{A2['weight_decay']})")
    unset = argparse.SUPPRESS  # (each help names its default: the recipe's or the task's)
    g.add_argument('--loss', choices=('asl', 'ce', 'bce'), default=unset,
                   help="single-label data: asl (the published single-label ASL, gamma_neg 4, label smoothing "
                        "--smoothing), ce (cross-entropy) or bce (timm's BinaryCrossEntropy); multi-label data always "
                        "trains with the published ASL (default: asl; bce with --recipe a2)")
    g.add_argument('--smoothing', type=float, default=unset,
                   help="label smoothing of the single-label loss (default: 0.1; 0 with --recipe a2, as A2)")
    g.add_argument('--bce-target-thresh', type=float, default=unset,
                   help=f"--loss bce: targets above this count as 1 (default: none; {A2['bce_target_thresh']} with "
                        f"--recipe a2)")
    g.add_argument('--opt', default=unset, help=f"a2: timm optimizer name (default: {A2['opt']})")
    g.add_argument('--warmup-epochs', type=int, default=unset,
                   help=f"a2: warm-up epochs of the cosine schedule (default: {A2['warmup_epochs']})")
    g.add_argument('--mixup', type=float, default=unset,
                   help=f"a2: Mixup alpha, 0 = off (default: {A2['mixup']} on single-label data, 0 on multi-label)")
    g.add_argument('--cutmix', type=float, default=unset,
                   help=f"a2: CutMix alpha, 0 = off (default: {A2['cutmix']} on single-label data, 0 on "
                        f"multi-label)")
    g.add_argument('--aug-repeats', type=int, default=unset,
                   help=f"a2: repeated augmentation, each image this many times per epoch, 1 = off (default: "
                        f"{A2['aug_repeats']})")
    g.add_argument('--rand-aug', default=unset,
                   help=f"a2: timm RandAugment string, or none (default: {A2['rand_aug']})")
    g.add_argument('--drop-path', type=float, default=unset,
                   help=f"a2: drop-path rate of timm backbones that take one (default: {A2['drop_path']}; 0 for "
                        f"TResNet, which has none)")


def resolve_recipe(args, explicit, world_size):
    """Before the data is read: check the recipe flags and fill A2's task-independent settings (flags given win;
    a resumed run keeps its own)."""
    for key in RECIPE_KEYS:  # (flags not given are absent from args: their defaults depend on the recipe)
        if not hasattr(args, key):
            setattr(args, key, None)
    if args.recipe != 'a2':
        given = [key for key in A2_ONLY if getattr(args, key) is not None]
        if given:
            raise UserError(f"{_flag(given[0])} is a setting of --recipe a2 (the published recipe has Adam, "
                            f"OneCycle and its own augmentation): add --recipe a2 or leave it out")
        return
    for key in ('opt', 'warmup_epochs', 'aug_repeats', 'rand_aug'):
        if getattr(args, key) is None:
            setattr(args, key, A2[key])
    if getattr(args, 'resume_path', None) is None:  # (resumed: lr and weight decay are the run's own)
        if 'weight_decay' not in explicit:
            args.weight_decay = A2['weight_decay']
        if 'lr' not in explicit:
            args.lr = A2_LR * args.batch_size * world_size / A2_LR_BATCH
    if args.model_name.lower() in TRESNET_NAMES:
        if args.drop_path:
            raise UserError(f"--drop-path: {args.model_name} has no drop path (timm backbones have); leave it out")
        args.drop_path = 0.0
    elif args.drop_path is None:
        args.drop_path = A2['drop_path']
    if args.warmup_epochs < 0 or args.aug_repeats < 1 or not 0 <= args.drop_path < 1:
        raise UserError("--warmup-epochs must be 0 or more, --aug-repeats 1 or more and --drop-path in [0, 1)")
    if args.rand_aug != 'none' and not args.rand_aug.startswith('rand-'):
        raise UserError(f"--rand-aug {args.rand_aug}: give a timm RandAugment string such as {A2['rand_aug']}, "
                        f"or none")


def resolve_task(args, explicit, kind):
    """After the data is read: the loss settings for its task ('multi-label' or 'single-label')."""
    a2 = args.recipe == 'a2'
    if kind != 'single-label':
        for key in ('loss', 'smoothing', 'bce_target_thresh'):
            if key in explicit:
                raise UserError(f"{_flag(key)} is for single-label data: multi-label data trains with the "
                                f"published ASL")
        if a2 and ((args.mixup or 0) > 0 or (args.cutmix or 0) > 0):
            raise UserError("--mixup / --cutmix are for single-label data: mixing would turn the multi-label "
                            "targets (1 / 0 / unknown, for ASL) into fractions; leave both out (they are off "
                            "for multi-label data)")
        if a2:
            args.mixup = args.cutmix = 0.0
        return
    if args.loss is None:
        args.loss = 'bce' if a2 else 'asl'
    if args.smoothing is None:
        args.smoothing = A2['smoothing'] if a2 else 0.1
    if a2:
        args.mixup = A2['mixup'] if args.mixup is None else args.mixup
        args.cutmix = A2['cutmix'] if args.cutmix is None else args.cutmix
    if args.loss == 'bce' and args.bce_target_thresh is None and a2:
        args.bce_target_thresh = A2['bce_target_thresh']
    elif args.loss != 'bce' and args.bce_target_thresh is not None:
        raise UserError("--bce-target-thresh is a setting of --loss bce")
    _check_single_label(args)


def describe(args, kind):
    """One line on the recipe's settings, printed at the start of a run (None for the published multi-label one,
    whose output stays as it was)."""
    if getattr(args, 'recipe', 'published') != 'a2' and kind != 'single-label':
        return None
    loss = 'published ASL' if kind != 'single-label' else (
        f"single-label {args.loss}, smoothing {args.smoothing:g}" +
        (f", target threshold {args.bce_target_thresh:g}" if args.bce_target_thresh is not None else ''))
    if getattr(args, 'recipe', 'published') != 'a2':
        return f"recipe: published (Adam, OneCycle, lr {args.lr:g}, weight decay {args.weight_decay:g}); loss {loss}"
    return (f"recipe: a2 ({args.opt} lr {args.lr:g} weight decay {args.weight_decay:g}, cosine with "
            f"{args.warmup_epochs} warm-up epochs, RandAugment {args.rand_aug}, Mixup {args.mixup:g} / CutMix "
            f"{args.cutmix:g}, {args.aug_repeats} repeats, drop path {args.drop_path:g}); loss {loss}")


def _check_single_label(args):
    if not 0 <= args.smoothing < 1 or (args.bce_target_thresh is not None and not 0 <= args.bce_target_thresh < 1):
        raise UserError("--smoothing and --bce-target-thresh must be in [0, 1)")
    if (args.mixup or 0) < 0 or (args.cutmix or 0) < 0:
        raise UserError("--mixup and --cutmix must be 0 (off) or more")
    if mixing(args) and args.loss == 'asl':
        raise UserError("--loss asl takes class indices, but Mixup / CutMix mix them into fractions: use --loss bce "
                        "or ce, or --mixup 0 --cutmix 0")
    if mixing(args) and args.batch_size % 2:
        raise UserError(f"--batch-size {args.batch_size}: Mixup / CutMix mix each batch with its reverse and need "
                        f"an even batch size")


def mixing(args):
    return (getattr(args, 'mixup', None) or 0) > 0 or (getattr(args, 'cutmix', None) or 0) > 0


def train_transform(args, uint8=False):
    """The published augmentation, or with --recipe a2 timm's (RandomResizedCrop + flip + RandAugment, bicubic),
    both giving [0, 1] tensors as the evaluation transform does (`uint8`: their uint8 values, for
    augmentations.to_float); --no-aug: resize only."""
    from torchvision import transforms

    from src_files.helper_functions.augmentations import train_transform as published
    if getattr(args, 'recipe', 'published') != 'a2' or args.no_aug:
        return published(args.image_size, augment=not args.no_aug, uint8=uint8)
    from timm.data import create_transform
    primary, secondary, _ = create_transform(args.image_size, is_training=True, interpolation='bicubic',
                                             auto_augment=None if args.rand_aug == 'none' else args.rand_aug,
                                             color_jitter=None, separate=True)
    last = transforms.PILToTensor() if uint8 else transforms.ToTensor()
    return transforms.Compose([primary, secondary, last])  # (timm's last part, left out, normalises)


def single_label_loss(args):
    """The loss for class-index targets (or Mixup's mixed targets)."""
    from src_files.loss_functions.losses import ASLSingleLabel
    if args.loss == 'asl':
        return ASLSingleLabel(gamma_pos=0, gamma_neg=4, eps=args.smoothing)
    if args.loss == 'ce':  # (with Mixup the mixed targets carry the smoothing)
        return torch.nn.CrossEntropyLoss(label_smoothing=0.0 if mixing(args) else args.smoothing)
    from timm.loss import BinaryCrossEntropy
    return BinaryCrossEntropy(smoothing=args.smoothing, target_threshold=args.bce_target_thresh)


def build_trainables(args, model, steps_per_epoch, precision, task):
    """loop.Trainables of the run's recipe around `model` (on its device)."""
    criterion = single_label_loss(args) if task.kind == 'single-label' else None
    if getattr(args, 'recipe', 'published') != 'a2':
        return loop.build_trainables(model, steps_per_epoch, args.epochs, args.lr, args.weight_decay,
                                     args.ema_decay, precision.amp,
                                     fused=precision.device.type == 'cuda' and args.fused_optimizer,
                                     unknown_as_negative=getattr(args, 'unknown_as_negative', False),
                                     criterion=criterion)
    from timm.optim import create_optimizer_v2
    from timm.scheduler import create_scheduler_v2
    parts = loop.Trainables(model, ModelEma(model, args.ema_decay), None, None,
                            torch.amp.GradScaler(precision.device.type, enabled=precision.amp == 'fp16'),
                            criterion or AsymmetricLoss(gamma_neg=4, gamma_pos=0, clip=0.05,  # (as published)
                                                        disable_torch_grad_focal_loss=True,
                                                        unknown_as_negative=getattr(args, 'unknown_as_negative',
                                                                                    False)))
    try:
        parts.optimizer = create_optimizer_v2(model, opt=args.opt, lr=args.lr, weight_decay=args.weight_decay)
    except (ValueError, AssertionError, KeyError) as error:
        raise UserError(f"--opt {args.opt}: not an optimizer timm knows ({error})") from None
    scheduler, _ = create_scheduler_v2(parts.optimizer, sched='cosine', num_epochs=args.epochs,
                                       warmup_epochs=args.warmup_epochs, step_on_epochs=True,
                                       updates_per_epoch=steps_per_epoch)
    parts.scheduler = EpochSchedule(scheduler, parts.optimizer, steps_per_epoch)
    if mixing(args):
        from timm.data import Mixup
        parts.mix = Mixup(mixup_alpha=args.mixup, cutmix_alpha=args.cutmix, label_smoothing=args.smoothing,
                          num_classes=len(task.class_names))
    return parts


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


def a2_sampler(args, info, dataset):
    """(sampler, drop_last): timm's RepeatAugSampler with --aug-repeats > 1, else torch's DistributedSampler; the
    last, smaller batch is dropped under Mixup / CutMix, which need an even batch (as timm's loader does)."""
    if args.aug_repeats > 1:
        sampler = RepeatedOrder(dataset, info.world_size, info.rank, args.aug_repeats, args.seed)
    else:
        sampler = torch.utils.data.DistributedSampler(dataset, num_replicas=info.world_size, rank=info.rank,
                                                      shuffle=True, seed=derive_seed(args.seed, 'order'))
    return sampler, mixing(args)


class RepeatedOrder(torch.utils.data.Sampler):
    """timm's RepeatAugSampler (`self.sampler`), its order drawn from --seed, yielding (index, rank, copy) so that
    SeededSamples augments each copy of an image differently (on this process and on the others)."""

    def __init__(self, dataset, num_replicas, rank, num_repeats, seed):
        from timm.data.distributed_sampler import RepeatAugSampler
        self.sampler = RepeatAugSampler(dataset, num_replicas=num_replicas, rank=rank, shuffle=True,
                                        num_repeats=num_repeats)
        self.seed, self.rank = seed, rank

    def set_epoch(self, epoch):
        self.sampler.set_epoch(derive_seed(self.seed, 'order', epoch))  # (timm seeds its shuffle with the epoch)

    def __len__(self):
        return len(self.sampler)

    def __iter__(self):
        copies = collections.Counter()
        for index in self.sampler:
            yield index, self.rank, copies[index]
            copies[index] += 1
