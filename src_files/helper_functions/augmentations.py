"""Train/val image transforms of the published recipes (docs/PUBLISHED_MATH.md, "Image transforms").

All randomness comes from python's ``random`` module, which the trainer seeds per image from (seed, epoch,
index) (SeededSamples in src_files/training/data.py), so a resumed run augments as the uninterrupted one. Images are
processed as RGB:
other modes are converted first, as the published loaders did with ``.convert('RGB')``.
"""
import random

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageEnhance, ImageOps
from torchvision import transforms

_AFFINE_FILL = (128, 128, 128)
_CUTOUT_FILL = (125, 122, 113)


def _rgb(img):
    return img if img.mode == 'RGB' else img.convert('RGB')


class CutoutPIL:
    """Paints a rectangle of ``cutout_factor`` x the image size, centred at a random pixel and clipped to the
    image, with a random RGB colour."""

    def __init__(self, cutout_factor=0.5):
        self.cutout_factor = cutout_factor

    def __call__(self, img):
        img = _rgb(img).copy()
        w, h = img.size
        half_w = int(self.cutout_factor * w + 0.5) // 2
        half_h = int(self.cutout_factor * h + 0.5) // 2
        x_c, y_c = random.randrange(w), random.randrange(h)
        box = [max(x_c - half_w, 0), max(y_c - half_h, 0), min(x_c + half_w, w), min(y_c + half_h, h)]
        colour = tuple(random.randint(0, 255) for _ in range(3))
        ImageDraw.Draw(img).rectangle(box, fill=colour)
        return img


def _sign():
    return random.choice((-1, 1))


def _shear_x(img, m):
    return img.transform(img.size, Image.Transform.AFFINE, (1, m * _sign(), 0, 0, 1, 0),
                         Image.Resampling.BICUBIC, fillcolor=_AFFINE_FILL)


def _shear_y(img, m):
    return img.transform(img.size, Image.Transform.AFFINE, (1, 0, 0, m * _sign(), 1, 0),
                         Image.Resampling.BICUBIC, fillcolor=_AFFINE_FILL)


def _translate_x(img, m):
    return img.transform(img.size, Image.Transform.AFFINE, (1, 0, m * img.size[0] * _sign(), 0, 1, 0),
                         fillcolor=_AFFINE_FILL)


def _translate_y(img, m):
    return img.transform(img.size, Image.Transform.AFFINE, (1, 0, 0, 0, 1, m * img.size[1] * _sign()),
                         fillcolor=_AFFINE_FILL)


def _rotate(img, m):
    return img.rotate(m, fillcolor=_AFFINE_FILL)  # positive angle = counter-clockwise


def _enhancer(cls):
    return lambda img, m: cls(img).enhance(1 + m * _sign())


def _cutout(img, side):
    """A side x side square (clipped to the image) at a uniformly random centre."""
    if side <= 0:
        return img
    w, h = img.size
    x0 = int(max(0.0, random.uniform(0, w) - side / 2))
    y0 = int(max(0.0, random.uniform(0, h) - side / 2))
    img = img.copy()
    ImageDraw.Draw(img).rectangle([x0, y0, min(w, x0 + side) - 1, min(h, y0 + side) - 1], fill=_CUTOUT_FILL)
    return img


# name -> (operation(img, magnitude), magnitudes for indices 0..9), in the published order.
_OPS = {
    'invert': (lambda img, m: ImageOps.invert(img), [0] * 10),
    'cutout': (_cutout, np.round(np.linspace(0, 20, 10)).astype(int).tolist()),
    'sharpness': (_enhancer(ImageEnhance.Sharpness), np.linspace(0.0, 0.9, 10).tolist()),
    'autocontrast': (lambda img, m: ImageOps.autocontrast(img), [0] * 10),
    'posterize': (lambda img, m: ImageOps.posterize(img, m), np.round(np.linspace(8, 4, 10)).astype(int).tolist()),
    'shearX': (_shear_x, np.linspace(0, 0.3, 10).tolist()),
    'translateX': (_translate_x, np.linspace(0, 150 / 331, 10).tolist()),
    'translateY': (_translate_y, np.linspace(0, 150 / 331, 10).tolist()),
    'shearY': (_shear_y, np.linspace(0, 0.3, 10).tolist()),
    'rotate': (_rotate, np.linspace(0, 30, 10).tolist()),
    'equalize': (lambda img, m: ImageOps.equalize(img), [0] * 10),
    'contrast': (_enhancer(ImageEnhance.Contrast), np.linspace(0.0, 0.9, 10).tolist()),
    'color': (_enhancer(ImageEnhance.Color), np.linspace(0.0, 0.9, 10).tolist()),
    'solarize': (lambda img, m: ImageOps.solarize(img, m), np.linspace(256, 0, 10).tolist()),
    'brightness': (_enhancer(ImageEnhance.Brightness), np.linspace(0.0, 0.9, 10).tolist()),
}


class RandAugment:
    """The published RandAugment policy: two operations drawn uniformly (independently) from the 15 above,
    each with a magnitude index uniform in 1..9 and applied with probability 0.5."""

    num_ops = 2
    prob = 0.5

    def __call__(self, img):
        img = _rgb(img)
        names = list(_OPS)
        for _ in range(self.num_ops):
            op, magnitudes = _OPS[random.choice(names)]
            magnitude = magnitudes[random.randint(1, 9)]
            if random.random() < self.prob:
                img = op(img, magnitude)
        return img


def _to_tensor(uint8):
    """The last step: ToTensor's float [0, 1] tensor, or with `uint8` the bytes as they are (to_float scales them
    later, on the training device, to the same values)."""
    return transforms.PILToTensor() if uint8 else transforms.ToTensor()


def train_transform(image_size, augment=True, uint8=False):
    """Resize to (size, size), then Cutout + RandAugment when ``augment``, then a [3, s, s] tensor in [0, 1] (or
    its uint8 values, for to_float)."""
    steps = [transforms.Resize((image_size, image_size))]
    if augment:
        steps += [CutoutPIL(cutout_factor=0.5), RandAugment()]
    steps.append(_to_tensor(uint8))
    return transforms.Compose(steps)


def val_transform(image_size, uint8=False):
    """Resize to (size, size) and convert to a [3, s, s] tensor in [0, 1] (no mean/std normalisation; or its
    uint8 values, for to_float)."""
    return transforms.Compose([transforms.Resize((image_size, image_size)), _to_tensor(uint8)])


def uint8_batches(enabled, device):
    """Whether the transforms should end in uint8 tensors: --uint8-batches acts on CUDA only (on a CPU the
    division costs the same wherever it runs)."""
    return bool(enabled) and device.type == 'cuda'


_LEVELS = {}  # (device, float dtype) -> the 256 floats ToTensor makes of the uint8 levels


def to_float(images):
    """A batch of a uint8 transform as ToTensor would have given it: float [0, 1], bit for bit, on the batch's
    device. Each level is looked up among the 256 values ToTensor's division gives on the CPU (the GPU divides
    by multiplying with 1/255, which rounds 126 of them differently). Float batches are returned as they are."""
    if images.dtype != torch.uint8:
        return images
    key = (images.device, torch.get_default_dtype())  # (ToTensor gives the default dtype)
    if key not in _LEVELS:
        _LEVELS[key] = torch.arange(256, dtype=torch.uint8).to(key[1]).div(255).to(images.device)
    return _LEVELS[key].index_select(0, images.reshape(-1).int()).view(images.shape)
