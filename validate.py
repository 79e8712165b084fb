"""Score a checkpoint on a validation set: mAP and CP, CR, CF1, OP, OR, OF1 at a threshold, or top-1 / top-5 (%).

    python validate.py --model-path tresnet_l_COCO__448_90_0.pth --data /path/to/coco
    python validate.py --model-path outputs/voc/best.pth --data /path/to/VOC2007 --save-scores scores.csv
    python validate.py --model-path outputs/demo/best.pth --demo
    python validate.py --zsl 1 --model-path nus_zsl.pth --data /path/to/nus_wide    # ZSL and GZSL metrics
    python validate.py --model-path best.pth --data /path/to/coco --report report/   # per-class report

The data may be in COCO (2014/2017), VOC, CSV or OpenImages layout (--data-format, default: detected). Unknown
labels (VOC difficult objects, labels OpenImages did not verify) are left out of each class's AP and counts.
Single-label data (ImageFolder, CIFAR-100) is scored by top-1 / top-5 accuracy, on softmax scores. The
checkpoint's classes are matched to the data's by name. The checkpoint may be a model-zoo file ({'model': ...,
'idx_to_class': ...}), a bare state dict, or a best.pth of train.py. Norm layers are folded into the convolutions
and the model runs in fp16 on GPUs (as published); on a CPU with VNNI it runs in int8 through ONNX Runtime,
converted once per checkpoint and checked against fp32 (src_files/engine/cpu_fast.py; --precision fp32 for the
exact path).
"""
import json
import os
import time

from src_files.engine import data_args, tasks
from src_files.cli import flags as cli
from src_files.export import cpu_int8 as cpu_fast
from src_files import distributed
from src_files.evaluation.predict import multilabel_metrics, predict, topk_accuracy
from src_files.inference.load import (add_inference_speed_args, check_finite, load_model, maybe_compile,
                                        precision_label)
from src_files.errors import UserError


def build_parser():
    parser = cli.make_parser(__doc__.split('\n')[0])
    parser.add_argument('--model-path', default=None,
                        help="checkpoint to score, a local file (nothing is downloaded); required unless --demo")
    parser.add_argument('--data', default='data/coco',
                        help="dataset folder (COCO, VOC, CSV, OpenImages, ImageFolder or CIFAR-100 layout, see "
                             "--data-format); with --zsl 1 the NUS-WIDE zsl folder")
    data_args.add_data_args(parser, training=False)
    tasks.add_task_arg(parser)
    parser.add_argument('--save-scores', default='', metavar='FILE.csv',
                        help="also write every validation image's probabilities: header image,<class names>, one "
                             "row per image (its path relative to --data, or its OpenImages ImageID)")
    cli.add_model_args(parser, num_classes_help="number of classes (None = from the checkpoint)",
                       from_checkpoint=True)
    parser.add_argument('--batch-size', type=int, default=48, help="images per forward pass")
    parser.add_argument('-j', '--workers', type=int, default=cli.default_workers(), help="data-loading processes")
    cli.add_threshold_arg(parser, help="probability threshold of CP, CR, CF1, OP, OR, OF1")
    cli.add_device_arg(parser)
    parser.add_argument('--json', default='', metavar='PATH', help="also write the metrics to this JSON file")
    parser.add_argument('--report', default='', metavar='DIR',
                        help="also write a per-class report to this folder: per_class.csv (AP, F1-optimal "
                             "threshold, precision/recall/F1), summary.json, thresholds.json (for infer.py "
                             "--thresholds) and pr_curves.png; on single-label data per_class.csv (top-1 / top-5 per "
                             "class, the class it is most taken for), summary.json and confusion.png")
    parser.add_argument('--demo', action='store_true', default=False,
                        help="validate on the built-in demo dataset (the one train.py --demo trains on); the model "
                             "defaults to outputs/demo/best.pth (with --zsl 1: outputs/demo_zsl/best.pth)")
    add_inference_speed_args(parser)
    return parser


def score_zsl(args, model, info, dtype, channels_last, transform):
    """ZSL and GZSL metrics of a zero-shot model on a NUS-WIDE folder -> (results, image views scored, seconds,
    precision)."""
    start = time.time()
    from src_files.data import load_nus_wide_zsl
    from src_files.evaluation.zsl import evaluate_zsl
    nus = load_nus_wide_zsl(args.data, transform, transform)
    results = evaluate_zsl(model, nus, info, args.batch_size, args.workers, input_dtype=dtype,
                           channels_last=channels_last, restore_train=False,
                           check_scores=lambda scores: check_finite(scores, dtype))
    if info.is_main:
        for name in ('zsl', 'gzsl'):
            r = results[name]
            print(f"{name.upper()} mAP {r['mAP']:.2f} F1@3 {r['F1@3']:.2f} (P {r['P@3']:.2f} R {r['R@3']:.2f}) "
                  f"F1@5 {r['F1@5']:.2f} (P {r['P@5']:.2f} R {r['R@5']:.2f})")
    views = len(nus.zsl_val_set) + len(nus.gzsl_val_set)  # each test image is scored twice
    return results, views, time.time() - start, precision_label(model, dtype)


