"""TResNet-M/L/XL (Ridnik et al., 2020) with the module tree of the published checkpoints.

The module tree fixes the state-dict keys: `body` = [SpaceToDepth, conv1, layer1..layer4], every conv followed
by an InPlaceABN-compatible norm-activation (`conv.0` / `conv.1`), anti-aliased stride-2 downsampling and
squeeze-excite in stages 1-3. Pure PyTorch: no compiled `inplace_abn` needed.
"""
from collections import OrderedDict

import torch
from torch import nn
import torch.nn.functional as F

from .layers import (AntiAliasDownsample, NormAct2d, SEModule, SpaceToDepth, gated_conv2d, mask_grad_by_sign,
                     relu_passing_grad, set_memory_efficient_norms)


def conv_abn(in_ch, out_ch, kernel_size=3, stride=1, activation='leaky_relu', activation_param=1e-2):
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
        NormAct2d(out_ch, activation=activation, activation_param=activation_param))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, use_se=True):
        super().__init__()
        self.conv1 = conv_abn(inplanes, planes, 3, 1, activation_param=1e-3)
        if stride == 2:
            self.conv1 = nn.Sequential(self.conv1, AntiAliasDownsample(planes))
        self.conv2 = conv_abn(planes, planes, 3, 1, activation='identity')
        self.downsample = downsample
        self.se = SEModule(planes, max(planes * self.expansion // 4, 64)) if use_se else None
        self.relu_grad_to_next = False  # see chain_block_relus
        self.relu_grad_from_previous = False

    def last_norm(self):
        return self.conv2[1]

    def forward(self, x):
        if self.relu_grad_from_previous:
            x = mask_grad_by_sign(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        if self.se is not None:
            out = self.se(out)
        out = out + shortcut
        return relu_passing_grad(out) if self.relu_grad_to_next else F.relu(out, inplace=True)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, use_se=True):
        super().__init__()
        self.conv1 = conv_abn(inplanes, planes, 1, 1, activation_param=1e-3)
        self.conv2 = conv_abn(planes, planes, 3, 1, activation_param=1e-3)
        if stride == 2:
            self.conv2 = nn.Sequential(self.conv2, AntiAliasDownsample(planes))
        self.conv3 = conv_abn(planes, planes * self.expansion, 1, 1, activation='identity')
        self.downsample = downsample
        self.se = SEModule(planes, max(planes * self.expansion // 8, 64)) if use_se else None
        self.memory_efficient = False  # True: recompute the squeeze-excite product in backward (gated_conv.py)
        self.relu_grad_to_next = False  # see chain_block_relus
        self.relu_grad_from_previous = False

    def last_norm(self):
        return self.conv3[1]

    def forward(self, x):
        if self.relu_grad_from_previous:
            x = mask_grad_by_sign(x)
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        if self.se is not None and self.memory_efficient and torch.is_grad_enabled():
            out = self.conv3[1](gated_conv2d(out, self.se.gate(out), self.conv3[0]))  # = conv3(se(out))
        else:
            if self.se is not None:
                out = self.se(out)
            out = self.conv3(out)
        out = out + shortcut
        return relu_passing_grad(out) if self.relu_grad_to_next else F.relu(out, inplace=True)


def set_memory_efficient(model, enabled=True):
    """Memory-saving backward (`--lowmem`): InPlaceABN-style norms that keep only their output, and Bottleneck
    blocks that recompute the squeeze-excite product instead of keeping it. Same math; see BENCHMARKS.md."""
    set_memory_efficient_norms(model, enabled)
    for m in model.modules():
        if isinstance(m, Bottleneck):
            m.memory_efficient = enabled
    return model


def chain_block_relus(model, enabled=True):
    """Each residual block but the last leaves the backward mask of its final ReLU to the block after it, which
    takes it from the tensor it keeps anyway (layers/relu_handoff.py). Same outputs and gradients; for
    block-by-block compilation, where it saves 1.9 GiB of TResNet-L's 13.8 GiB peak at 448 px, batch 56."""
    blocks = [m for m in model.modules() if isinstance(m, (BasicBlock, Bottleneck))]
    for block, following in zip(blocks, blocks[1:]):
        block.relu_grad_to_next = following.relu_grad_from_previous = enabled
    return model


class TResNet(nn.Module):
    def __init__(self, layers, in_chans=3, num_classes=1000, width_factor=1.0, first_two_layers=BasicBlock):
        super().__init__()
        self.num_classes = num_classes
        self.inplanes = int(64 * width_factor)
        self.planes = int(64 * width_factor)
        conv1 = conv_abn(in_chans * 16, self.planes, 3, 1, activation_param=1e-2)
        layer1 = self._make_layer(first_two_layers, self.planes, layers[0], stride=1, use_se=True)
        layer2 = self._make_layer(first_two_layers, self.planes * 2, layers[1], stride=2, use_se=True)
        layer3 = self._make_layer(Bottleneck, self.planes * 4, layers[2], stride=2, use_se=True)
        layer4 = self._make_layer(Bottleneck, self.planes * 8, layers[3], stride=2, use_se=False)
        self.body = nn.Sequential(OrderedDict([
            ('SpaceToDepth', SpaceToDepth()), ('conv1', conv1),
            ('layer1', layer1), ('layer2', layer2), ('layer3', layer3), ('layer4', layer4)]))
        self.num_features = self.planes * 8 * Bottleneck.expansion
        self.global_pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(1))
        self.head = nn.Sequential(OrderedDict([('fc', nn.Linear(self.num_features, num_classes))]))
        self._init_weights()

    def _make_layer(self, block, planes, blocks, stride=1, use_se=True):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            shortcut = [conv_abn(self.inplanes, planes * block.expansion, 1, 1, activation='identity')]
            if stride == 2:  # average-pool before the 1x1 conv rather than striding it
                shortcut.insert(0, nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False))
            downsample = nn.Sequential(*shortcut)
        layers = [block(self.inplanes, planes, stride, downsample, use_se=use_se)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, use_se=use_se) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _init_weights(self):
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='leaky_relu')
            elif isinstance(m, NormAct2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)
        # Each residual branch starts at zero, so every block starts as its shortcut.
        for m in self.modules():
            if isinstance(m, (BasicBlock, Bottleneck)):
                nn.init.zeros_(m.last_norm().weight)

    def forward_features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.global_pool(self.body(x)))


# Blocks per stage: these counts also tell which variant a checkpoint holds (factory.guess_tresnet).
TRESNET_LAYERS = {'tresnet_m': (3, 4, 11, 3), 'tresnet_l': (3, 4, 23, 3), 'tresnet_xl': (3, 8, 34, 5)}


def tresnet_m(num_classes=1000, in_chans=3):
    return TResNet(TRESNET_LAYERS['tresnet_m'], in_chans=in_chans, num_classes=num_classes)


def tresnet_l(num_classes=1000, in_chans=3):
    return TResNet(TRESNET_LAYERS['tresnet_l'], in_chans=in_chans, num_classes=num_classes,
                   first_two_layers=Bottleneck)


def tresnet_xl(num_classes=1000, in_chans=3):
    return TResNet(TRESNET_LAYERS['tresnet_xl'], in_chans=in_chans, num_classes=num_classes,
                   first_two_layers=Bottleneck)
