"""TResNet's layers, one per file.

norm_act        NormAct2d: batch norm + leaky ReLU, as InPlaceABN computes it
abn_inplace     the memory-saving norm-activation that keeps only its output
anti_aliasing   AntiAliasDownsample: fixed blur, then stride 2
space_to_depth  SpaceToDepth: the stem folds 4x4 pixel blocks into channels
squeeze_excite  SEModule
gated_conv      conv(x * gate) keeping x and the gate, not their product
relu_handoff    ReLUs whose backward mask is applied by the next block
"""
from .abn_inplace import inplace_abn
from .anti_aliasing import AntiAliasDownsample
from .gated_conv import gated_conv2d
from .relu_handoff import mask_grad_by_sign, relu_passing_grad
from .norm_act import NormAct2d, abn_scale
from .space_to_depth import SpaceToDepth
from .squeeze_excite import SEModule
