"""Label images with a trained model: prints the top-k classes whose probability exceeds --th.

    python infer.py --model-path tresnet_l_COCO__448_90_0.pth --pic-path pics/000000000885.jpg
    python infer.py --model-path outputs/demo/best.pth --pic-path some/folder --save-path labelled/

Class names come from the checkpoint's 'idx_to_class' (class numbers when it has none). --save-path writes a
copy of each image with its labels drawn on it (no window is opened).
"""
import os

import numpy as np
import torch

from src_files.engine import cli, distributed
from src_files.engine.inference import add_inference_speed_args, check_finite, load_model, maybe_compile
from src_files.errors import UserError

IMAGE_EXTENSIONS = ('.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp', '.ppm')


def build_parser():
    parser = cli.make_parser(__doc__.split('\n')[0])
    parser.add_argument('--model-path', default='models_local/tresnet_l_COCO__448_90_0.pth',
                        help="checkpoint (a local file; nothing is downloaded)")
    parser.add_argument('--pic-path', default='pics/000000000885.jpg', help="an image, or a folder of images")
    cli.add_model_args(parser, num_classes_help="number of classes (None = from the checkpoint)",
                       from_checkpoint=True)
    parser.add_argument('--th', type=float, default=0.75, help="report classes whose probability exceeds this")
    parser.add_argument('--top-k', type=int, default=20, help="report at most this many classes per image")
    parser.add_argument('--batch-size', type=int, default=32, help="images per forward pass (folders)")
    cli.add_device_arg(parser)
    parser.add_argument('--save-path', default='',
                        help="write the image(s) with their labels drawn here: a file for one image, a folder "
                             "for a folder ('' = do not save)")
    add_inference_speed_args(parser)
    return parser


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


def main(argv=None):
    args, explicit = cli.parse_args(build_parser(), argv)
    if args.top_k <= 0 or args.batch_size <= 0:
        raise UserError("--top-k and --batch-size must be positive")
    paths, is_folder = list_images(args.pic_path)
    device = distributed.resolve_device(args.device)
    model, class_names, dtype, channels_last = load_model(args, explicit, device)
    if args.zsl:
        raise UserError(f"{args.model_path} is a zero-shot model: it scores word vectors, so use validate.py --zsl 1 "
                        f"on a NUS-WIDE-layout folder")
    model = maybe_compile(model, args)
    outputs = save_paths(paths, is_folder, args.save_path)

    from src_files.data.files import load_rgb
    from src_files.helper_functions.augmentations import val_transform
    transform = val_transform(args.image_size)
    names = np.array(class_names, dtype=object)
    written, skipped = [], 0
    for start in range(0, len(paths), args.batch_size):
        chunk, inputs, originals, chunk_outputs = [], [], [], []
        for path, out in zip(paths[start:start + args.batch_size], outputs[start:start + args.batch_size]):
            try:
                image = load_rgb(path)
            except UserError as error:
                if not is_folder:
                    raise
                print(f"skipped: {error}", flush=True)  # one bad file does not stop a folder
                skipped += 1
                continue
            inputs.append(transform(image))
            originals.append(image if out else None)  # full-size images are kept only to draw on
            chunk.append(path)
            chunk_outputs.append(out)
        if not chunk:
            continue
        batch = torch.stack(inputs).to(device=device, dtype=dtype)
        if channels_last:
            batch = batch.contiguous(memory_format=torch.channels_last)
        with torch.no_grad():
            probs = torch.sigmoid(model(batch).float()).cpu().numpy()
        check_finite(probs, dtype)
        for path, image, prob, out in zip(chunk, originals, probs, chunk_outputs):
            order = np.argsort(-prob, kind='stable')[:args.top_k]
            keep = order[prob[order] > args.th]
            labels = [(str(names[i]), float(prob[i])) for i in keep]
            text = ', '.join(f"{n} ({s:.2f})" for n, s in labels) or f"no class above {args.th}"
            print(f"{path}: {text}", flush=True)
            if out:
                written.append(draw_labels(image, labels, out))
    if skipped:
        print(f"{skipped} of {len(paths)} images could not be read and were skipped", flush=True)
        if skipped == len(paths):
            raise UserError(f"no image in {args.pic_path} could be read")
    if written:
        print(f"labelled image(s) written to {written[0] if len(written) == 1 else args.save_path}")
    return 0


if __name__ == '__main__':
    cli.run_main(main)