def score_data(args, model, class_names, info, dtype, channels_last, transform):
    """On the validation split of --data: mAP and the threshold metrics (multi-label data), or top-1 / top-5
    (single-label data) -> (results, images scored, seconds, precision). The seconds count from the data's listing
    to the metrics, leaving out a first run's int8 conversion (printed on its own), as the model's loading."""
    start = time.time()
    splits = data_args.load(args, None, transform, need_train=False)
    if info.is_main:
        print(data_args.describe(splits))
    single = splits.task == tasks.SINGLE
    columns = data_args.match_classes(class_names, splits, args.model_path, args.num_classes)
    softmax = tasks.model_task(args, splits.task) == tasks.SINGLE
    if args.int8 and cpu_fast.worth_it(args, len(splits.val)):  # the fast CPU path (calibration: pixels only)
        t0 = time.time()
        model = cpu_fast.int8_model(model, args, class_names, lambda: calibration_images(args, splits.val),
                                    task=tasks.SINGLE if softmax else tasks.MULTI)
        start += time.time() - t0
    scores, targets = predict(model, splits.val, info, args.batch_size, args.workers, input_dtype=dtype,
                              channels_last=channels_last, activation='softmax' if softmax else 'sigmoid')
    if columns is not None:
        scores = scores[:, columns]
    check_finite(scores, dtype)
    results = topk_accuracy(scores, targets) if single else multilabel_metrics(scores, targets, args.thr)
    if info.is_main:
        print_metrics(args, results, targets, single)
        if args.save_scores:
            data_args.write_scores(args.save_scores, splits.val.image_ids, splits.class_names, scores)
            print(f"scores written to {args.save_scores}")
    if args.report and info.is_main and single:
        from src_files.reporting import report_single
        report_single.write_report(args.report, scores, targets, splits.class_names, results,
                                   meta={'checkpoint': args.model_path, 'data': args.data,
                                         'data_format': splits.format})
    elif args.report and info.is_main:
        from src_files.engine import report  # (validate.py's report() prints the closing line)
        report.write_report(args.report, scores, targets, splits.class_names, args.thr,
                            display_names=splits.display_names,
                            threshold_names=report.model_names(class_names, columns),
                            meta={'checkpoint': args.model_path, 'data': args.data, 'data_format': splits.format})
    return results, len(scores), time.time() - start, precision_label(model, dtype)  # (each image once)


def calibration_images(args, dataset):
    """(batch, ids) of the int8 calibration: images spread evenly over `dataset` (cpu_fast.spread)."""
    import torch
    picked = cpu_fast.spread(len(dataset))
    root = os.path.abspath(args.data)
    return torch.stack([dataset[i][0] for i in picked]), [f"{root}:{dataset.image_ids[i]}" for i in picked]


def print_metrics(args, results, targets, single):
    if single:
        print(f"top1 {results['top1']:.2f} top5 {results['top5']:.2f}")
        return
    print(f"mAP {results['mAP']:.2f}")
    print(' '.join(f"{k} {results[k]:.2f}" for k in ('CP', 'CR', 'CF1', 'OP', 'OR', 'OF1')) +
          f" (threshold {args.thr})")
    note = data_args.unknown_note(targets)
    if note:
        print(note)


def report(args, results, n_images, elapsed, info, precision):
    """The closing line (rate, model, device, dtype) and the --json file."""
    unit = 'image views (ZSL + GZSL)' if args.zsl else 'images'
    print(f"{n_images} {unit} in {elapsed:.1f} s ({n_images / max(elapsed, 1e-9):.0f} {unit.split()[0]}/s"
          + (", torch.compile's compilation included" if args.compile else '') + f"), {args.model_name} "
          f"{args.image_size}px, device {info.device}, {precision}")
    if args.json:
        payload = dict(results, model_path=args.model_path, data=args.data, model_name=args.model_name,
                       image_size=args.image_size)
        if args.zsl:  # top-K metrics: no threshold; each test image is scored in both views
            payload['image_views'] = n_images
        elif 'top1' in results:  # single-label data: no threshold
            payload['images'] = n_images
        else:
            payload.update(threshold=args.thr, images=n_images)
        with open(args.json, 'w') as f:
            json.dump(payload, f, indent=2)
        print(f"metrics written to {args.json}")


def main(argv=None):
    args, explicit = cli.parse_args(build_parser(), argv)
    if args.batch_size <= 0 or args.workers < 0:
        raise UserError("--batch-size must be positive and --workers 0 or more")
    cli.check_threshold(args.thr)
    cli.require_model_path(args)
    from src_files.training.checkpoint import prepare_output_dir
    for flag in ('json', 'save_scores'):  # find an unwritable path before the run, not after it
        if getattr(args, flag):
            path = os.path.dirname(os.path.abspath(getattr(args, flag)))
            prepare_output_dir(path, flag=f"--{flag.replace('_', '-')} path")
    if args.report:
        if args.zsl:
            raise UserError("--report is not supported with --zsl 1 (it reports on a dataset's own classes)")
        prepare_output_dir(os.path.abspath(args.report), flag="--report folder")
    if args.demo and 'model_path' not in explicit:  # what train.py --demo (or train_zsl_nus.py --demo) wrote
        args.model_path = os.path.join('outputs', 'demo_zsl' if args.zsl else 'demo', 'best.pth')
    info = distributed.setup(args.device)
    model, class_names, dtype, channels_last = load_model(args, explicit, info.device)
    args.int8 = cpu_fast.wants_int8(args, explicit, info.device)
    if args.demo and 'data' not in explicit:
        from src_files.data import demo_coco_root, demo_nus_root
        args.data = demo_nus_root() if args.zsl else demo_coco_root()
    model = maybe_compile(model, args)
    from src_files.helper_functions.augmentations import val_transform
    transform = val_transform(args.image_size, cli.uint8_batches(args, info.device))
    if args.zsl:
        results, n_images, seconds, precision = score_zsl(args, model, info, dtype, channels_last, transform)
    else:
        results, n_images, seconds, precision = score_data(args, model, class_names, info, dtype, channels_last,
                                                           transform)
    if info.is_main:
        report(args, results, n_images, seconds, info, precision)
    return 0


if __name__ == '__main__':
    cli.run_main(main)
