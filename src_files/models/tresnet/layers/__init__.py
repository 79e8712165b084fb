from .abn_inplace import inplace_abn
from .anti_aliasing import AntiAliasDownsample
from .gated_conv import gated_conv2d
from .relu_handoff import mask_grad_by_sign, relu_passing_grad
from .norm_act import NormAct2d, abn_scale
from .space_to_depth import SpaceToDepth
from .squeeze_excite import SEModule
