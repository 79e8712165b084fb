from .tresnet import TRESNET_LAYERS, TResNet, BasicBlock, Bottleneck, tresnet_m, tresnet_l, tresnet_xl
from .lowmem import LowMemBottleneck, LowMemNormAct2d, chain_block_relus, set_memory_efficient, to_lowmem
