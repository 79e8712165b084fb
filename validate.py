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
(same outputs). By default the model runs in fp32 on every machine, so the scores are the exact model's; faster,
approximate paths are one flag away: --precision fp16 (as published) or bf16 on a GPU, --precision int8 on a CPU
(ONNX Runtime, converted once per checkpoint and checked against fp32: src_files/export/cpu_int8.py).
"""
import json
import os
import time

from src_files import data as datasets, distributed
from src_files.cli import flags, resolve, run
from src_files.data import check, load_nus_wide_zsl
from src_files.data.nus_wide import is_nus_wide
from src_files.data.csv_list import label_separator
from src_files.data.formats import describe, load_datasets
from src_files.errors import UserError
from src_files.evaluation.predict import match_classes, multilabel_metrics, predict, topk_accuracy, unknown_note
from src_files.evaluation.zsl import evaluate_zsl
from src_files.export import cpu_int8
from src_files.export.zsl_inputs import encode_for, set_vocabulary, text_encoder_of
from src_files.files import atomic_write_text, check_writable, prepare_output_dir
from src_files.helper_functions.augmentations import uint8_batches, val_transform
from src_files.inference.load import (check_finite, load_model, maybe_compile, precision_label, precision_line,
                                      require_model_path, resolve_task)
from src_files.inference.predictions import check_threshold
from src_files.reporting import report
from src_files.settings import SINGLE


def build_parser():
    return flags.validate_parser(__doc__.split('\n')[0])


def check_values(values):
    """Flag errors found before the model is loaded, and the output paths made writable."""
    if values['batch_size'] <= 0 or values['workers'] < 0:
        raise UserError("--batch-size must be positive and --workers 0 or more")
    check_threshold(values['thr'])
    require_model_path(values['model_path'], values['demo'])
    for key in ('json', 'save_scores'):  # find an unwritable path before the run, not after it
        if values[key]:
            check_writable(values[key], flags.flag_name(key))
    if values['report']:
        if values['zsl']:
            raise UserError("--report is not supported with --zsl 1 (it reports on a dataset's own classes)")
        prepare_output_dir(os.path.abspath(values['report']), flag="--report folder")


def score_zsl(values, data, model, loaded, info, transform):
    """ZSL and GZSL metrics of a zero-shot model on a NUS-WIDE folder -> (results, image views scored, seconds,
    precision)."""
    start = time.time()
    encode = None
    if values['text_encoder'] or loaded.text_record:  # (the classes' queries through the model's text encoder)
        encoder = text_encoder_of(loaded, values['model_path'], values['text_encoder'], values['text_names'],
                                  values['prompts'])

        def encode(names):
            return encode_for(loaded, names, encoder)
    nus = load_nus_wide_zsl(data, transform, transform, encode)
    results = evaluate_zsl(model, nus, info, values['batch_size'], values['workers'], input_dtype=loaded.dtype,
                           channels_last=loaded.channels_last, restore_train=False,
                           check_scores=lambda scores: check_finite(scores, loaded.dtype))
    if info.is_main:
        for name in ('zsl', 'gzsl'):
            r = results[name]
            print(f"{name.upper()} mAP {r['mAP']:.2f} F1@3 {r['F1@3']:.2f} (P {r['P@3']:.2f} R {r['R@3']:.2f}) "
                  f"F1@5 {r['F1@5']:.2f} (P {r['P@5']:.2f} R {r['R@5']:.2f})")
    views = len(nus.zsl_val_set) + len(nus.gzsl_val_set)  # each test image is scored twice
    return results, views, time.time() - start, precision_label(model, loaded.dtype)


def score_data(values, data, settings, model, loaded, info, transform, int8):
    """On the validation split of `data`: mAP and the threshold metrics (multi-label data), or top-1 / top-5
    (single-label data) -> (results, images scored, seconds, precision). The seconds count from the data's listing
    to the metrics, leaving out a first run's int8 conversion (printed on its own), as the model's loading."""
    start = time.time()
    splits = load_datasets(data, values['data_format'], None, transform, train_split=values['train_split'],
                           val_split=values['val_split'], need_train=False, val_csv=values['val_csv'],
                           label_sep=label_separator(values['label_sep']))
    splits, checked = check.check_if_wanted(values['check_images'], splits, values['workers'],
                                            values['skip_bad_images'])
    if info.is_main:
        print(describe(splits) + (f"\n{checked}" if checked else ''))
    single = splits.task == SINGLE
    if loaded.config.zsl:  # a zero-shot head scores the data's own class names, through its text encoder
        set_vocabulary(loaded, settings.model_path, classes=splits.class_names,
                       text=(values['text_encoder'], values['text_names'], values['prompts']))
        columns = None
    else:
        columns = match_classes(loaded.class_names, splits, settings.model_path, loaded.config.num_classes)
    task = resolve_task(settings.task, loaded.meta, splits.task)
    if int8:  # --precision int8 (calibration: pixels only)
        t0 = time.time()
        val, root = splits.val, os.path.abspath(data)

        def calibration():  # images spread over the ones scored, named by their ids
            return cpu_int8.calibration_images(len(val), lambda i: val[i][0], lambda i: f"{root}:{val.image_ids[i]}")
        model = cpu_int8.int8_model(model, settings, loaded.config, loaded.class_names, calibration, task=task,
                                    thresholds=values['thr'])
        start += time.time() - t0
    scores, targets = predict(model, splits.val, info, values['batch_size'], values['workers'],
                              input_dtype=loaded.dtype, channels_last=loaded.channels_last,
                              activation='softmax' if task == SINGLE else 'sigmoid')
    if columns is not None:
        scores = scores[:, columns]
    check_finite(scores, loaded.dtype)
    results = topk_accuracy(scores, targets) if single else multilabel_metrics(scores, targets, values['thr'])
    if info.is_main:
        print_metrics(values['thr'], results, targets, single)
        if values['save_scores']:
            report.write_scores(values['save_scores'], splits.val.image_ids, splits.class_names, scores)
            print(f"scores written to {values['save_scores']}")
    if values['report'] and info.is_main:
        meta = {'checkpoint': settings.model_path, 'data': data, 'data_format': splits.format}
        if single:
            report.write_single_label_report(values['report'], scores, targets, splits.class_names, results, meta=meta)
        else:
            report.write_report(values['report'], scores, targets, splits.class_names, values['thr'],
                                display_names=splits.display_names,
                                threshold_names=report.model_names(loaded.class_names, columns), meta=meta)
    return results, len(scores), time.time() - start, precision_label(model, loaded.dtype)  # (each image once)


def print_metrics(thr, results, targets, single):
    if single:
        print(f"top1 {results['top1']:.2f} top5 {results['top5']:.2f}")
        return
    print(f"mAP {results['mAP']:.2f}")
    print(' '.join(f"{k} {results[k]:.2f}" for k in ('CP', 'CR', 'CF1', 'OP', 'OR', 'OF1')) + f" (threshold {thr})")
    note = unknown_note(targets)
    if note:
        print(note)


def print_summary(values, settings, loaded, data, results, n_images, elapsed, info, precision):
    """The closing line (rate, model, device, dtype) and the --json file."""
    config, views = loaded.config, 'zsl' in results  # (ZSL and GZSL views of a NUS-WIDE folder)
    unit = 'image views (ZSL + GZSL)' if views else 'images'
    print(f"{n_images} {unit} in {elapsed:.1f} s ({n_images / max(elapsed, 1e-9):.0f} {unit.split()[0]}/s"
          + (", torch.compile's compilation included" if settings.speed.compile else '') + f"), {config.model_name} "
          f"{config.image_size}px, device {info.device}, {precision}")
    if values['json']:
        payload = dict(results, model_path=settings.model_path, data=data, model_name=config.model_name,
                       image_size=config.image_size)
        if views:  # top-K metrics: no threshold; each test image is scored in both views
            payload['image_views'] = n_images
        elif 'top1' in results:  # single-label data: no threshold
            payload['images'] = n_images
        else:
            payload.update(threshold=values['thr'], images=n_images)
        atomic_write_text(json.dumps(payload, indent=2), values['json'])
        print(f"metrics written to {values['json']}")


def main(argv=None):
    values, explicit = flags.parse(build_parser(), argv)
    check_values(values)
    settings = resolve.inference_settings(values, explicit)
    info = distributed.setup(settings.device)
    if info.is_main:
        print(precision_line(settings, info.device), flush=True)
    loaded = load_model(settings, info.device)
    int8 = cpu_int8.wants_int8(settings, info.device, zsl=loaded.config.zsl)
    data = values['data']
    if values['demo'] and 'data' not in explicit:
        data = datasets.demo_nus_root() if loaded.config.zsl else datasets.demo_coco_root()
    model = maybe_compile(loaded.model, settings.speed)
    transform = val_transform(loaded.config.image_size, uint8_batches(settings.uint8_batches, info.device))
    if loaded.config.zsl and is_nus_wide(data):
        results, n_images, seconds, precision = score_zsl(values, data, model, loaded, info, transform)
    else:
        results, n_images, seconds, precision = score_data(values, data, settings, model, loaded, info, transform,
                                                           int8)
    if info.is_main:
        print_summary(values, settings, loaded, data, results, n_images, seconds, info, precision)
    return 0


if __name__ == '__main__':
    run.run_main(main)
