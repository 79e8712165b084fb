"""Models: backbones by name with the ML-Decoder head, and what is done to them.

config        ModelConfig, the settings that define a model
factory       create_model, checkpoint loading (model-zoo files, state dicts, timm weights)
timm_weights  timm's TResNet checkpoints in this repository's key layout
fold          folding norm layers into the convolutions for inference
compile       torch.compile of the whole model or block by block
zoo           what a checkpoint says about its model: its recorded settings, else the zoo's image sizes
text_encoder  class names -> zero-shot query vectors (word-vector files, matrices, open_clip text towers)
tresnet/      TResNet-M/L/XL, its layers, and its memory-saving variants
"""
from .factory import TimmWithMLDecoder, create_model, load_checkpoint, load_model_weights
from .fold import fold_norm_layers
