"""Single-head self-attention on a channel slice (SHSA), from SHViT; a clean pure-torch implementation.

S. Yun, Y. Ro. "SHViT: Single-Head Vision Transformer with Memory Efficient Macro Design." CVPR 2024.

Only the first ``pdim`` of the ``dim`` input channels go through attention; the paper shows multi-head
attention is redundant at these channel counts and that a partial, single head keeps accuracy while cutting
memory traffic. The layer computes, for x of shape (N, dim, H, W):

    a, b   = x[:, :pdim], x[:, pdim:]                       # (N, pdim, H, W), (N, dim - pdim, H, W)
    q,k,v  = ConvBN_1x1(GroupNorm(1, pdim)(a))              # qk_dim, qk_dim, pdim channels
    attn   = softmax(q^T k * qk_dim^-0.5) over all H*W keys  # (N, HW, HW)
    a'     = v attn^T                                       # (N, pdim, H, W)
    out    = ConvBN_1x1(ReLU(concat(a', b)))                # (N, dim, H, W), that BN's weight starts at 0

Shapes: (N, dim, H, W) -> (N, dim, H, W); channels and resolution kept. Because the last BN's weight
starts at zero the layer outputs its BN bias (zero) at initialisation, the usual start for a residual branch.

Parameter count: 2*pdim (GroupNorm) + pdim*(2*qk_dim + pdim) + 2*(2*qk_dim + pdim) (qkv ConvBN)
+ dim*dim + 2*dim (projection ConvBN); SHSA(256, 16, 64) = 72,512 and SHSA(128, 16, 32) = 18,880.

This file is standalone (torch + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ("SHSA",)


class BatchNorm2d(nn.BatchNorm2d):
    """SHViT's BatchNorm (eps 1e-5). A subclass because Ultralytics' and YOLOv9's ``initialize_weights`` set
    ``eps=1e-3`` on every module whose type *is* ``nn.BatchNorm2d``, which would shift the official weights' outputs."""


class ConvBN(nn.Sequential):
    """Bias-free conv followed by BatchNorm (the conv's bias would be cancelled by the BN's mean anyway)."""

    def __init__(self, c1: int, c2: int, kernel_size: int = 1, bn_weight_init: float = 1.0):
        super().__init__()
        self.add_module("conv", nn.Conv2d(c1, c2, kernel_size, padding=kernel_size // 2, bias=False))
        self.add_module("bn", BatchNorm2d(c2))
        nn.init.constant_(self.bn.weight, bn_weight_init)
        nn.init.zeros_(self.bn.bias)


class SHSA(nn.Module):
    """SHViT single-head self-attention over the first ``pdim`` channels; (N, dim, H, W) -> (N, dim, H, W).

    Args:
        dim: input and output channels (parse_model passes the input channels).
        qk_dim: query/key dimension of the single head.
        pdim: channels that go through attention; ``None`` means ``dim // 4``. The other ``dim - pdim``
            channels bypass attention and are concatenated back before the projection.
    """

    def __init__(self, dim: int, qk_dim: int = 16, pdim: int | None = None):
        super().__init__()
        pdim = dim // 4 if pdim is None else pdim
        if not 0 < pdim <= dim:
            raise ValueError(f"SHSA: pdim={pdim} must be between 1 and dim={dim} (default pdim is dim // 4)")
        if qk_dim < 1:
            raise ValueError(f"SHSA: qk_dim={qk_dim} must be positive")
        self.dim, self.qk_dim, self.pdim = dim, qk_dim, pdim
        self.scale = qk_dim**-0.5
        self.pre_norm = nn.GroupNorm(1, pdim)
        self.qkv = ConvBN(pdim, qk_dim * 2 + pdim)
        self.proj = nn.Sequential(nn.ReLU(), ConvBN(dim, dim, bn_weight_init=0.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        attended, bypass = torch.split(x, [self.pdim, self.dim - self.pdim], dim=1)
        q, k, v = self.qkv(self.pre_norm(attended)).split([self.qk_dim, self.qk_dim, self.pdim], dim=1)
        q, k, v = q.flatten(2), k.flatten(2), v.flatten(2)  # (N, C, HW)
        attn = ((q.transpose(-2, -1) @ k) * self.scale).softmax(dim=-1)  # (N, HW query, HW key)
        attended = (v @ attn.transpose(-2, -1)).reshape(n, self.pdim, h, w)
        return self.proj(torch.cat([attended, bypass], dim=1))
