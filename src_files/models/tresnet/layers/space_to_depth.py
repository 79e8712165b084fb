import torch
from torch import nn


class SpaceToDepth(nn.Module):
    """Rearrange each 4x4 pixel block into channels: [N, C, H, W] -> [N, 16C, H/4, W/4] (TResNet's stem)."""

    def __init__(self, block_size=4):
        super().__init__()
        self.bs = block_size

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        bs = self.bs
        if h % bs or w % bs:
            raise ValueError(f'TResNet needs an input height and width divisible by {bs}, got {h}x{w}')
        x = x.view(n, c, h // bs, bs, w // bs, bs)
        x = x.permute(0, 3, 5, 1, 2, 4).contiguous()
        return x.view(n, c * bs * bs, h // bs, w // bs)
