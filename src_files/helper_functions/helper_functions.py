"""The names the published `src_files.helper_functions.helper_functions` module exported, kept importable.

New code should import from the modules that hold them (metrics, ema, optim, augmentations, data, ml_decoder).
"""
from ..data.coco import CocoDetection
from ..ml_decoder.ml_decoder import update_wordvecs
from .augmentations import CutoutPIL
from .ema import ModelEma
from .metrics import AverageMeter, average_precision, mAP
from .optim import add_weight_decay

__all__ = ['AverageMeter', 'CocoDetection', 'CutoutPIL', 'ModelEma', 'add_weight_decay', 'average_precision', 'mAP',
           'update_wordvecs']
