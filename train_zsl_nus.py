"""Train a zero-shot ML-Decoder on NUS-WIDE (the published recipe): queries are the classes' word vectors.

    python train_zsl_nus.py --demo                                # built-in demo data, a few minutes on a CPU
    python train_zsl_nus.py --data /path/to/nus_wide --model-path tresnet_l_21k.pth

Trains on the seen classes of benchmark_81_v0.json and reports, each epoch, ZSL (unseen classes) and GZSL
(seen + unseen) mAP, F1@3 and F1@5. The loop itself is src_files/training/train_loop.py.
"""
import dataclasses

from src_files import distributed
from src_files.cli import flags, resolve, run
from src_files.data import load_nus_wide_zsl
from src_files.errors import UserError
from src_files.evaluation.predict import eval_loader
from src_files.evaluation.zsl import evaluate_zsl, format_zsl
from src_files.helper_functions.augmentations import train_transform, uint8_batches, val_transform
from src_files.ml_decoder.ml_decoder import update_wordvecs
from src_files.models import create_model
from src_files.training.data import TrainTask
from src_files.training.train_loop import reseed_for_init, train
from src_files.training.zero_shot import queries, text_encoder


def build_parser():
    return flags.zsl_parser(__doc__.split('\n')[0])


def main(argv=None):
    values, explicit = flags.parse(build_parser(), argv)
    settings, state, finished = resolve.train_settings(values, explicit, 'train_zsl_nus.py')
    if finished:
        print(finished)
        return 0
    info = distributed.setup(settings.run.device)
    data, optim, cfg = settings.data, settings.optim, settings.model
    uint8 = uint8_batches(data.uint8_batches, info.device)
    encoder = text_encoder(data)  # (the classes' queries from their names, instead of wordvec_array.pth)
    nus = load_nus_wide_zsl(data.root, train_transform(cfg.image_size, augment=optim.augment, uint8=uint8),
                            val_transform(cfg.image_size, uint8),
                            (lambda names: queries(names, encoder)) if encoder else None)
    record = encoder.record(nus.train_wordvecs.shape[0]) if encoder else None
    n_seen = len(nus.seen_classes)
    if cfg.num_classes is not None and cfg.num_classes != n_seen:
        raise UserError(f"--num-classes {cfg.num_classes} does not match the {n_seen} seen classes of {data.root} "
                        f"(leave it out: it is read from benchmark_81_v0.json)")
    cfg = dataclasses.replace(cfg, num_classes=n_seen, query_dim=int(nus.train_wordvecs.shape[0]),
                              num_of_groups=n_seen if cfg.num_of_groups is None else cfg.num_of_groups)
    settings = dataclasses.replace(settings, model=cfg)

    if record and info.is_main:
        print(f"zero-shot queries: {len(nus.seen_classes) + len(nus.unseen_classes)} class names through "
              f"{record['kind']} {record['file']} ({record['dim']}-d)")
    reseed_for_init(optim.seed)
    model = create_model(cfg, load_head=False, unsafe_load=settings.run.unsafe_load,
                         model_path='' if state is not None else settings.run.model_path)
    loaders = {name: eval_loader(dataset, info, data.batch_size, data.workers, persistent=True)  # (every epoch)
               for name, dataset in (('zsl', nus.zsl_val_set), ('gzsl', nus.gzsl_val_set))}

    def evaluate(module, precision):
        results = evaluate_zsl(module, nus, info, data.batch_size, data.workers, amp_dtype=precision.amp_dtype,
                               channels_last=precision.channels_last, loaders=loaders)
        details = {f"{view}_{k}": v for view, r in results.items() for k, v in r.items()}
        return {'mAP': results['zsl']['mAP'], 'details': details, 'text': format_zsl(results)}

    task = TrainTask(train_set=nus.train_set, class_names=nus.seen_classes, evaluate=evaluate,
                     setup_model=lambda module: update_wordvecs(module, train_wordvecs=nus.train_wordvecs),
                     title=f"zero-shot {cfg.model_name} {cfg.image_size}px: ZSL mAP "
                           f"({len(nus.unseen_classes)} unseen classes)",
                     # (so that infer.py can label images with best.pth alone: every class's word vector and name)
                     saved=dict({'wordvecs': nus.gzsl_wordvecs.cpu().clone(),
                                 'wordvec_classes': list(nus.seen_classes) + list(nus.unseen_classes)},
                                **({'text_encoder': record} if record else {})))
    return train(settings, info, model, task, state)


if __name__ == '__main__':
    run.run_main(main)
