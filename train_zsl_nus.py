"""Train a zero-shot ML-Decoder on NUS-WIDE (the published recipe): queries are the classes' word vectors.

    python train_zsl_nus.py --demo                                # built-in demo data, a few minutes on a CPU
    python train_zsl_nus.py --data /path/to/nus_wide --model-path tresnet_l_21k.pth

Trains on the seen classes of benchmark_81_v0.json and reports, each epoch, ZSL (unseen classes) and GZSL
(seen + unseen) mAP, F1@3 and F1@5.
"""
from src_files.engine import run_setup, trainer
from src_files.cli import flags as cli
from src_files import distributed
from src_files.evaluation.predict import eval_loader
from src_files.evaluation.zsl import evaluate_zsl, format_zsl
from src_files.errors import UserError

# Measured on 2 CPU cores: about 3.3 minutes. The colour-changing RandAugment operations (Invert, Solarize,
# Posterize, Color) would contradict the demo's colour classes, so the demo trains without augmentation, and a
# faster EMA than 0.9997 since it runs only 150 steps.
DEMO_DEFAULTS = dict(model_name='tresnet_m', image_size=64, batch_size=32, epochs=6, lr=1e-3, no_aug=True,
                     ema_decay=0.99, output_dir='outputs/demo_zsl')


def build_parser():
    parser = cli.make_parser(__doc__.split('\n')[0])
    run_setup.add_train_args(parser, data='data/nus_wide', model_name='tresnet_l', image_size=224, batch_size=56,
                           lr=1e-4, weight_decay=1e-2, num_of_groups=None, zsl=1, output_dir='outputs/nus_zsl',
                           demo_defaults=DEMO_DEFAULTS,
                           num_classes_help="number of training classes (None = the seen classes of "
                                            "benchmark_81_v0.json: 925 on NUS-WIDE)")
    for action in parser._actions:
        if action.dest == 'num_of_groups':
            action.help = "ML-Decoder query groups (None = the number of seen classes, as published)"
    return parser


def main(argv=None):
    args, explicit = cli.parse_args(build_parser(), argv)
    from src_files.data import demo_nus_root, load_nus_wide_zsl
    state, finished = run_setup.prepare(args, explicit, DEMO_DEFAULTS, demo_nus_root)
    if finished:
        print(finished)
        return 0
    if not args.zsl:
        raise UserError("train_zsl_nus.py trains zero-shot models (--zsl 1); use train.py for --zsl 0")
    if not args.use_ml_decoder:
        raise UserError("zero-shot training needs the ML-Decoder head (--use-ml-decoder 1)")
    info = distributed.setup(args.device)

    from src_files.helper_functions.augmentations import train_transform, val_transform
    from src_files.ml_decoder.ml_decoder import update_wordvecs
    from src_files.models import create_model

    uint8 = cli.uint8_batches(args, info.device)
    nus = load_nus_wide_zsl(args.data, train_transform(args.image_size, augment=not args.no_aug, uint8=uint8),
                            val_transform(args.image_size, uint8))
    n_seen = len(nus.seen_classes)
    if args.num_classes is None:
        args.num_classes = n_seen
    elif args.num_classes != n_seen:
        raise UserError(f"--num-classes {args.num_classes} does not match the {n_seen} seen classes of {args.data} "
                        f"(leave it out: it is read from benchmark_81_v0.json)")
    if args.num_of_groups is None:
        args.num_of_groups = n_seen

    trainer.reseed_for_init(args.seed)
    model = create_model(args, load_head=False, model_path='' if state is not None else args.model_path)

    def setup_model(module):
        update_wordvecs(module, train_wordvecs=nus.train_wordvecs)

    loaders = {name: eval_loader(dataset, info, args.batch_size, args.workers, persistent=True)  # (every epoch)
               for name, dataset in (('zsl', nus.zsl_val_set), ('gzsl', nus.gzsl_val_set))}

    def evaluate(module, precision):
        results = evaluate_zsl(module, nus, info, args.batch_size, args.workers, amp_dtype=precision.amp_dtype,
                               channels_last=precision.channels_last, loaders=loaders)
        details = {f"{view}_{k}": v for view, r in results.items() for k, v in r.items()}
        return {'mAP': results['zsl']['mAP'], 'details': details, 'text': format_zsl(results)}

    task = trainer.TrainTask(train_set=nus.train_set, class_names=nus.seen_classes, evaluate=evaluate,
                             setup_model=setup_model,
                             title=f"zero-shot {args.model_name} {args.image_size}px: ZSL mAP "
                                   f"({len(nus.unseen_classes)} unseen classes)")
    return trainer.train(args, info, model, task, state)


if __name__ == '__main__':
    cli.run_main(main)
