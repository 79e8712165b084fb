"""Multi-label or single-label: what the data's layout sets for training, and how validate.py / infer.py read a
model's outputs (sigmoid per class, or softmax over the classes).

A best.pth of train.py records its task in its meta; `--task` overrides it (model-zoo files record nothing:
the Stanford-Cars checkpoint, for one, is single-label).
"""
import logging

from src_files.data.formats import SINGLE_LABEL_FORMATS
from src_files.errors import UserError

LOG = logging.getLogger(__name__)

MULTI, SINGLE = 'multi-label', 'single-label'


def add_task_arg(parser):
    parser.add_argument('--task', choices=('auto', MULTI, SINGLE), default='auto',
                        help="how the model's outputs are read: single-label = softmax over the classes (top-1 / "
                             "top-5, the best classes with their probabilities), multi-label = a sigmoid per class; "
                             "auto = what the checkpoint records (train.py's best.pth does), else the kind of --data "
                             "(validate.py), else multi-label")


def recorded_task(meta):
    """The task a checkpoint's meta records (a best.pth's 'task', a latest.pth's data format), or None."""
    meta = meta or {}
    if meta.get('task') in (MULTI, SINGLE):
        return meta['task']
    if meta.get('data_format') in SINGLE_LABEL_FORMATS:
        return SINGLE
    return None


def model_task(args, data_task=None):
    """--task, else the checkpoint's record (load_model keeps its meta in args.checkpoint_meta), else `data_task`,
    else multi-label."""
    if getattr(args, 'task', 'auto') != 'auto':
        return args.task
    return recorded_task(getattr(args, 'checkpoint_meta', None)) or data_task or MULTI


def train_task(args, splits, info):
    """The TrainTask of train.py for `splits` (multi-label: mAP; single-label: top-1, with top-5 beside it)."""
    from src_files.evaluation.predict import eval_loader, predict, topk_accuracy
    from src_files.engine.trainer import TrainTask
    from src_files.helper_functions.metrics import mAP

    train_set, val_set = splits.train, splits.val
    if train_set.class_names != val_set.class_names:
        raise UserError(f"the training and validation splits of {args.data} list different classes")
    num_classes = len(train_set.class_names)
    if args.num_classes is None:
        args.num_classes = num_classes
    elif args.num_classes != num_classes:
        raise UserError(f"--num-classes {args.num_classes} does not match the {num_classes} classes of the "
                        f"{splits.format} data in {args.data}")
    single = splits.task == SINGLE
    loader = eval_loader(val_set, info, args.batch_size, args.workers, persistent=True)  # (every epoch, twice)

    def evaluate(module, precision):
        scores, targets = predict(module, val_set, info, args.batch_size, args.workers,
                                  amp_dtype=precision.amp_dtype, channels_last=precision.channels_last,
                                  activation='softmax' if single else 'sigmoid', loader=loader)
        if single:
            accuracy = topk_accuracy(scores, targets)
            return {'top1': accuracy['top1'], 'details': {'top5': accuracy['top5']}}
        return {'mAP': mAP(targets, scores)}

    meta = {'data_format': splits.format, 'task': splits.task}
    if getattr(args, 'recipe', 'published') != 'published':
        meta['recipe'] = args.recipe
    if list(splits.display_names) != list(splits.class_names):
        meta['display_names'] = list(splits.display_names)
    return TrainTask(train_set=train_set, class_names=train_set.class_names, evaluate=evaluate,
                     title=f"{args.model_name} {args.image_size}px, {num_classes} classes", meta=meta,
                     kind=splits.task, metric_name='top1' if single else 'mAP',
                     extra_curves=('top5',) if single else ())
