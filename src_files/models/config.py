"""ModelConfig: the settings that define a model, in one place.

The factory builds a model from them, best.pth records them, --resume refuses to change them, and
validate.py / infer.py read them back from a checkpoint, so that a checkpoint needs no other flag.
"""
from dataclasses import asdict, dataclass, fields
from typing import Optional


@dataclass
class ModelConfig:
    model_name: str = 'tresnet_l'
    num_classes: int = 80
    use_ml_decoder: int = 1  # 1: ML-Decoder head; 0: global average pooling + fully-connected layer
    num_of_groups: int = -1  # ML-Decoder query groups (-1: min(100, num_classes))
    decoder_embedding: int = 768
    zsl: int = 0  # 1: zero-shot head, whose queries are the classes' word vectors
    image_size: Optional[int] = None  # input size (TResNet: a multiple of 4, at least 20; ViTs: their img_size)

    @classmethod
    def field_names(cls):
        return tuple(f.name for f in fields(cls))

    @classmethod
    def from_args(cls, args=None, **overrides):
        """From an argparse namespace (or any object with these attributes; missing ones keep their default),
        then `overrides`."""
        values = {k: getattr(args, k) for k in cls.field_names() if args is not None and hasattr(args, k)}
        values.update({k: v for k, v in overrides.items() if k in cls.field_names()})
        return cls(**values)

    def to_dict(self):
        return asdict(self)


MODEL_FIELDS = ModelConfig.field_names()
