"""The published TResNet + ML-Decoder as the published code builds and trains it: a reference for tests and studies.

Not for use: src_files.models is the model to use. This file keeps the published construction as it was, so that
this project's model can be compared with it where the published code itself cannot run (it needs the compiled
`inplace_abn` package, and its decoder container no longer runs on today's torch.nn.TransformerDecoder):
- modules are created in the published order, so a seed draws the same initial weights;
- InPlaceABN is written out as the compiled package computes it: forward scale |w| + eps, running variance from the
  unbiased batch variance, and a hand-written backward that recovers its input from its output and negates the
  weight gradient only where w < 0 (not autograd through the forward);
- the head runs torch's MultiheadAttention on [G, N, D] queries and the group FC as the published per-group loop.
State-dict keys are the published ones (no `num_batches_tracked`: InPlaceABN has none).

    from published_model import published_tresnet
    model = published_tresnet('tresnet_m', num_classes=80)   # with the ML-Decoder head, as published training used
"""
import copy
from collections import OrderedDict

import torch
from torch import nn
import torch.nn.functional as F

LAYERS = {'tresnet_m': (3, 4, 11, 3)}


class _InPlaceABN(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, weight, bias, running_mean, running_var, training, momentum, eps, slope):
        if training:
            mean, var = x.mean((0, 2, 3)), x.var((0, 2, 3), unbiased=False)
            count = x.numel() // x.shape[1]
            running_mean.mul_(1 - momentum).add_(momentum * mean)
            running_var.mul_(1 - momentum).add_(momentum * var * count / (count - 1))
        else:
            mean, var = running_mean, running_var
        scale = weight.abs() + eps
        z = (x - mean[:, None, None]) * (scale * torch.rsqrt(var + eps))[:, None, None] + bias[:, None, None]
        y = z if slope is None else F.leaky_relu(z, slope)
        ctx.training, ctx.eps, ctx.slope = training, eps, slope
        ctx.save_for_backward(y, var, weight, bias)
        return y

    @staticmethod
    def backward(ctx, dy):
        y, var, weight, bias = ctx.saved_tensors
        scale = weight.abs() + ctx.eps
        if ctx.slope is None:
            z, dz = y, dy
        else:  # invert the activation from the output
            z, dz = torch.where(y >= 0, y, y / ctx.slope), torch.where(y >= 0, dy, dy * ctx.slope)
        xhat = (z - bias[:, None, None]) / scale[:, None, None]
        sum_dz, sum_xhat_dz = dz.sum((0, 2, 3)), (dz * xhat).sum((0, 2, 3))
        gain = (scale * torch.rsqrt(var + ctx.eps))[:, None, None]
        if ctx.training:
            count = dz.numel() // dz.shape[1]
            dx = (dz - (sum_dz / count)[:, None, None] - xhat * (sum_xhat_dz / count)[:, None, None]) * gain
        else:
            dx = dz * gain
        dweight = torch.where(weight < 0, -sum_xhat_dz, sum_xhat_dz)
        return dx, dweight, sum_dz, None, None, None, None, None, None


class InPlaceABN(nn.Module):
    def __init__(self, num_features, activation='leaky_relu', activation_param=0.01, eps=1e-5, momentum=0.1):
        super().__init__()
        self.slope = activation_param if activation == 'leaky_relu' else None
        self.eps, self.momentum = eps, momentum
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer('running_mean', torch.zeros(num_features))
        self.register_buffer('running_var', torch.ones(num_features))

    def forward(self, x):
        return _InPlaceABN.apply(x, self.weight, self.bias, self.running_mean, self.running_var, self.training,
                                 self.momentum, self.eps, self.slope)


