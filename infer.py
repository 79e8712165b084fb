"""Label images with a trained model: prints the top-k classes whose probability exceeds --thr (or --th).

    python infer.py --model-path tresnet_l_COCO__448_90_0.pth --pic-path some/image.jpg
    python infer.py --model-path outputs/demo/best.pth --pic-path some/folder --save-path labelled/
    python infer.py --model-path best.pth --pic-path photos/ --output preds.csv --thresholds thresholds.json
    python infer.py --demo                  # the model of train.py --demo on a few images of the demo dataset
    python infer.py --model-path outputs/nus_wide_zsl/best.pth --pic-path photos/   # a zero-shot model

A single-label model (its best.pth records it, or --task single-label) prints its --top-k (default 5) best classes
with their softmax probabilities, whatever their value (unless --thr or --thresholds is given).

Class names come from the checkpoint's 'idx_to_class' (class numbers when it has none). A zero-shot model scores
the classes whose word vectors it is given: those its best.pth records (every class of its data, seen and unseen),
or --wordvecs FILE with --class-names FILE. Model settings (backbone, image size, head) come from the checkpoint;
for a model-zoo file, which records none, the backbone from its weights and the image size from the zoo's table. --save-path writes a
copy of each image with its labels drawn on it (no window is opened). --output writes every image's labels and
scores to a CSV or JSON file as the batches finish (with a progress bar instead of one line per image);
--save-attention draws where the head's queries looked. The labels are the fp32 model's on every machine and for any
number of images; --precision int8 labels faster on a CPU through ONNX Runtime (converted once per checkpoint,
checked against fp32: src_files/export/cpu_int8.py), and fp16 / bf16 on a GPU, both approximately.
"""
import os
from contextlib import nullcontext

from src_files import distributed
from src_files.cli import flags, resolve, run
from src_files.errors import UserError
from src_files.export import cpu_int8
from src_files.export.zsl_inputs import read_classes, set_vocabulary
from src_files.helper_functions.augmentations import uint8_batches, val_transform
from src_files.inference import labelling
from src_files.inference.load import is_exported, load_model, maybe_compile, precision_line, require_model_path
from src_files.inference.predictions import PredictionWriter, check_output_path, check_threshold, load_thresholds
from src_files.ml_decoder.attention import find_head
from src_files.settings import SINGLE

DEMO_IMAGES = 8  # how many images of the demo dataset --demo labels


def build_parser():
    return flags.infer_parser(__doc__.split('\n')[0], DEMO_IMAGES)


def check_values(values):
    """Flag errors found before the model is loaded; -> the --thresholds table (None without the flag)."""
    if values['top_k'] <= 0 or values['batch_size'] <= 0 or values['workers'] < 0:
        raise UserError("--top-k and --batch-size must be positive and --workers 0 or more")
    check_threshold(values['thr'])
    if values['output']:
        check_output_path(values['output'])
    table = load_thresholds(values['thresholds']) if values['thresholds'] else None
    require_model_path(values['model_path'], values['demo'])
    return table


def check_model(settings, loaded, attention):
    """UserError for a model infer.py cannot label images with."""
    if attention and loaded.config.zsl:
        raise UserError("--save-attention draws the queries of a fixed classifier: a zero-shot head has none of its "
                        "own (leave --save-attention out)")
    if attention and not loaded.config.use_ml_decoder:
        raise UserError("--save-attention needs an ML-Decoder head: this model has none (--use-ml-decoder 0)")


def ready_model(settings, loaded, device, paths, attention, thresholds, class_names):
    """The loaded model as it labels `paths`: compiled (--compile, unless attention maps are drawn), or in int8 on a
    CPU with --precision int8 (src_files/export/cpu_int8.py; its guard counts labels at `thresholds`)."""
    config = loaded.config
    model = loaded.model
    if attention and settings.speed.compile:
        print("note: --compile is not used with --save-attention (the maps are recomputed eagerly)", flush=True)
    elif not attention:
        model = maybe_compile(model, settings.speed)
    if cpu_int8.wants_int8(settings, device, zsl=config.zsl, save_attention=attention):
        load = cpu_int8.image_file_loader(paths, config.image_size)

        def calibration():  # the readable images among those spread over the ones labelled
            return cpu_int8.calibration_images(len(paths), load, lambda i: os.path.abspath(paths[i]))
        model = cpu_int8.int8_model(model, settings, config, class_names, calibration, task=loaded.task,
                                    thresholds=thresholds)
    return model


def main(argv=None):
    values, explicit = flags.parse(build_parser(), argv)
    table = check_values(values)
    settings = resolve.inference_settings(values, explicit)
    attention = bool(values['save_attention'])
    if attention and is_exported(settings.model_path):
        raise UserError(f"--save-attention needs the PyTorch checkpoint, not the exported {settings.model_path}")
    paths, root = labelling.images_to_label(values['pic_path'], values['demo'], DEMO_IMAGES)
    device = distributed.resolve_device(settings.device)
    print(precision_line(settings, device), flush=True)
    loaded = load_model(settings, device)
    check_model(settings, loaded, attention)
    class_names = set_vocabulary(loaded, settings.model_path, values['wordvecs'], values['class_names'],
                                 read_classes(values['classes'], values['classes_file']),
                                 (values['text_encoder'], values['text_names'], values['prompts']))
    config, single = loaded.config, loaded.task == SINGLE
    top_k = 5 if single and 'top_k' not in explicit else values['top_k']
    any_score = single and not values['thresholds'] and 'thr' not in explicit
    thresholds = labelling.thresholds_per_class(class_names, values['thr'], values['thresholds'], table, any_score)
    model = ready_model(settings, loaded, device, paths, attention, thresholds, class_names)
    job = labelling.LabelJob(
        model=model, device=device, dtype=loaded.dtype, channels_last=loaded.channels_last, paths=paths,
        class_names=class_names, top_k=top_k, softmax=single, thresholds=thresholds,
        nothing="no class above its threshold" if values['thresholds'] else f"no class above {values['thr']}",
        outputs=labelling.save_paths(paths, root, values['save_path']),
        maps_out=labelling.attention_paths(paths, root, values['save_attention']),
        head=find_head(model) if attention else None)
    transform = val_transform(config.image_size, uint8_batches(settings.uint8_batches, device))
    batches = labelling.image_batches(paths, transform, bool(values['save_path'] or attention), values['batch_size'],
                                      values['workers'])
    with PredictionWriter(values['output']) if values['output'] else nullcontext() as writer:
        result = labelling.label_all(job, batches, writer)
        if result.skipped:
            print(f"{result.skipped} of {len(paths)} images could not be read and were skipped", flush=True)
            if result.skipped == len(paths):
                raise UserError(f"no image in {values['pic_path']} could be read")
    print_outputs(values, result, writer)
    return 0


def print_outputs(values, result, writer):
    """Where the labelled copies, the attention maps and the predictions file went."""
    if result.written:
        print(f"labelled image(s) written to {result.written[0] if len(result.written) == 1 else values['save_path']}")
    if result.maps_written:
        print(f"attention maps of {result.maps_written} image(s) written to {values['save_attention']}")
    if writer is not None:
        print(f"predictions for {writer.count} images written to {values['output']}" +
              (f" ({result.skipped} unreadable image(s) skipped)" if result.skipped else ''), flush=True)


if __name__ == '__main__':
    run.run_main(main)
