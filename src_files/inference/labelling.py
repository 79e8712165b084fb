"""infer.py's labelling: read the images (in loader processes; a bad file does not stop the others), score them
in batches, pick each image's labels (the best classes above their thresholds), and print them, write them
(--output, through inference/predictions.py's PredictionWriter), draw them on a copy of the image (--save-path)
or beside the head's attention maps (--save-attention).
"""
import os
from dataclasses import dataclass, field

import numpy as np
import torch
from PIL import ImageDraw, ImageFont
from torch.utils.data import DataLoader, Dataset
from tqdm import tqdm

from src_files import data as datasets
from src_files.data.files import load_rgb
from src_files.errors import UserError
from src_files.helper_functions.augmentations import to_float
from src_files.inference.load import check_finite
from src_files.inference.predictions import IMAGE_EXTENSIONS, class_thresholds, list_images, pick_labels, relative_names
from src_files.ml_decoder.attention import attention_maps, class_queries, save_attention_png


@dataclass(frozen=True)
class LabelJob:
    """What label_all needs: the model and how to feed it, the images, and how their labels are picked and
    where they go."""
    model: object  # a PyTorch model in eval mode, or an OnnxModel
    device: torch.device
    dtype: torch.dtype  # of the model's inputs
    channels_last: bool
    paths: list  # the images, in order
    class_names: list
    thresholds: np.ndarray  # [C]: a class is a label where its probability exceeds its threshold
    top_k: int  # at most this many labels per image
    softmax: bool  # single-label model: a softmax over the classes; else a sigmoid per class
    nothing: str  # what is printed for an image without a label
    outputs: list  # per image: the --save-path copy to draw its labels on, or None
    maps_out: list  # per image: the --save-attention PNG, or None
    head: object = None  # the ML-Decoder head whose attention maps are drawn (None: no maps)

    @property
    def attention(self):
        return self.head is not None


@dataclass
class LabelResult:
    """What label_all did: images skipped (unreadable), labelled copies written, attention PNGs written."""
    skipped: int = 0
    written: list = field(default_factory=list)
    maps_written: int = 0


def images_to_label(pic_path, demo, demo_images):
    """(image paths, the folder they are named relative to in outputs, or None) of --pic-path, else with --demo
    the first `demo_images` images of the demo dataset's val2014 folder."""
    if pic_path:
        return list_images(pic_path)
    if not demo:
        raise UserError("no image given: pass --pic-path (an image or a folder of images), or --demo to label "
                        "images of the demo dataset")
    paths, root = list_images(os.path.join(datasets.demo_coco_root(), 'val2014'))
    return paths[:demo_images], root


def save_paths(paths, root, save_path):
    """The labelled copy of each image for --save-path (a file for one image, else a folder), or None each."""
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
    """Save a copy of `image` with one line per (name, score) of `labels` in the top-left corner; -> the path
    written."""
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
            image = load_rgb(self.paths[i], upright=True)
        except UserError as error:
            return i, None, None, str(error)
        return i, self.transform(image), image if self.keep_original else None, None


def image_batches(paths, transform, keep_original, batch_size, workers):
    """Batches (lists of LabelledImages items) in the order of `paths`, read by up to `workers` processes."""
    dataset = LabelledImages(paths, transform, keep_original)
    batches = -(-len(paths) // batch_size)
    workers = min(workers, batches) if batches > 1 else 0  # one batch: starting processes only costs time
    return DataLoader(dataset, batch_size=batch_size, shuffle=False, num_workers=workers, collate_fn=list)


def thresholds_per_class(class_names, thr, thresholds_path=None, table=None, any_score=False):
    """Each class's threshold: `thr` (--thr), or for the classes it names the value of `table`, the
    {class name: threshold} of the --thresholds file `thresholds_path`; -1 for all with `any_score`
    (single-label models without --thr / --thresholds: the top-k whatever their probability)."""
    if any_score:
        return np.full(len(class_names), -1.0, dtype=np.float32)
    if not thresholds_path:
        return np.full(len(class_names), thr, dtype=np.float32)
    thresholds, missing = class_thresholds(thresholds_path, table, class_names, thr)
    print(f"thresholds from {thresholds_path} for {len(class_names) - missing} of {len(class_names)} classes; "
          f"{missing} use --thr {thr}", flush=True)
    return thresholds


def score_batch(job, readable):
    """(probabilities [B, C] as numpy, attention maps [B, Q, H', W'] or None) of the readable images of a batch."""
    inputs = to_float(torch.stack([tensor for _, tensor, _ in readable]).to(job.device)).to(job.dtype)
    if job.channels_last:
        inputs = inputs.contiguous(memory_format=torch.channels_last)
    maps = None
    with torch.no_grad():
        if job.attention:
            logits, maps = attention_maps(job.model, inputs)
        else:
            logits = job.model(inputs)
        logits = logits.float()
        probs = (torch.softmax(logits, dim=1) if job.softmax else torch.sigmoid(logits)).cpu().numpy()
    check_finite(probs, job.dtype)
    return probs, maps


def report_image(job, i, image, prob, maps, writer, result):
    """Print or write (`writer`) one image's labels; draw them and its attention maps where asked (counted in
    `result`)."""
    keep = pick_labels(prob, job.thresholds, job.top_k)
    names = [job.class_names[k] for k in keep]
    if writer is not None:
        writer.write(job.paths[i], names, prob[keep])
    else:
        text = ', '.join(f"{n} ({prob[k]:.2f})" for n, k in zip(names, keep)) or job.nothing
        print(f"{job.paths[i]}: {text}", flush=True)
    if job.outputs[i]:
        result.written.append(draw_labels(image, list(zip(names, prob[keep].tolist())), job.outputs[i]))
    if job.maps_out[i]:
        queries = class_queries(job.head, keep)
        os.makedirs(os.path.dirname(os.path.abspath(job.maps_out[i])), exist_ok=True)
        save_attention_png(job.maps_out[i], image, maps[queries], names)
        result.maps_written += 1


def _say(writer, bar, text):
    if writer is not None:
        bar.write(text)  # above the progress bar
    else:
        print(text, flush=True)


def label_all(job, batches, writer=None):
    """Label every batch of image_batches, each image's labels printed, or written to `writer` (a
    PredictionWriter, with a progress bar); -> LabelResult. An unreadable image is skipped with a line (unless it
    is the only one: a UserError)."""
    result = LabelResult()
    bar = tqdm(total=len(job.paths), unit='img', desc='labelling', disable=writer is None, leave=False,
               dynamic_ncols=True, mininterval=1.0)
    with bar:
        for batch in batches:
            readable = []
            for i, tensor, image, problem in batch:
                if problem is None:
                    readable.append((i, tensor, image))
                elif len(job.paths) > 1:
                    _say(writer, bar, f"skipped: {problem}")  # one bad file does not stop the others
                    result.skipped += 1
                else:
                    raise UserError(problem)
            if readable:
                probs, maps = score_batch(job, readable)
                for row, (i, _, image) in enumerate(readable):
                    report_image(job, i, image, probs[row], None if maps is None else maps[row], writer, result)
            bar.update(len(batch))
    return result
