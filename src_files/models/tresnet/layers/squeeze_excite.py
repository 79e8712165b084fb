from torch import nn
import torch.nn.functional as F


class SEModule(nn.Module):
    """Squeeze-and-excitation: scale each channel by a gate computed from the global mean."""

    def __init__(self, channels, reduction_channels):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, reduction_channels, kernel_size=1, bias=True)
        self.fc2 = nn.Conv2d(reduction_channels, channels, kernel_size=1, bias=True)

    def gate(self, x):
        """The per-channel scale, [N, C, 1, 1]."""
        return self.fc2(F.relu(self.fc1(x.mean((2, 3), keepdim=True)))).sigmoid()

    def forward(self, x):
        return x * self.gate(x)
