from .tresnet import TResNet, BasicBlock, Bottleneck, tresnet_m, tresnet_l, tresnet_xl
