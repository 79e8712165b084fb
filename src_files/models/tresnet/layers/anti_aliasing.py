import torch
from torch import nn
import torch.nn.functional as F


class AntiAliasDownsample(nn.Module):
    """Blur with a [1, 2, 1] x [1, 2, 1] / 16 filter, then subsample by 2 (reflect padding, depthwise).

    The filter is fixed, so it is a non-persistent buffer: not in the state dict, but it follows .to()/.half().
    """

    def __init__(self, channels, filt_size=3, stride=2):
        super().__init__()
        assert filt_size == 3 and stride == 2, 'TResNet only uses a 3x3 filter with stride 2'
        a = torch.tensor([1., 2., 1.])
        filt = a[:, None] * a[None, :]
        filt = (filt / filt.sum())[None, None].repeat(channels, 1, 1, 1)
        self.register_buffer('filt', filt, persistent=False)

    def forward(self, x):
        x = F.pad(x, (1, 1, 1, 1), mode='reflect')
        return F.conv2d(x, self.filt.to(x.dtype), stride=2, groups=x.shape[1])
