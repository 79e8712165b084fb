from .anti_aliasing import AntiAliasDownsample
from .norm_act import NormAct2d, abn_scale, set_memory_efficient_norms
from .space_to_depth import SpaceToDepth
from .squeeze_excite import SEModule
