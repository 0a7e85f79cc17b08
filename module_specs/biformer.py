"""Bi-level routing attention (BiFormer) in NCHW form; a clean pure-torch implementation.

L. Zhu, X. Wang, Z. Ke, W. Zhang, R. Lau. "BiFormer: Vision Transformer with Bi-Level Routing Attention."
CVPR 2023.

The map is cut into a grid of regions. A coarse, region-level step picks for every region the ``topk``
regions most related to it (affinity of the regions' mean-pooled queries and keys); a fine, token-level
multi-head attention then lets each region's queries attend only to the tokens of those routed regions.
A depthwise conv on the values (local enhanced positional encoding, "lepe") is added to the result.

Shapes: (N, dim, H, W) -> (N, dim, H, W); channels and resolution kept.

Parameter count: 3*dim*dim + 3*dim (qkv 1x1 conv with bias) + dim*k*k + dim (lepe, k = side_dwconv)
+ dim*dim + dim (output 1x1 conv); dim=256 -> 265,728 and dim=512 -> 1,055,744 with k = 3.

This file is standalone (torch + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ("BiLevelRoutingAttention",)


def region_grid(size: int, n_win: int) -> tuple[int, int]:
    """(regions, region side) along one axis of length ``size`` for at most ``n_win`` regions.

    The side is ``ceil(size / min(n_win, size))`` and the count ``ceil(size / side)``, so the padded length
    ``regions * side`` overshoots ``size`` by less than one region: every region holds at least one real row.
    """
    side = math.ceil(size / min(n_win, size))
    return math.ceil(size / side), side


class BiLevelRoutingAttention(nn.Module):
    """BiFormer bi-level routing attention on NCHW maps; (N, dim, H, W) -> (N, dim, H, W).

    Args:
        dim: input and output channels (parse_model passes the input channels); divisible by ``num_heads``.
        num_heads: heads of the token-level attention (head_dim = dim // num_heads, scale head_dim^-0.5).
        n_win: regions per side (the paper's S; 7 for 224x224 inputs at stride 8..32).
        topk: regions each region routes to; clamped to the number of regions.
        side_dwconv: kernel of the depthwise lepe conv on the values (padding side_dwconv // 2).

    Sizes that ``n_win`` does not divide, or that are smaller than ``n_win``, are handled by BOTH clamping
    and padding: along each axis the region side is ``ceil(size / min(n_win, size))`` and the region count
    ``ceil(size / side)`` (at most ``n_win``; fewer when the map is small), then q, k and v are zero-padded
    on the right/bottom to ``count * side`` and the output is cropped back. Padded positions are masked:
    they are excluded from the regions' mean-pooled queries/keys and never attended to as keys, so the
    padding does not change the values at real positions (for a divisible size nothing is padded, and with
    ``topk`` at least the number of regions the layer is exactly full multi-head attention plus lepe).
    """

    def __init__(self, dim: int, num_heads: int = 8, n_win: int = 7, topk: int = 4, side_dwconv: int = 3):
        super().__init__()
        if num_heads < 1 or dim % num_heads:
            raise ValueError(f"BiLevelRoutingAttention: dim={dim} must be divisible by num_heads={num_heads}")
        if n_win < 1 or topk < 1:
            raise ValueError(f"BiLevelRoutingAttention: n_win={n_win} and topk={topk} must be positive")
        if side_dwconv < 1 or side_dwconv % 2 == 0:
            raise ValueError(f"BiLevelRoutingAttention: side_dwconv={side_dwconv} must be odd (keeps H, W)")
        self.dim, self.num_heads, self.n_win, self.topk = dim, num_heads, n_win, topk
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.lepe = nn.Conv2d(dim, dim, side_dwconv, padding=side_dwconv // 2, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=1)
        lepe = self.lepe(v)

        rows, row_side = region_grid(h, self.n_win)
        cols, col_side = region_grid(w, self.n_win)
        regions, tokens = rows * cols, row_side * col_side
        pad = (0, cols * col_side - w, 0, rows * row_side - h)

        def to_regions(t: torch.Tensor) -> torch.Tensor:
            # (N, C, H, W) -> (N, regions, tokens per region, C)
            t = F.pad(t, pad).reshape(t.shape[0], t.shape[1], rows, row_side, cols, col_side)
            return t.permute(0, 2, 4, 3, 5, 1).reshape(t.shape[0], regions, tokens, t.shape[1])

        q, k, v = to_regions(q), to_regions(k), to_regions(v)
        valid = to_regions(x.new_ones(1, 1, h, w))  # (1, regions, tokens, 1): 1 for real positions
        count = valid.sum(dim=2)

        # Region level: routing by the affinity of mean-pooled queries and keys (topk is not differentiable).
        q_region = (q * valid).sum(dim=2) / count  # (N, regions, C)
        k_region = (k * valid).sum(dim=2) / count
        affinity = q_region @ k_region.transpose(-2, -1)  # (N, regions, regions)
        routed = affinity.topk(min(self.topk, regions), dim=-1).indices  # (N, regions, topk)

        # Token level: each region's queries attend to the tokens of its routed regions.
        batch = torch.arange(n, device=x.device)[:, None, None]
        k_routed = k[batch, routed].reshape(n, regions, -1, c)  # (N, regions, topk * tokens, C)
        v_routed = v[batch, routed].reshape(n, regions, -1, c)
        key_valid = valid[0, :, :, 0].bool()[routed].reshape(n, regions, 1, 1, -1)

        heads, head_dim = self.num_heads, c // self.num_heads
        q = q.reshape(n, regions, tokens, heads, head_dim).transpose(2, 3)  # (N, regions, heads, tokens, hd)
        k_routed = k_routed.reshape(n, regions, -1, heads, head_dim).transpose(2, 3)
        v_routed = v_routed.reshape(n, regions, -1, heads, head_dim).transpose(2, 3)
        attn = (q @ k_routed.transpose(-2, -1)) * self.scale
        # Every region holds a real token, so each softmax row keeps at least one finite logit.
        attn = attn.masked_fill(~key_valid, float("-inf")).softmax(dim=-1)
        out = (attn @ v_routed).transpose(2, 3).reshape(n, rows, cols, row_side, col_side, c)
        out = out.permute(0, 5, 1, 3, 2, 4).reshape(n, c, rows * row_side, cols * col_side)[:, :, :h, :w]
        return self.proj(out + lepe)
