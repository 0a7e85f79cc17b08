"""BHViT multi-scale grouped dilated convolution token mixer (MSGDC); a clean pure-torch implementation.

T. Gao et al. "BHViT: Binarized Hybrid Vision Transformer." CVPR 2025. The paper binarises this mixer; this file is the
full-precision form only (no binarised weights or activations).

For x of shape (N, C, H, W):

    y   = x + bias                                            # learnable per-channel bias
    z_d = RPReLU_d(Conv3x3_d(y)),  d in (1, 3, 5)             # groups=4, dilation d, padding d, with bias
    out = LayerNorm_C(z_1 + z_3 + z_5)                        # over channels, per position (channels-first)

RPReLU(t) = PReLU(t + shift_in) + shift_out, with a per-channel PReLU slope and per-channel shifts.
The three dilations give receptive fields of 3, 7 and 11 at the cost of three 3x3 convs.

Shapes: (N, C, H, W) -> (N, C, H, W); C must be divisible by 4 (the groups).

Parameter count: C (bias) + 3 * (C*(C/4)*9 + C) (convs) + 3 * 3C (RPReLUs) + 2C (LayerNorm)
= 6.75*C^2 + 15C; C = 64 -> 28,608.

This file is standalone (torch + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ("token_mixer",)

DILATIONS = (1, 3, 5)
GROUPS = 4


class RPReLU(nn.Module):
    """PReLU with learnable per-channel shifts before and after (ReActNet): ``prelu(x + s_in) + s_out``."""

    def __init__(self, channels: int):
        super().__init__()
        self.shift_in = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.prelu = nn.PReLU(channels, init=0.25)
        self.shift_out = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.prelu(x + self.shift_in) + self.shift_out


class LayerNormChannels(nn.Module):
    """LayerNorm over the channel dimension of an NCHW map, computed in place without permutes."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean = x.mean(dim=1, keepdim=True)
        var = (x - mean).pow(2).mean(dim=1, keepdim=True)
        x = (x - mean) * torch.rsqrt(var + self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class token_mixer(nn.Module):  # lowercase: the class name BHViT model YAMLs use
    """BHViT multi-scale grouped dilated conv token mixer (MSGDC); (N, C, H, W) -> (N, C, H, W).

    Args:
        dim: channels C (parse_model passes the input channels); must be divisible by 4.
    """

    def __init__(self, dim: int):
        super().__init__()
        if dim < GROUPS or dim % GROUPS:
            raise ValueError(f"token_mixer: C={dim} channels must be a positive multiple of {GROUPS} (grouped convs)")
        self.bias = nn.Parameter(torch.zeros(1, dim, 1, 1))
        self.convs = nn.ModuleList(nn.Conv2d(dim, dim, 3, padding=d, dilation=d, groups=GROUPS) for d in DILATIONS)
        self.acts = nn.ModuleList(RPReLU(dim) for _ in DILATIONS)
        self.norm = LayerNormChannels(dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.bias
        out = sum(act(conv(x)) for conv, act in zip(self.convs, self.acts))
        return self.norm(out)