def conv2d_ABN(ni, nf, stride=1, kernel_size=3, activation='leaky_relu', activation_param=1e-2):
    return nn.Sequential(nn.Conv2d(ni, nf, kernel_size, stride=stride, padding=kernel_size // 2, bias=False),
                         InPlaceABN(nf, activation=activation, activation_param=activation_param))


class AntiAliasDownsampleLayer(nn.Module):
    def __init__(self, channels, filt_size=3, stride=2):
        super().__init__()
        a = torch.tensor([1., 2., 1.])
        filt = a[:, None] * a[None, :]
        self.filt = (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1)  # not a buffer: no state-dict key

    def forward(self, x):
        return F.conv2d(F.pad(x, (1, 1, 1, 1), 'reflect'), self.filt.to(x), stride=2, groups=x.shape[1])


class SEModule(nn.Module):
    def __init__(self, channels, reduction_channels):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduction_channels, kernel_size=1, bias=True)
        self.relu = nn.ReLU(inplace=True)
        self.fc2 = nn.Conv2d(reduction_channels, channels, kernel_size=1, bias=True)

    def forward(self, x):
        return x * torch.sigmoid(self.fc2(self.relu(self.fc1(x.mean((2, 3), keepdim=True)))))


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None, use_se=True):
        super().__init__()
        if stride == 1:
            self.conv1 = conv2d_ABN(inplanes, planes, stride=1, activation_param=1e-3)
        else:
            self.conv1 = nn.Sequential(conv2d_ABN(inplanes, planes, stride=1, activation_param=1e-3),
                                       AntiAliasDownsampleLayer(planes))
        self.conv2 = conv2d_ABN(planes, planes, stride=1, activation='identity')
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.se = SEModule(planes, max(planes * self.expansion // 4, 64)) if use_se else None

    def forward(self, x):
        residual = self.downsample(x) if self.downsample is not None else x
        out = self.conv2(self.conv1(x))
        if self.se is not None:
            out = self.se(out)
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None, use_se=True):
        super().__init__()
        self.conv1 = conv2d_ABN(inplanes, planes, kernel_size=1, stride=1, activation_param=1e-3)
        if stride == 1:
            self.conv2 = conv2d_ABN(planes, planes, kernel_size=3, stride=1, activation_param=1e-3)
        else:
            self.conv2 = nn.Sequential(conv2d_ABN(planes, planes, kernel_size=3, stride=1, activation_param=1e-3),
                                       AntiAliasDownsampleLayer(planes))
        self.conv3 = conv2d_ABN(planes, planes * self.expansion, kernel_size=1, stride=1, activation='identity')
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample
        self.se = SEModule(planes, max(planes * self.expansion // 8, 64)) if use_se else None

    def forward(self, x):
        residual = self.downsample(x) if self.downsample is not None else x
        out = self.conv2(self.conv1(x))
        if self.se is not None:
            out = self.se(out)
        return self.relu(self.conv3(out) + residual)


class TResNet(nn.Module):
    def __init__(self, layers, in_chans=3, num_classes=1000):
        super().__init__()
        self.inplanes = self.planes = 64
        conv1 = conv2d_ABN(in_chans * 16, self.planes, stride=1, kernel_size=3)
        layer1 = self._make_layer(BasicBlock, self.planes, layers[0], stride=1, use_se=True)
        layer2 = self._make_layer(BasicBlock, self.planes * 2, layers[1], stride=2, use_se=True)
        layer3 = self._make_layer(Bottleneck, self.planes * 4, layers[2], stride=2, use_se=True)
        layer4 = self._make_layer(Bottleneck, self.planes * 8, layers[3], stride=2, use_se=False)
        self.body = nn.Sequential(OrderedDict([('SpaceToDepth', _SpaceToDepth()),
                                               ('conv1', conv1), ('layer1', layer1), ('layer2', layer2),
                                               ('layer3', layer3), ('layer4', layer4)]))
        self.num_classes = num_classes
        self.num_features = self.planes * 8 * Bottleneck.expansion
        self.global_pool = nn.Sequential(OrderedDict([('global_pool_layer', nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Flatten(1)))]))
        self.head = nn.Sequential(OrderedDict([('fc', nn.Linear(self.num_features, num_classes))]))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode='fan_out', nonlinearity='leaky_relu')
            elif isinstance(m, (nn.BatchNorm2d, InPlaceABN)):
                nn.init.constant_(m.weight, 1)
                nn.init.constant_(m.bias, 0)
        for m in self.modules():
            if isinstance(m, BasicBlock):
                m.conv2[1].weight = nn.Parameter(torch.zeros_like(m.conv2[1].weight))
            if isinstance(m, Bottleneck):
                m.conv3[1].weight = nn.Parameter(torch.zeros_like(m.conv3[1].weight))
            if isinstance(m, nn.Linear):
                m.weight.data.normal_(0, 0.01)

    def _make_layer(self, block, planes, blocks, stride=1, use_se=True):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            layers = [nn.AvgPool2d(2, 2, ceil_mode=True, count_include_pad=False)] if stride == 2 else []
            layers += [conv2d_ABN(self.inplanes, planes * block.expansion, kernel_size=1, stride=1,
                                  activation='identity')]
            downsample = nn.Sequential(*layers)
        layers = [block(self.inplanes, planes, stride, downsample, use_se=use_se)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, use_se=use_se) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        return self.head(self.global_pool(self.body(x)))


class _SpaceToDepth(nn.Module):
    def forward(self, x):
        n, c, h, w = x.shape
        x = x.view(n, c, h // 4, 4, w // 4, 4).permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(n, c * 16, h // 4, w // 4)


class TransformerDecoderLayerOptimal(nn.Module):
    def __init__(self, d_model, nhead=8, dim_feedforward=2048, dropout=0.1, layer_norm_eps=1e-5):
        super().__init__()
        self.norm1 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.dropout = nn.Dropout(dropout)
        self.dropout1 = nn.Dropout(dropout)
        self.dropout2 = nn.Dropout(dropout)
        self.dropout3 = nn.Dropout(dropout)
        self.multihead_attn = nn.MultiheadAttention(d_model, nhead, dropout=dropout)
        self.linear1 = nn.Linear(d_model, dim_feedforward)
        self.linear2 = nn.Linear(dim_feedforward, d_model)
        self.norm2 = nn.LayerNorm(d_model, eps=layer_norm_eps)
        self.norm3 = nn.LayerNorm(d_model, eps=layer_norm_eps)

    def forward(self, tgt, memory):
        tgt = tgt + self.dropout1(tgt)
        tgt = self.norm1(tgt)
        tgt2 = self.multihead_attn(tgt, memory, memory)[0]
        tgt = tgt + self.dropout2(tgt2)
        tgt = self.norm2(tgt)
        tgt2 = self.linear2(self.dropout(F.relu(self.linear1(tgt))))
        tgt = tgt + self.dropout3(tgt2)
        return self.norm3(tgt)


class TransformerDecoder(nn.Module):
    """torch.nn.TransformerDecoder(layer, num_layers=1) as it was: a deep copy of the layer, applied in turn."""

    def __init__(self, layer, num_layers):
        super().__init__()
        self.layers = nn.ModuleList([copy.deepcopy(layer) for _ in range(num_layers)])

    def forward(self, tgt, memory):
        for layer in self.layers:
            tgt = layer(tgt, memory)
        return tgt


class MLDecoder(nn.Module):
    def __init__(self, num_classes, num_of_groups=-1, decoder_embedding=768, initial_num_features=2048):
        super().__init__()
        embed_len_decoder = 100 if num_of_groups < 0 else num_of_groups
        embed_len_decoder = min(embed_len_decoder, num_classes)
        decoder_embedding = 768 if decoder_embedding < 0 else decoder_embedding
        embed_standart = nn.Linear(initial_num_features, decoder_embedding)
        query_embed = nn.Embedding(embed_len_decoder, decoder_embedding)
        query_embed.requires_grad_(False)
        layer_decode = TransformerDecoderLayerOptimal(d_model=decoder_embedding, dim_feedforward=2048, dropout=0.1)
        self.decoder = TransformerDecoder(layer_decode, num_layers=1)
        self.decoder.embed_standart = embed_standart
        self.decoder.query_embed = query_embed
        self.decoder.num_classes = num_classes
        self.decoder.duplicate_factor = int(num_classes / embed_len_decoder + 0.999)
        self.decoder.duplicate_pooling = nn.Parameter(
            torch.Tensor(embed_len_decoder, decoder_embedding, self.decoder.duplicate_factor))
        self.decoder.duplicate_pooling_bias = nn.Parameter(torch.Tensor(num_classes))
        nn.init.xavier_normal_(self.decoder.duplicate_pooling)
        nn.init.constant_(self.decoder.duplicate_pooling_bias, 0)
        self.embed_len_decoder = embed_len_decoder

    def forward(self, x):
        embedding_spatial = x.flatten(2).transpose(1, 2)
        embedding_spatial_786 = F.relu(self.decoder.embed_standart(embedding_spatial), inplace=True)
        bs = embedding_spatial_786.shape[0]
        tgt = self.decoder.query_embed.weight.unsqueeze(1).expand(-1, bs, -1)
        h = self.decoder(tgt, embedding_spatial_786.transpose(0, 1)).transpose(0, 1)  # [N, G, D]
        out_extrap = torch.zeros(h.shape[0], h.shape[1], self.decoder.duplicate_factor, device=h.device,
                                 dtype=h.dtype)
        for i in range(self.embed_len_decoder):  # the published GroupFC
            out_extrap[:, i, :] = torch.matmul(h[:, i, :], self.decoder.duplicate_pooling[i, :, :])
        h_out = out_extrap.flatten(1)[:, :self.decoder.num_classes]
        h_out += self.decoder.duplicate_pooling_bias
        return h_out


def add_ml_decoder_head(model, num_classes=-1, num_of_groups=-1, decoder_embedding=768):
    num_classes = model.num_classes if num_classes == -1 else num_classes
    model.global_pool = nn.Identity()
    del model.head
    model.head = MLDecoder(num_classes=num_classes, initial_num_features=model.num_features,
                           num_of_groups=num_of_groups, decoder_embedding=decoder_embedding)
    return model


def published_tresnet(name_or_layers='tresnet_m', num_classes=80, num_of_groups=-1, decoder_embedding=768):
    """TResNet (by name, or blocks per stage) with the ML-Decoder head, as the published create_model builds it
    with --use-ml-decoder 1."""
    layers = LAYERS[name_or_layers] if isinstance(name_or_layers, str) else tuple(name_or_layers)
    model = TResNet(layers, num_classes=num_classes)
    return add_ml_decoder_head(model, num_classes=num_classes, num_of_groups=num_of_groups,
                               decoder_embedding=decoder_embedding)
