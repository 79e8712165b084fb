from .tresnet import TResNet, BasicBlock, Bottleneck, set_memory_efficient, tresnet_m, tresnet_l, tresnet_xl
