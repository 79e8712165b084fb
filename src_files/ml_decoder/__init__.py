from .ml_decoder import MLDecoder, TransformerDecoderLayerOptimal, add_ml_decoder_head, set_head_impl, update_wordvecs
