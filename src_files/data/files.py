"""File checks and image loading shared by the datasets: every failure becomes a one-line UserError."""
import os
import warnings

import numpy as np

from PIL import Image, ImageOps

from src_files.errors import UserError


def require_dir(path, what, hint):
    """Raise UserError unless `path` is a folder; `what` names it, `hint` says what to do."""
    if not os.path.isdir(path):
        raise UserError(f"{what} not found: {path} ({hint})")


def require_file(path, what, hint):
    """Raise UserError unless `path` is a file; `what` names it, `hint` says what to do."""
    if not os.path.isfile(path):
        raise UserError(f"{what} not found: {path} ({hint})")


def check_images_exist(paths, hint):
    """Raise UserError naming the first missing image and how many are missing.

    One directory listing per folder instead of a stat per file: COCO and NUS-WIDE list 10^5 images.
    """
    listings = {}
    missing = []
    for path in paths:
        folder, name = os.path.split(path)
        if folder not in listings:
            listings[folder] = set(os.listdir(folder)) if os.path.isdir(folder) else set()
        if name not in listings[folder]:
            missing.append(path)
    if missing:
        raise UserError(f"image file not found: {missing[0]} ({len(missing)} of {len(paths)} images missing; {hint})")


def _to_8bit(image):
    """A 16-bit or float grayscale image scaled to 8 bits: PIL's convert('RGB') would clip it to white."""
    values = np.asarray(image, dtype=np.float64)
    if image.mode.startswith('I;16') or (image.mode == 'I' and values.max(initial=0) > 255):
        values = values / 257  # 0..65535 to 0..255
    elif image.mode == 'F' and values.max(initial=0) <= 1:
        values = values * 255  # a [0, 1] float image
    return Image.fromarray(np.clip(np.rint(values), 0, 255).astype(np.uint8))  # mode L


def load_rgb(path, upright=False):
    """Open an image as RGB, turning any decoding failure into a UserError naming the file. `upright`: turn it as
    its EXIF orientation tag says (a phone photo taken sideways), as the user's own data layouts and infer.py do;
    COCO, NUS-WIDE and OpenImages keep the published reading, which ignores the tag."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter('ignore', Image.DecompressionBombWarning)  # large, but under the limit: fine
            with Image.open(path) as image:
                if upright:
                    image = ImageOps.exif_transpose(image)  # (decodes it; a copy without the tag)
                if image.mode.startswith('I') or image.mode == 'F':
                    image.load()
                    return _to_8bit(image).convert('RGB')
                return image.convert('RGB')  # convert() forces the full decode, so truncated files fail here
    except Image.DecompressionBombError:
        raise UserError(f"cannot read image {path}: it has more than PIL's limit of {Image.MAX_IMAGE_PIXELS} pixels "
                        f"(a guard against decompression bombs); downscale it first") from None
    except (OSError, ValueError, SyntaxError) as error:
        raise UserError(f"cannot read image {path}: {error} (replace or remove the corrupt file)") from None
