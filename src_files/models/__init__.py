from .factory import TimmWithMLDecoder, create_model, load_checkpoint, load_model_weights
from .fold import fold_norm_layers
