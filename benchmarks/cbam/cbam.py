"""CBAM (Woo et al., ECCV 2018): channel attention from pooled descriptors, then spatial attention."""

import torch
from torch import nn


class CBAM(nn.Module):
    """Channel attention (a shared MLP on average- and max-pooled features), then spatial attention (a convolution
    over the channel-wise average and max); the output has the input's shape."""

    def __init__(self, dim, kernel_size=7, reduction=16):
        super().__init__()
        hidden = max(dim // reduction, 8)
        self.mlp = nn.Sequential(nn.Conv2d(dim, hidden, 1), nn.ReLU(), nn.Conv2d(hidden, dim, 1))
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2)

    def forward(self, x):
        x = x * torch.sigmoid(self.mlp(x.mean((2, 3), keepdim=True)) + self.mlp(x.amax((2, 3), keepdim=True)))
        return x * torch.sigmoid(self.spatial(torch.cat([x.mean(1, keepdim=True), x.amax(1, keepdim=True)], 1)))
