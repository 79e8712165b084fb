"""Label images with a trained model: prints the top-k classes whose probability exceeds --thr (or --th).

    python infer.py --model-path tresnet_l_COCO__448_90_0.pth --pic-path some/image.jpg
    python infer.py --model-path outputs/demo/best.pth --pic-path some/folder --save-path labelled/
    python infer.py --demo                  # the model of train.py --demo on a few images of the demo dataset

Class names come from the checkpoint's 'idx_to_class' (class numbers when it has none). --save-path writes a
copy of each image with its labels drawn on it (no window is opened).
"""
import os

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from src_files.data.files import load_rgb
from src_files.engine import cli, distributed
from src_files.engine.inference import add_inference_speed_args, check_finite, load_model, maybe_compile
from src_files.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm')
DEMO_IMAGES = 8  # how many images of the demo dataset --demo labels


def build_parser():
    parser = cli.make_parser(__doc__.split('\n')[0])
    parser.add_argument('--model-path', default=None,
                        help="checkpoint, a local file (nothing is downloaded); required unless --demo")
    parser.add_argument('--pic-path', default=None,
                        help="an image, or a folder of images; required unless --demo")
    cli.add_model_args(parser, num_classes_help="number of classes (None = from the checkpoint)",
                       from_checkpoint=True)
    cli.add_threshold_arg(parser, help="report classes whose probability exceeds this")
    parser.add_argument('--top-k', type=int, default=20, help="report at most this many classes per image")
    parser.add_argument('--batch-size', type=int, default=32, help="images per forward pass (folders)")
    parser.add_argument('-j', '--workers', type=int, default=cli.default_workers(),
                        help="image-loading processes (0 = load in the main process)")
    cli.add_device_arg(parser)
    parser.add_argument('--save-path', default='',
                        help="write the image(s) with their labels drawn here: a file for one image, a folder "
                             "for a folder ('' = do not save)")
    parser.add_argument('--demo', action='store_true', default=False,
                        help=f"label the first {DEMO_IMAGES} images of the built-in demo dataset's val2014 folder "
                             f"with the model train.py --demo writes (outputs/demo/best.pth); --model-path and "
                             f"--pic-path, if given, win")
    add_inference_speed_args(parser)
    return parser


def images_to_label(args):
    """(image paths, whether they come from a folder) for --pic-path, or for --demo without it."""
    if args.pic_path:
        return list_images(args.pic_path)
    if not args.demo:
        raise UserError("no image given: pass --pic-path (an image or a folder of images), or --demo to label "
                        "images of the demo dataset")
    from src_files.data import demo_coco_root
    paths, _ = list_images(os.path.join(demo_coco_root(), 'val2014'))
    return paths[:DEMO_IMAGES], True


def list_images(pic_path):
    if os.path.isdir(pic_path):
        paths = sorted(os.path.join(pic_path, name) for name in os.listdir(pic_path)
                       if name.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(os.path.join(pic_path, name)))
        if not paths:
            raise UserError(f"no images ({', '.join(IMAGE_EXTENSIONS)}) in the folder {pic_path}")
        return paths, True
    if not os.path.isfile(pic_path):
        raise UserError(f"image not found: {pic_path} (give an image file or a folder with --pic-path)")
    return [pic_path], False


def save_paths(paths, is_folder, save_path):
    if not save_path:
        return [None] * len(paths)
    if is_folder or os.path.isdir(save_path) or save_path.endswith(os.sep):
        if is_folder and not os.path.isdir(save_path) and save_path.lower().endswith(IMAGE_EXTENSIONS):
            raise UserError(f"--save-path {save_path} names an image file but --pic-path is a folder: give a folder "
                            f"for the labelled copies, e.g. --save-path labelled/")
        outputs = [os.path.join(save_path, os.path.basename(p)) for p in paths]
    else:
        outputs = [save_path]
    for path, out in zip(paths, outputs):
        if os.path.realpath(path) == os.path.realpath(out):
            raise UserError(f"--save-path would overwrite the input image {path} with its labelled copy: give "
                            f"another file or folder")
    os.makedirs(os.path.dirname(os.path.abspath(outputs[0])), exist_ok=True)
    return outputs


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
        return i, self.transform(image), image if self.keep_original[i] else None, None


def image_batches(paths, transform, outputs, batch_size, workers):
    """Batches (lists of LabelledImages items) in the order of `paths`, read by up to `workers` processes."""
    dataset = LabelledImages(paths, transform, [out is not None for out in outputs])
    batches = -(-len(paths) // batch_size)
    workers = min(workers, batches) if batches > 1 else 0  # one batch: starting processes only costs time
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=list)


def main(argv=None):
    args, explicit = cli.parse_args(build_parser(), argv)
    if args.top_k <= 0 or args.batch_size <= 0 or args.workers < 0:
        raise UserError("--top-k and --batch-size must be positive and --workers 0 or more")
    cli.check_threshold(args.thr)
    cli.require_model_path(args)
    if args.demo and 'model_path' not in explicit:  # what train.py --demo wrote
        args.model_path = os.path.join('outputs', 'demo', 'best.pth')
    paths, is_folder = images_to_label(args)
    device = distributed.resolve_device(args.device)
    model, class_names, dtype, channels_last = load_model(args, explicit, device)
    if args.zsl:
        raise UserError(f"{args.model_path} is a zero-shot model: it scores word vectors, so use validate.py --zsl 1 "
                        f"on a NUS-WIDE-layout folder")
    model = maybe_compile(model, args)
    outputs = save_paths(paths, is_folder, args.save_path)

    from src_files.helper_functions.augmentations import val_transform
    names = np.array(class_names, dtype=object)
    written, skipped = [], 0
    for batch in image_batches(paths, val_transform(args.image_size), outputs, args.batch_size, args.workers):
        readable = []
        for i, tensor, image, problem in batch:
            if problem is None:
                readable.append((i, tensor, image))
            elif is_folder:
                print(f"skipped: {problem}", flush=True)  # one bad file does not stop a folder
                skipped += 1
            else:
                raise UserError(problem)
        if not readable:
            continue
        inputs = torch.stack([tensor for _, tensor, _ in readable]).to(device=device, dtype=dtype)
        if channels_last:
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            probs = torch.sigmoid(model(inputs).float()).cpu().numpy()
        check_finite(probs, dtype)
        for (i, _, image), prob in zip(readable, probs):
            order = np.argsort(-prob, kind='stable')[:args.top_k]
            keep = order[prob[order] > args.thr]
            labels = [(str(names[k]), float(prob[k])) for k in keep]
            text = ', '.join(f"{n} ({s:.2f})" for n, s in labels) or f"no class above {args.thr}"
            print(f"{paths[i]}: {text}", flush=True)
            if outputs[i]:
                written.append(draw_labels(image, labels, outputs[i]))
    if skipped:
        print(f"{skipped} of {len(paths)} images could not be read and were skipped", flush=True)
        if skipped == len(paths):
            raise UserError(f"no image in {args.pic_path} could be read")
    if written:
        print(f"labelled image(s) written to {written[0] if len(written) == 1 else args.save_path}")
    return 0


if __name__ == '__main__':
    cli.run_main(main)
