"""TResNet (Ridnik et al.), as the published checkpoints lay it out.

tresnet  the reference model: stem, BasicBlock / Bottleneck, TResNet-M/L/XL
lowmem   opt-in memory-saving variants of its modules (same math), swapped in by module
layers/  one block per file: norm-activation, anti-aliasing, space-to-depth, squeeze-excite, ...
"""
from .tresnet import TRESNET_LAYERS, TResNet, BasicBlock, Bottleneck, tresnet_m, tresnet_l, tresnet_xl
from .lowmem import LowMemBottleneck, LowMemNormAct2d, chain_block_relus, set_memory_efficient, to_lowmem
