"""Label images with a trained model: prints the top-k classes whose probability exceeds --thr (or --th).

    python infer.py --model-path tresnet_l_COCO__448_90_0.pth --pic-path some/image.jpg
    python infer.py --model-path outputs/demo/best.pth --pic-path some/folder --save-path labelled/
    python infer.py --model-path best.pth --pic-path photos/ --output preds.csv --thresholds thresholds.json
    python infer.py --demo                  # the model of train.py --demo on a few images of the demo dataset

A single-label model (its best.pth records it, or --task single-label) prints its --top-k (default 5) best classes
with their softmax probabilities, whatever their value (unless --thr or --thresholds is given).

Class names come from the checkpoint's 'idx_to_class' (class numbers when it has none). --save-path writes a
copy of each image with its labels drawn on it (no window is opened). --output writes every image's labels and
scores to a CSV or JSON file as the batches finish (with a progress bar instead of one line per image);
--save-attention draws where the head's queries looked. On a CPU with VNNI, 256 images or more are labelled in int8
through ONNX Runtime (converted once per checkpoint, checked against fp32: src_files/engine/cpu_fast.py);
--precision fp32 runs the exact path.
"""
import os
from contextlib import nullcontext
from types import SimpleNamespace

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src_files.data.files import load_rgb
from src_files.engine import tasks
from src_files.cli import flags as cli
from src_files.export import cpu_int8 as cpu_fast
from src_files import distributed
from src_files.inference.load import add_inference_speed_args, check_finite, load_model, maybe_compile
from src_files.inference.predictions import (IMAGE_EXTENSIONS, LIST_EXTENSIONS, PredictionWriter, check_output_path,
                                          class_thresholds, list_images, load_thresholds, pick_labels,
                                          relative_names)
from src_files.errors import UserError
from src_files.helper_functions.augmentations import to_float

DEMO_IMAGES = 8  # how many images of the demo dataset --demo labels


def build_parser():
    parser = cli.make_parser(__doc__.split('\n')[0])
    parser.add_argument('--model-path', default=None,
                        help="checkpoint, a local file (nothing is downloaded); required unless --demo")
    parser.add_argument('--pic-path', default=None,
                        help="an image, a folder (searched recursively for image files, in sorted order), or a "
                             f"text file ({', '.join(LIST_EXTENSIONS)}) listing image paths one per line, relative "
                             "to its folder; required unless --demo")
    cli.add_model_args(parser, num_classes_help="number of classes (None = from the checkpoint)",
                       from_checkpoint=True)
    cli.add_threshold_arg(parser, help="report classes whose probability exceeds this")
    parser.add_argument('--thresholds', default=None, metavar='FILE',
                        help="per-class thresholds: a JSON object {class name: threshold in [0, 1]}; classes it "
                             "leaves out use --thr")
    parser.add_argument('--top-k', type=int, default=20,
                        help="report at most this many classes per image (the best that pass the threshold); "
                             "single-label models: 5 unless given")
    tasks.add_task_arg(parser)
    parser.add_argument('--batch-size', type=int, default=32, help="images per forward pass (folders)")
    parser.add_argument('-j', '--workers', type=int, default=cli.default_workers(),
                        help="image-loading processes (0 = load in the main process)")
    cli.add_device_arg(parser)
    parser.add_argument('--output', default=None, metavar='FILE',
                        help="write every image's labels and scores to FILE, .csv (image,labels,scores with "
                             "';'-joined lists) or .json (a list of {image, labels, scores}); shows a progress bar "
                             "instead of a line per image")
    parser.add_argument('--save-path', default='',
                        help="write the image(s) with their labels drawn here: a file for one image, a folder "
                             "for a folder ('' = do not save)")
    parser.add_argument('--save-attention', default=None, metavar='DIR',
                        help="write one PNG per image to DIR: the image beside the ML-Decoder cross-attention map "
                             "of each predicted class's query")
    parser.add_argument('--demo', action='store_true', default=False,
                        help=f"label the first {DEMO_IMAGES} images of the built-in demo dataset's val2014 folder "
                             f"with the model train.py --demo writes (outputs/demo/best.pth); --model-path and "
                             f"--pic-path, if given, win")
    add_inference_speed_args(parser)
    return parser


def images_to_label(args):
    """(image paths, the folder they are named relative to in outputs, or None) for --pic-path or --demo."""
    if args.pic_path:
        return list_images(args.pic_path)
    if not args.demo:
        raise UserError("no image given: pass --pic-path (an image or a folder of images), or --demo to label "
                        "images of the demo dataset")
    from src_files.data import demo_coco_root
    paths, root = list_images(os.path.join(demo_coco_root(), 'val2014'))
    return paths[:DEMO_IMAGES], root


