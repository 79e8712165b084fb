from .tresnet import (TRESNET_LAYERS, TResNet, BasicBlock, Bottleneck, set_memory_efficient, tresnet_m, tresnet_l,
                      tresnet_xl)
