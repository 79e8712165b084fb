"""The ML-Decoder head.

ml_decoder  the head itself: self-contained, imports only torch (copy it into your own code)
attention   where the head's queries look: cross-attention maps, and drawing them
"""
from .ml_decoder import MLDecoder, TransformerDecoderLayerOptimal, add_ml_decoder_head, set_head_impl, update_wordvecs
