"""Train ML-Decoder on multi-label data, the published recipe; on CPU, one GPU or several (torchrun).

    python train.py --demo                                   # built-in demo data, a few minutes on a CPU
    python train.py --data /path/to/coco --model-path tresnet_l_21k.pth
    python train.py --data /path/to/VOC2007 --model-path model.safetensors --model-name tresnet_m --image-size 224
    torchrun --nproc_per_node 8 train.py --data /path/to/coco --model-path tresnet_l_21k.pth
"""
from src_files.engine import cli, data_args, distributed, run_setup, trainer
from src_files.engine.evaluation import predict
from src_files.errors import UserError

# Measured on 2 CPU cores: about 3.5 minutes. The colour-changing RandAugment operations (Invert, Solarize,
# Posterize, Color) would contradict the demo's colour classes, so the demo trains without augmentation, and a
# faster EMA than 0.9997 since it runs only 150 steps.
DEMO_DEFAULTS = dict(model_name='tresnet_m', image_size=64, batch_size=32, epochs=6, lr=1e-3, no_aug=True,
                     ema_decay=0.99, output_dir='outputs/demo')


def build_parser():
    parser = cli.make_parser(__doc__.split('\n')[0])
    run_setup.add_train_args(parser, data='data/coco', model_name='tresnet_l', image_size=448, batch_size=56, lr=1e-4,
                           weight_decay=1e-4, num_of_groups=-1, zsl=0, output_dir='outputs/coco',
                           demo_defaults=DEMO_DEFAULTS,
                           num_classes_help="number of classes (None = as many as the data has)")
    data_args.add_data_args(parser, training=True)
    return parser


def main(argv=None):
    args, explicit = cli.parse_args(build_parser(), argv)
    from src_files.data import demo_coco_root
    state, finished = run_setup.prepare(args, explicit, DEMO_DEFAULTS, demo_coco_root)
    if finished:
        print(finished)
        return 0
    if args.zsl:
        raise UserError("--zsl 1 needs word vectors: use train_zsl_nus.py for zero-shot training")
    info = distributed.setup(args.device)

    from src_files.helper_functions.augmentations import train_transform, val_transform
    from src_files.helper_functions.metrics import mAP
    from src_files.models import create_model

    splits = data_args.load(args, train_transform(args.image_size, augment=not args.no_aug),
                            val_transform(args.image_size))
    train_set, val_set = splits.train, splits.val
    if train_set.class_names != val_set.class_names:
        raise UserError(f"the training and validation splits of {args.data} list different classes")
    num_classes = len(train_set.class_names)
    if args.num_classes is None:
        args.num_classes = num_classes
    elif args.num_classes != num_classes:
        raise UserError(f"--num-classes {args.num_classes} does not match the {num_classes} classes of the "
                        f"{splits.format} data in {args.data}")
    if info.is_main:
        print(data_args.describe(splits))

    trainer.reseed_for_init(args.seed)
    model = create_model(args, load_head=False, model_path='' if state is not None else args.model_path)

    def evaluate(module, precision):
        scores, targets = predict(module, val_set, info, args.batch_size, args.workers,
                                  amp_dtype=precision.amp_dtype, channels_last=precision.channels_last)
        return {'mAP': mAP(targets, scores)}

    meta = {'data_format': splits.format}
    if list(splits.display_names) != list(splits.class_names):
        meta['display_names'] = list(splits.display_names)
    task = trainer.TrainTask(train_set=train_set, class_names=train_set.class_names, evaluate=evaluate,
                             title=f"{args.model_name} {args.image_size}px, {num_classes} classes", meta=meta)
    return trainer.train(args, info, model, task, state)


if __name__ == '__main__':
    cli.run_main(main)
