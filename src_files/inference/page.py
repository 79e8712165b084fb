"""What app.py's page does, callable from Python without a browser: `Labeller` loads a checkpoint once and labels
images as infer.py does (the same reading, transform, precision and scoring: labelling.score_batch), draws the
head's attention map of each label, rescores a zero-shot head's classes given as names, and describes the model.

    labeller = Labeller(settings, thr=0.75)               # settings: resolve.inference_settings of app.py's flags
    result = labeller.label('photo.jpg')                  # {'labels': [(name, p), ...] best first, 'scores': {...}}
    maps = labeller.attention('photo.jpg')                # [(PIL image with the map over it, 'name 0.93'), ...]
    labeller.set_classes(['red car', 'fire truck'])       # zero-shot checkpoints: any names, through the encoder
"""
import threading

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

from src_files.data.files import load_rgb
from src_files.errors import UserError
from src_files.export.zsl_inputs import set_vocabulary
from src_files.helper_functions.augmentations import uint8_batches, val_transform
from src_files.inference.labelling import LabelJob, score_batch
from src_files.inference.load import is_exported, load_model
from src_files.inference.predictions import pick_labels, read_thresholds
from src_files.ml_decoder.attention import class_queries, find_head
from src_files.settings import SINGLE

MAP_SIDE = 320  # attention overlays: the longer side, in pixels


class Labeller:
    """A checkpoint loaded once; thread-safe (one image at a time)."""

    def __init__(self, settings, device, thr=0.75, thresholds_file=None, top_k=20, text=None):
        self.settings, self.device, self.thr, self.top_k, self.text = settings, device, thr, top_k, text
        self.loaded = load_model(settings, device)
        self.lock = threading.Lock()
        self.class_names = set_vocabulary(self.loaded, settings.model_path)
        self.single = self.loaded.task == SINGLE
        self.thresholds_file = thresholds_file
        self.tuned = self._tuned()
        self.transform = val_transform(self.loaded.config.image_size, uint8_batches(settings.uint8_batches, device))
        self.head = None if is_exported(settings.model_path) or not self.loaded.config.use_ml_decoder \
            else find_head(self.loaded.model)

    def _tuned(self):
        """The --thresholds file's per-class thresholds (--thr for the classes it leaves out), None without one or
        when it names classes this model does not score (zero-shot classes changed on the page)."""
        if not self.thresholds_file:
            return None
        try:
            return read_thresholds(self.thresholds_file, self.class_names, self.thr)[0]
        except UserError:
            if self.zero_shot:
                return None
            raise

    @property
    def zero_shot(self):
        return bool(self.loaded.config.zsl)

    def set_classes(self, names):
        """Zero-shot checkpoints: score `names` from now on (through the checkpoint's text encoder, or its word
        vectors' classes when `names` is empty) -> the names."""
        if not self.zero_shot:
            raise UserError("this checkpoint has a fixed classifier: its classes cannot be changed")
        with self.lock:
            self.class_names = set_vocabulary(self.loaded, self.settings.model_path, classes=names or None,
                                              text=self.text)
            self.tuned = self._tuned()
        return list(self.class_names)

    def _job(self, attention):
        n = len(self.class_names)
        return LabelJob(model=self.loaded.model, device=self.device, dtype=self.loaded.dtype,
                        channels_last=self.loaded.channels_last, paths=[None], class_names=self.class_names,
                        thresholds=np.zeros(n, dtype=np.float32), top_k=self.top_k, softmax=self.single,
                        nothing='', outputs=[None], maps_out=[None], head=self.head if attention else None)

    def _score(self, image, attention=False):
        """(RGB PIL image, probabilities [C], attention maps [Q, H', W'] or None) of an image file or PIL image."""
        picture = load_rgb(image, upright=True) if not isinstance(image, Image.Image) else image.convert('RGB')
        tensor = self.transform(picture)
        with self.lock:
            probs, maps = score_batch(self._job(attention), [(0, tensor, picture)])
        return picture, probs[0], None if maps is None else maps[0]

    def thresholds(self, thr=None, tuned=False):
        """Each class's threshold: the tuned ones (--thresholds) if asked and given, else `thr` (default --thr)."""
        if tuned and self.tuned is not None:
            return self.tuned
        return np.full(len(self.class_names), self.thr if thr is None else thr, dtype=np.float32)

    def label(self, image, thr=None, tuned=False, maps=False):
        """{'labels': [(name, probability)] above the thresholds, best first (at most top_k), 'scores': {name:
        probability} of every class}, with maps=True also 'maps': attention(...)'s list, from the same forward.
        `image`: a file path or a PIL image."""
        if maps and self.head is None:
            raise UserError("attention maps need the PyTorch checkpoint of an ML-Decoder model (not an exported "
                            "file, nor a model without the head)")
        picture, prob, weights = self._score(image, attention=maps)
        keep = pick_labels(prob, self.thresholds(thr, tuned), self.top_k)
        result = {'labels': [(self.class_names[k], float(prob[k])) for k in keep],
                  'scores': {name: float(p) for name, p in zip(self.class_names, prob)}}
        if maps:
            result['maps'] = [(overlay(picture, weights[q]), f"{self.class_names[k]} {prob[k]:.2f}")
                              for k, q in zip(keep, class_queries(self.head, keep))]
        return result

    def attention(self, image, thr=None, tuned=False):
        """[(the image with a label's attention map over it, 'name probability')] for each label (the head's own
        cross-attention, as infer.py --save-attention draws it)."""
        return self.label(image, thr, tuned, maps=True)['maps']

    def card(self):
        """The model's card: what the checkpoint records, as (field, value) rows."""
        config, meta = self.loaded.config, self.loaded.meta
        names = self.class_names
        rows = [('checkpoint', self.settings.model_path), ('model', config.model_name),
                ('image size', f"{config.image_size} px"),
                ('classes', f"{len(names)}: " + ', '.join(names[:12]) + (' ...' if len(names) > 12 else '')),
                ('task', 'zero-shot (classes given as names)' if self.zero_shot else self.loaded.task),
                ('precision', f"{str(self.loaded.dtype).replace('torch.', '')} on {self.device}")]
        trained = [f"{k} {meta[k]}" for k in ('data_format', 'epoch', 'mAP', 'top1') if k in meta]
        if trained:
            rows.append(('trained', ', '.join(trained)))
        if self.loaded.text_record:
            rows.append(('text encoder', f"{self.loaded.text_record['kind']} {self.loaded.text_record['file']}"))
        if self.tuned is not None:
            rows.append(('tuned thresholds', self.thresholds_file))
        return rows


def overlay(picture, weights, side=MAP_SIDE):
    """`picture` (PIL) shrunk to `side` with the attention map `weights` [H', W'] over it in a jet colour map."""
    from matplotlib import colormaps
    shown = picture.copy()
    shown.thumbnail((side, side))
    heat = F.interpolate(torch.as_tensor(weights).float()[None, None], size=(shown.height, shown.width),
                         mode='bilinear', align_corners=False)[0, 0].numpy()
    heat = (heat - heat.min()) / max(float(heat.max() - heat.min()), 1e-12)
    colour = (colormaps['jet'](heat)[..., :3] * 255).astype(np.uint8)
    return Image.blend(shown, Image.fromarray(colour), 0.5)