def save_paths(paths, root, save_path):
    if not save_path:
        return [None] * len(paths)
    if root or os.path.isdir(save_path) or save_path.endswith(os.sep):
        if root and not os.path.isdir(save_path) and save_path.lower().endswith(IMAGE_EXTENSIONS):
            raise UserError(f"--save-path {save_path} names an image file but --pic-path is a folder or a list: give a "
                            f"folder for the labelled copies, e.g. --save-path labelled/")
        outputs = [os.path.join(save_path, name) for name in relative_names(paths, root)]
    else:
        outputs = [save_path]
    for path, out in zip(paths, outputs):
        if os.path.realpath(path) == os.path.realpath(out):
            raise UserError(f"--save-path would overwrite the input image {path} with its labelled copy: give "
                            f"another file or folder")
    os.makedirs(os.path.dirname(os.path.abspath(outputs[0])), exist_ok=True)
    return outputs


def attention_paths(paths, root, folder):
    """DIR/<image path relative to --pic-path>.png for --save-attention DIR (None each without it)."""
    if not folder:
        return [None] * len(paths)
    os.makedirs(folder, exist_ok=True)
    return [os.path.join(folder, name + '.png') for name in relative_names(paths, root)]


def draw_labels(image, labels, path):
    """Save a copy of `image` with one line per label in the top-left corner."""
    from PIL import ImageDraw, ImageFont
    image = image.copy()
    draw = ImageDraw.Draw(image)
    size = max(12, min(image.size) // 20)
    try:
        font = ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        font = ImageFont.load_default()
    lines = [f"{name} {score:.2f}" for name, score in labels] or ["(no class above the threshold)"]
    y = 2
    for line in lines:
        box = draw.textbbox((4, y), line, font=font)
        draw.rectangle([box[0] - 2, box[1] - 2, box[2] + 2, box[3] + 2], fill=(0, 0, 0))
        draw.text((4, y), line, fill=(255, 255, 255), font=font)
        y = box[3] + 4
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    try:
        image.save(path)
    except ValueError:  # unknown extension: fall back to JPEG
        path += '.jpg'
        image.save(path, format='JPEG')
    return path


class LabelledImages(Dataset):
    """The images to label, for a DataLoader: item i is (i, model input or None, the full-size image if it is
    to be drawn on, else None, why the file could not be read or None). A bad file does not stop the loader."""

    def __init__(self, paths, transform, keep_original):
        self.paths, self.transform, self.keep_original = paths, transform, keep_original

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        try:
            image = load_rgb(self.paths[i])
        except UserError as error:
            return i, None, None, str(error)
        return i, self.transform(image), image if self.keep_original else None, None


def image_batches(paths, transform, keep_original, batch_size, workers):
    """Batches (lists of LabelledImages items) in the order of `paths`, read by up to `workers` processes."""
    dataset = LabelledImages(paths, transform, keep_original)
    batches = -(-len(paths) // batch_size)
    workers = min(workers, batches) if batches > 1 else 0  # one batch: starting processes only costs time
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=list)


def calibration_images(args, paths):
    """(batch, ids) of the int8 calibration: the readable images among those spread evenly over `paths`."""
    from src_files.helper_functions.augmentations import val_transform
    transform, batch, ids = val_transform(args.image_size), [], []
    for i in cpu_fast.spread(len(paths)):
        try:
            batch.append(transform(load_rgb(paths[i])))
        except UserError:
            continue  # (an unreadable file is reported when its turn comes)
        ids.append(os.path.abspath(paths[i]))
    return (torch.stack(batch) if batch else torch.zeros(0)), ids


def check_flags(args, explicit):
    """Flag errors found before the model is loaded."""
    if args.top_k <= 0 or args.batch_size <= 0 or args.workers < 0:
        raise UserError("--top-k and --batch-size must be positive and --workers 0 or more")
    cli.check_threshold(args.thr)
    if args.output:
        check_output_path(args.output)
    args.threshold_table = load_thresholds(args.thresholds) if args.thresholds else None
    cli.require_model_path(args)
    if args.demo and 'model_path' not in explicit:  # what train.py --demo wrote
        args.model_path = os.path.join('outputs', 'demo', 'best.pth')


def thresholds_per_class(args, class_names, any_score=False):
    """Each class's threshold: --thr, or the --thresholds file's value for the classes it names; -1 for all with
    `any_score` (single-label models without --thr / --thresholds: the top-k whatever their probability)."""
    if any_score:
        return np.full(len(class_names), -1.0, dtype=np.float32)
    if not args.thresholds:
        return np.full(len(class_names), args.thr, dtype=np.float32)
    thresholds, missing = class_thresholds(args.thresholds, args.threshold_table, class_names, args.thr)
    print(f"thresholds from {args.thresholds} for {len(class_names) - missing} of {len(class_names)} classes; "
          f"{missing} use --thr {args.thr}", flush=True)
    return thresholds


def score_batch(job, readable):
    """(probabilities [B, C] as numpy, attention maps [B, Q, H', W'] or None) of the readable images of a batch."""
    inputs = to_float(torch.stack([tensor for _, tensor, _ in readable]).to(job.device)).to(job.dtype)
    if job.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    maps = None
    with torch.no_grad():
        if job.attention:
            from src_files.ml_decoder.attention import attention_maps
            logits, maps = attention_maps(job.model, inputs)
        else:
            logits = job.model(inputs)
        logits = logits.float()
        probs = (torch.softmax(logits, dim=1) if job.softmax else torch.sigmoid(logits)).cpu().numpy()
    check_finite(probs, job.dtype)
    return probs, maps


def report_image(job, i, image, prob, maps):
    """Print or write one image's labels; draw them and its attention maps where asked."""
    keep = pick_labels(prob, job.thresholds, job.top_k)
    names = [job.names[k] for k in keep]
    if job.writer is not None:
        job.writer.write(job.paths[i], names, prob[keep])
    else:
        text = ', '.join(f"{n} ({prob[k]:.2f})" for n, k in zip(names, keep)) or job.nothing
        print(f"{job.paths[i]}: {text}", flush=True)
    if job.outputs[i]:
        job.written.append(draw_labels(image, list(zip(names, prob[keep].tolist())), job.outputs[i]))
    if job.maps_out[i]:
        from src_files.ml_decoder.attention import class_queries, save_attention_png
        queries = class_queries(job.head, keep)
        os.makedirs(os.path.dirname(os.path.abspath(job.maps_out[i])), exist_ok=True)
        save_attention_png(job.maps_out[i], image, maps[queries], names)
        job.maps_written += 1


def _say(job, bar, text):
    if job.writer is not None:
        bar.write(text)  # above the progress bar
    else:
        print(text, flush=True)


def label_all(job, batches):
    """Label every batch; returns how many images could not be read (skipped with a line, unless the only one)."""
    skipped = 0
    bar = tqdm(total=len(job.paths), unit='img', desc='labelling', disable=job.writer is None, leave=False,
               dynamic_ncols=True, mininterval=1.0)
    with bar:
        for batch in batches:
            readable = []
            for i, tensor, image, problem in batch:
                if problem is None:
                    readable.append((i, tensor, image))
                elif len(job.paths) > 1:
                    _say(job, bar, f"skipped: {problem}")  # one bad file does not stop the others
                    skipped += 1
                else:
                    raise UserError(problem)
            if readable:
                probs, maps = score_batch(job, readable)
                for row, (i, _, image) in enumerate(readable):
                    report_image(job, i, image, probs[row], None if maps is None else maps[row])
            bar.update(len(batch))
    return skipped


def main(argv=None):
    args, explicit = cli.parse_args(build_parser(), argv)
    check_flags(args, explicit)
    paths, root = images_to_label(args)
    device = distributed.resolve_device(args.device)
    model, class_names, dtype, channels_last = load_model(args, explicit, device)
    if args.zsl:
        raise UserError(f"{args.model_path} is a zero-shot model: it scores word vectors, so use validate.py --zsl 1 "
                        f"on a NUS-WIDE-layout folder")
    if args.save_attention and not args.use_ml_decoder:
        raise UserError("--save-attention needs an ML-Decoder head: this model has none (--use-ml-decoder 0)")
    if args.save_attention and args.compile:
        print("note: --compile is not used with --save-attention (the maps are recomputed eagerly)", flush=True)
    elif not args.save_attention:
        model = maybe_compile(model, args)
    single = tasks.model_task(args) == tasks.SINGLE
    if cpu_fast.wants_int8(args, explicit, device) and cpu_fast.worth_it(args, len(paths)):
        model = cpu_fast.int8_model(model, args, class_names, lambda: calibration_images(args, paths),
                                    task=tasks.SINGLE if single else tasks.MULTI)
    if single and 'top_k' not in explicit:
        args.top_k = 5
    any_score = single and not args.thresholds and 'thr' not in explicit
    job = SimpleNamespace(
        model=model, device=device, dtype=dtype, channels_last=channels_last, paths=paths, names=class_names,
        thresholds=thresholds_per_class(args, class_names, any_score), top_k=args.top_k, softmax=single,
        attention=bool(args.save_attention),
        nothing="no class above its threshold" if args.thresholds else f"no class above {args.thr}",
        outputs=save_paths(paths, root, args.save_path), maps_out=attention_paths(paths, root, args.save_attention),
        written=[], maps_written=0, writer=None, head=None)
    if job.attention:
        from src_files.ml_decoder.attention import find_head
        job.head = find_head(model)

    from src_files.helper_functions.augmentations import val_transform
    transform = val_transform(args.image_size, cli.uint8_batches(args, device))
    batches = image_batches(paths, transform, bool(args.save_path or args.save_attention),
                            args.batch_size, args.workers)
    with PredictionWriter(args.output) if args.output else nullcontext() as job.writer:
        skipped = label_all(job, batches)
        if skipped:
            print(f"{skipped} of {len(paths)} images could not be read and were skipped", flush=True)
            if skipped == len(paths):
                raise UserError(f"no image in {args.pic_path} could be read")
    report_files(job, args, skipped)
    return 0


def report_files(job, args, skipped):
    if job.written:
        print(f"labelled image(s) written to {job.written[0] if len(job.written) == 1 else args.save_path}")
    if job.maps_written:
        print(f"attention maps of {job.maps_written} image(s) written to {args.save_attention}")
    if job.writer is not None:
        print(f"predictions for {job.writer.count} images written to {args.output}" +
              (f" ({skipped} unreadable image(s) skipped)" if skipped else ''), flush=True)


if __name__ == '__main__':
    cli.run_main(main)
