"""ModelConfig: the settings that define a model, in one place.

The factory builds a model from them, best.pth records them, --resume refuses to change them, and
validate.py / infer.py read them back from a checkpoint, so that a checkpoint needs no other flag.
"""
import re
from dataclasses import asdict, dataclass, fields
from typing import Optional

TRESNET_NAMES = ('tresnet_m', 'tresnet_l', 'tresnet_xl')


class ConfigError(ValueError):
    """Settings that no model can be built from. The message names ModelConfig fields (num_classes, ...);
    `as_flags()` gives it with the scripts' flags instead (--num-classes, ...), which is what they print."""

    def as_flags(self):
        names = '|'.join(f.name for f in fields(ModelConfig))
        return re.sub(rf'\b({names})\b', lambda m: '--' + m.group(1).replace('_', '-'), str(self))


@dataclass(frozen=True)
class ModelConfig:
    model_name: str = 'tresnet_l'
    num_classes: int = 80
    use_ml_decoder: int = 1  # 1: ML-Decoder head; 0: global average pooling + fully-connected layer
    num_of_groups: int = -1  # ML-Decoder query groups (-1: min(100, num_classes))
    decoder_embedding: int = 768
    zsl: int = 0  # 1: zero-shot head, whose queries are the classes' word vectors
    query_dim: int = 300  # zero-shot: the width of those vectors (300 as published; a text encoder's width)
    image_size: Optional[int] = None  # input size (TResNet: a multiple of 4, at least 20; ViTs: their img_size)

    @classmethod
    def field_names(cls):
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_dict(cls, values):
        """From a mapping that may hold other keys too (a checkpoint's recorded settings, a flags dict); missing
        fields keep their default."""
        return cls(**{k: values[k] for k in cls.field_names() if k in values})

    def to_dict(self):
        return asdict(self)

    def check(self):
        """Raise ConfigError for settings that no model can be built from."""
        if int(self.num_classes) < 1:
            raise ConfigError(f'num_classes must be 1 or more, got {self.num_classes}')
        size = self.image_size
        if size is not None and size < 1:
            raise ConfigError(f'image_size must be positive, got {size}')
        if self.use_ml_decoder and (self.num_of_groups == 0 or max(self.decoder_embedding, 0) % 8):
            raise ConfigError(f'num_of_groups must be positive or -1 (100 groups), and decoder_embedding a multiple '
                              f'of the 8 attention heads; got {self.num_of_groups} and {self.decoder_embedding}')
        if self.model_name.lower() in TRESNET_NAMES and size is not None:
            if size % 4:
                raise ConfigError(f'image_size must be a multiple of 4 for TResNet (its stem folds 4x4 pixel blocks '
                                  f'into channels), got {size}')
            if size < 20:  # (smaller maps break the anti-aliasing padding)
                raise ConfigError(f'image_size must be at least 20 for TResNet, got {size}')
        return self


MODEL_FIELDS = ModelConfig.field_names()
