"""TResNet-M/L/XL (Ridnik et al., 2020) with the module tree of the published checkpoints.

The module tree fixes the state-dict keys: `body` = [SpaceToDepth, conv1, layer1..layer4], every conv followed
by an InPlaceABN-compatible norm-activation (`conv.0` / `conv.1`), anti-aliased stride-2 downsampling and
squeeze-excite in stages 1-3. Pure PyTorch: no compiled `inplace_abn` needed.

These are the reference modules. Memory-saving variants for training (same math, same state dict) are swapped in
by lowmem.py.
"""
from collections import OrderedDict

from torch import nn

from .layers import AntiAliasDownsample, NormAct2d, SEModule, SpaceToDepth


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
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.se = SEModule(planes, max(planes * self.expansion // 4, 64)) if use_se else None

    def last_norm(self):
        return self.conv2[1]

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        if self.se is not None:
            out = self.se(out)
        out = out + shortcut
        return self.relu(out)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, use_se=True):
        super().__init__()
        self.conv1 = conv_abn(inplanes, planes, 1, 1, activation_param=1e-3)
        self.conv2 = conv_abn(planes, planes, 3, 1, activation_param=1e-3)
        if stride == 2:
            self.conv2 = nn.Sequential(self.conv2, AntiAliasDownsample(planes))
        self.conv3 = conv_abn(planes, planes * self.expansion, 1, 1, activation='identity')
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.se = SEModule(planes, max(planes * self.expansion // 8, 64)) if use_se else None

    def last_norm(self):
        return self.conv3[1]

    def forward(self, x):
        shortcut = x if self.downsample is None else self.downsample(x)
        out = self.conv2(self.conv1(x))
        if self.se is not None:
            out = self.se(out)
        out = self.conv3(out)
        out = out + shortcut
        return self.relu(out)


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
