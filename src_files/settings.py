"""The settings of a run, as frozen, typed objects.

The scripts parse their flags (src_files/cli/flags.py) and resolve them once (src_files/cli/resolve.py) into
these objects: --demo defaults, a resumed run's own settings, the recipe's and the data's task. Below the
scripts everything reads them; nothing changes them (a setting known only later, such as the number of
classes the data has, gives a new object through `dataclasses.replace`).

- ModelConfig (src_files/models/config.py): what defines the model.
- DataSettings: which data, in which layout, how it is loaded.
- OptimSettings: the recipe: optimiser, schedule, loss, EMA, augmentation, precision, seed.
- SpeedSettings: switches that change speed or memory, never the math (channels-last, compile, ...).
- RunSettings: where the run writes, what it resumes, which device.
- TrainSettings: all of the above for train.py and train_zsl_nus.py.
- InferenceSettings: how validate.py, infer.py and export.py load and run a checkpoint.
"""
import logging
import os
from dataclasses import dataclass, field
from typing import Optional

from src_files.models.config import ModelConfig

LOG = logging.getLogger(__name__)

MULTI, SINGLE = 'multi-label', 'single-label'


def fill_defaults(values, given, defaults, note=None):
    """While resolving settings: set each entry of `defaults` in the dict `values` unless its flag was `given`;
    -> the names whose value changed (and, with `note`, say which in one line)."""
    filled = []
    for key, value in defaults.items():
        if key not in given and values.get(key) != value:
            values[key] = value
            filled.append(key)
    if note and filled and os.environ.get('RANK', '0') == '0':  # (under torchrun: once, not once per process)
        LOG.info(f"{note}: " + ', '.join(f"{k}={values[k]}" for k in filled))
    return filled


@dataclass(frozen=True)
class DataSettings:
    root: str
    format: str = 'auto'  # coco, voc, csv, openimages, cifar100, imagefolder, nus_wide (zero-shot) or auto
    task: str = MULTI  # MULTI or SINGLE, from the layout
    train_split: Optional[str] = None  # split names (VOC ImageSets/Main, a CSV split column, a YOLO data.yaml key)
    val_split: Optional[str] = None  # or a share held out by hash where the data names no split
    val_csv: Optional[str] = None  # csv: the validation images' label CSV
    label_sep: Optional[str] = None  # csv tag lists: the labels' separator (None: detected)
    text_encoder: Optional[str] = None  # zero-shot: class names -> queries (models/text_encoder.py); None: the
    text_names: Optional[str] = None  # NUS-WIDE folder's wordvec_array.pth (train_zsl_nus.py, as published)
    prompts: Optional[str] = None
    unknown_as_negative: bool = False  # train on unknown labels as negatives (else they add nothing to the loss)
    batch_size: int = 56  # images per step and process
    workers: int = 1  # data-loading processes per training process
    uint8_batches: bool = False  # the loader hands over uint8 images, scaled to [0, 1] on the device (CUDA)
    check_images: str = 'auto'  # decode every image before training: 'on', 'off', 'auto' (small data only)
    skip_bad_images: bool = False  # leave unreadable images out (else the run stops naming them)


@dataclass(frozen=True)
class OptimSettings:
    recipe: str = 'published'  # 'published' (Adam, OneCycle, ASL) or 'a2' (timm's parts)
    epochs: int = 40
    lr: float = 1e-4
    weight_decay: float = 1e-4
    ema_decay: float = 0.9997
    amp: str = 'auto'  # 'fp16' (with loss scaling), 'bf16', 'off' or 'auto' (decided for the device)
    augment: bool = True  # the recipe's augmentation (False: resize only)
    seed: int = 0
    loss: str = 'asl'  # single-label data: 'asl', 'ce' or 'bce'; multi-label data: always the published ASL
    smoothing: float = 0.0  # label smoothing of the single-label loss
    bce_target_thresh: Optional[float] = None
    query_noise: float = 0.0  # zero-shot: Gaussian noise on the query vectors, x their RMS (0: off, as published)
    query_drop: float = 0.0  # zero-shot: chance that a class's query is left out of a step (0: off)
    # --recipe a2 only:
    opt: Optional[str] = None  # timm optimizer name
    warmup_epochs: int = 0
    mixup: float = 0.0
    cutmix: float = 0.0
    aug_repeats: int = 1
    rand_aug: str = 'none'
    drop_path: float = 0.0

    @property
    def mixing(self):
        return self.mixup > 0 or self.cutmix > 0


@dataclass(frozen=True)
class SpeedSettings:
    channels_last: bool = True  # CUDA only
    head_impl: str = 'fast'  # 'fast' or 'published' (the same numbers)
    fused_optimizer: bool = True  # CUDA only
    lowmem: bool = False
    cudnn_benchmark: bool = True
    compile: bool = False
    compile_scope: str = 'full'
    compile_mode: str = 'default'
    autotune_gemms: bool = False  # inference with --compile on CUDA


@dataclass(frozen=True)
class RunSettings:
    output_dir: str
    device: str = 'cpu'
    model_path: str = ''  # weights to start from ('' = random initialisation)
    unsafe_load: bool = False
    resume_path: Optional[str] = None  # the latest.pth being resumed
    resume_auto: bool = False  # --resume auto found no latest.pth: a new run (a best.pth alone is started over)
    stop_after: int = 0  # epochs of this invocation (0 = to the end)
    memory_check: bool = True  # estimate the peak memory first; on the CPU stop if it does not fit
    demo: bool = False
    script: str = 'train.py'  # named in the messages that say how to continue


@dataclass(frozen=True)
class TrainSettings:
    model: ModelConfig
    data: DataSettings
    optim: OptimSettings
    speed: SpeedSettings
    run: RunSettings
    record: tuple = field(default=(), compare=False)  # (flag, value) pairs saved in latest.pth (for --resume)

    def record_dict(self):
        return dict(self.record)


@dataclass(frozen=True)
class InferenceSettings:
    """How validate.py, infer.py and export.py load a checkpoint and run it."""
    model: ModelConfig  # the flags' values; fields not in `given` may be filled from the checkpoint
    given: frozenset = frozenset()  # the ModelConfig fields given on the command line (they win)
    model_path: str = ''
    unsafe_load: bool = False
    device: str = 'cpu'
    precision: str = 'fp32'  # 'fp32' (the exact model), or the approximate 'fp16', 'bf16', 'int8' (CPU)
    fold_norms: bool = True
    calibration_data: str = ''  # int8: images to calibrate on
    task: str = 'auto'  # how outputs are read: 'auto', MULTI or SINGLE
    speed: SpeedSettings = SpeedSettings()
    uint8_batches: bool = True  # CUDA only
