"""Train ML-Decoder on multi-label or single-label data, the published recipe or timm's A2; on CPU, one GPU or several.

    python train.py --demo                                   # built-in demo data, a few minutes on a CPU
    python train.py --data /path/to/coco --model-path tresnet_l_21k.pth
    python train.py --data /path/to/VOC2007 --model-path model.safetensors --model-name tresnet_m --image-size 224
    python train.py --data /path/to/cifar --data-format cifar100 --model-name tresnet_m --image-size 224 ...
    torchrun --nproc_per_node 8 train.py --data /path/to/coco --model-path tresnet_l_21k.pth
    torchrun --nproc_per_node 8 train.py --data /path/to/imagenet --recipe a2 --model-name tresnet_m ...
"""
from src_files.engine import data_args, recipes, run_setup, tasks, trainer
from src_files.cli import flags as cli
from src_files import distributed
from src_files.errors import UserError

# Measured on 2 CPU cores: about 3.3 minutes. The colour-changing RandAugment operations (Invert, Solarize,
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
    recipes.add_recipe_args(parser)
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
    recipes.resolve_recipe(args, explicit, info.world_size)

    from src_files.helper_functions.augmentations import val_transform
    from src_files.models import create_model

    uint8 = cli.uint8_batches(args, info.device)
    splits = data_args.load(args, recipes.train_transform(args, uint8), val_transform(args.image_size, uint8))
    recipes.resolve_task(args, explicit, splits.task)
    task = tasks.train_task(args, splits, info)
    if info.is_main:
        print(data_args.describe(splits))
        if recipes.describe(args, splits.task):
            print(recipes.describe(args, splits.task))

    trainer.reseed_for_init(args.seed)
    model = create_model(args, load_head=False, model_path='' if state is not None else args.model_path,
                         drop_path_rate=getattr(args, 'drop_path', None))
    return trainer.train(args, info, model, task, state)


if __name__ == '__main__':
    cli.run_main(main)
