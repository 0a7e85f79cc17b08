"""Bi-level routing attention (BiFormer) in NCHW form; a clean pure-torch implementation.

L. Zhu, X. Wang, Z. Ke, W. Zhang, R. Lau. "BiFormer: Vision Transformer with Bi-Level Routing Attention."
CVPR 2023.

The map is cut into ``n_win x n_win`` regions. A coarse, region-level step picks for every region the
``topk`` regions most related to it (affinity of the regions' mean-pooled queries and keys); a fine,
token-level multi-head attention then lets each region's queries attend only to the tokens of those routed
regions. A depthwise conv on the values (local enhanced positional encoding, "lepe") is added to the result.

It computes what the authors' ``BiLevelRoutingAttention(dim, num_heads, n_win, topk, side_dwconv,
auto_pad=True)`` (rayleizhu/BiFormer, ``ops/bra_legacy.py``) computes, to float rounding, for every size:
logits are scaled by ``dim ** -0.5`` (the official ``qk_dim`` defaults to ``dim``, not the head width), and
a map whose sides ``n_win`` does not divide -- or that is smaller than ``n_win`` -- is zero-padded on the
bottom/right to the next multiple of ``n_win`` before the qkv projection; the padded positions take part in
routing and attention, and the output is cropped back. ``tests/test_parity.py`` checks this against the
official module's recorded outputs; the spec's ``official:`` section maps its weights onto this module.

Shapes: (N, dim, H, W) -> (N, dim, H, W); channels and resolution kept.

Parameter count: 3*dim*dim + 3*dim (qkv 1x1 conv with bias) + dim*k*k + dim (lepe, k = side_dwconv)
+ dim*dim + dim (output 1x1 conv); dim=256 -> 265,728 and dim=512 -> 1,055,744 with k = 3.

This file is standalone (torch + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ("BiLevelRoutingAttention",)


class BiLevelRoutingAttention(nn.Module):
    """BiFormer bi-level routing attention on NCHW maps; (N, dim, H, W) -> (N, dim, H, W).

    Args:
        dim: input and output channels (parse_model passes the input channels); divisible by ``num_heads``.
        num_heads: heads of the token-level attention (logits scaled by ``dim ** -0.5``, as in the official code).
        n_win: regions per side (the paper's S; 7 for 224x224 inputs at stride 8..32).
        topk: regions each region routes to; clamped to ``n_win ** 2``.
        side_dwconv: kernel of the depthwise lepe conv on the values (padding side_dwconv // 2).

    Sides that are not multiples of ``n_win`` are zero-padded on the bottom/right up to the next multiple
    (a side smaller than ``n_win`` becomes ``n_win``), as the official ``auto_pad=True`` does: the padding goes
    in before the qkv projection, padded positions are pooled into their regions and attended to like real
    ones, and the output is cropped back to (H, W).
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
        self.scale = dim**-0.5  # the official qk_dim is dim: its per-head logits use the full width's scale
        self.qkv = nn.Conv2d(dim, 3 * dim, 1)
        self.lepe = nn.Conv2d(dim, dim, side_dwconv, padding=side_dwconv // 2, groups=dim)
        self.proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        x = F.pad(x, (0, -w % self.n_win, 0, -h % self.n_win))
        n, c, padded_h, padded_w = x.shape
        q, k, v = self.qkv(x).chunk(3, dim=1)
        lepe = self.lepe(v)

        wins, row_side, col_side = self.n_win, padded_h // self.n_win, padded_w // self.n_win
        regions, tokens = wins * wins, row_side * col_side

        def to_regions(t: torch.Tensor) -> torch.Tensor:
            # (N, C, H, W) -> (N, regions, tokens per region, C)
            t = t.reshape(n, c, wins, row_side, wins, col_side).permute(0, 2, 4, 3, 5, 1)
            return t.reshape(n, regions, tokens, c)

        q, k, v = to_regions(q), to_regions(k), to_regions(v)

        # Region level: routing by the affinity of mean-pooled queries and keys (topk is not differentiable).
        affinity = (q.mean(dim=2) * self.scale) @ k.mean(dim=2).transpose(-2, -1)  # (N, regions, regions)
        routed = affinity.topk(min(self.topk, regions), dim=-1).indices  # (N, regions, topk)

        # Token level: each region's queries attend to the tokens of its routed regions.
        batch = torch.arange(n, device=x.device)[:, None, None]
        heads, head_dim = self.num_heads, c // self.num_heads
        k = k[batch, routed].reshape(n, regions, -1, heads, head_dim).transpose(2, 3)  # (N, R, heads, keys, hd)
        v = v[batch, routed].reshape(n, regions, -1, heads, head_dim).transpose(2, 3)
        q = q.reshape(n, regions, tokens, heads, head_dim).transpose(2, 3)  # (N, R, heads, tokens, hd)
        attn = ((q * self.scale) @ k.transpose(-2, -1)).softmax(dim=-1)
        out = (attn @ v).transpose(2, 3).reshape(n, wins, wins, row_side, col_side, c)
        out = out.permute(0, 5, 1, 3, 2, 4).reshape(n, c, padded_h, padded_w)
        return self.proj((out + lepe)[:, :, :h, :w])
