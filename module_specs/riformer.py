"""RIFormer block (token mixer re-parameterised away); a clean pure-torch implementation.

J. Wang, S. Zhang, Y. Liu, T. Wu, Y. Yang, X. Liu, K. Chen, P. Luo, D. Lin. "RIFormer: Keep Your Vision
Backbone Effective But Removing Token Mixer." CVPR 2023.

Training form, for x of shape (N, c, H, W) (after the optional 1x1 projection c1 -> c2 = c):

    x = x + ls1 * (affine(GN1(x)) - GN1(x))      affine(y) = a * y + b, per channel
    x = x + ls2 * MLP(GN2(x))                    MLP = 1x1 conv c -> c*mlp_ratio, GELU, 1x1 conv -> c

GN is GroupNorm(1, c) (a LayerNorm over C, H and W with a per-channel affine). The token mixer is only an
affine map, so the whole first branch is per-channel linear in the normalised input n = GN1 without affine:

    ls1 * ((a - 1) * (g * n + beta) + b) = [ls1 * (a - 1) * g] * n + ls1 * ((a - 1) * beta + b)

``switch_to_deploy()`` folds that into the affine of a single GroupNorm (weight ``ls1*(a-1)*g``, bias
``ls1*((a-1)*beta+b)``) and drops the affine and ``ls1``, so inference runs ``x + GN1'(x)``: one norm,
no token mixer, no layer scale. The outputs agree to float rounding.

Parameter layout with c1 == c2 == c (training form), c = 64, mlp_ratio = 4 -> 33,600:

    GN1 weight, bias                      2c       128
    token mixer affine a, b               2c       128
    layer scale ls1 (per channel)          c        64
    GN2 weight, bias                      2c       128
    fc1 conv c -> 4c, with bias     4c*c + 4c    16,640
    fc2 conv 4c -> c, with bias     4c*c + c     16,448
    layer scale ls2 (per channel)          c        64
                                                 33,600

With c1 != c2 a 1x1 conv with bias (c1*c2 + c2) runs first. Shapes: (N, c1, H, W) -> (N, c2, H, W).

This file is standalone (torch + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ("RIFormerBlock",)


class RIFormerBlock(nn.Module):
    """RIFormer block with a re-parameterisable affine token mixer; (N, c1, H, W) -> (N, c2, H, W).

    Args:
        c1: input channels (parse_model passes ``ch[f]``).
        c2: output channels; when different from ``c1`` a 1x1 conv projects first.
        mlp_ratio: hidden expansion of the 1x1-conv MLP.
        layer_scale_init: initial value of both per-channel layer scales (the paper's 1e-5).
    """

    def __init__(self, c1: int, c2: int, mlp_ratio: float = 4, layer_scale_init: float = 1e-5):
        super().__init__()
        hidden = int(c2 * mlp_ratio)
        if hidden < 1:
            raise ValueError(f"RIFormerBlock: mlp_ratio={mlp_ratio} leaves no hidden channels for c2={c2}")
        self.deploy = False
        self.proj = nn.Conv2d(c1, c2, 1) if c1 != c2 else nn.Identity()
        self.norm1 = nn.GroupNorm(1, c2)
        # The affine starts as the identity, so "affine minus identity" starts at zero.
        self.mixer_weight = nn.Parameter(torch.ones(c2))
        self.mixer_bias = nn.Parameter(torch.zeros(c2))
        self.layer_scale1 = nn.Parameter(torch.full((c2,), float(layer_scale_init)))
        self.norm2 = nn.GroupNorm(1, c2)
        self.mlp = nn.Sequential(nn.Conv2d(c2, hidden, 1), nn.GELU(), nn.Conv2d(hidden, c2, 1))
        self.layer_scale2 = nn.Parameter(torch.full((c2,), float(layer_scale_init)))

    @staticmethod
    def _channel(p: torch.Tensor) -> torch.Tensor:
        return p.view(1, -1, 1, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        if self.deploy:
            x = x + self.norm1(x)
        else:
            y = self.norm1(x)
            mixed = self._channel(self.mixer_weight) * y + self._channel(self.mixer_bias) - y
            x = x + self._channel(self.layer_scale1) * mixed
        return x + self._channel(self.layer_scale2) * self.mlp(self.norm2(x))

    @torch.no_grad()
    def switch_to_deploy(self) -> None:
        """Fold norm1's affine, the token mixer and layer_scale1 into norm1's affine; a second call is a no-op."""
        if self.deploy:
            return
        a_minus_1 = self.mixer_weight - 1
        weight = self.layer_scale1 * a_minus_1 * self.norm1.weight
        bias = self.layer_scale1 * (a_minus_1 * self.norm1.bias + self.mixer_bias)
        self.norm1.weight.copy_(weight)
        self.norm1.bias.copy_(bias)
        del self.mixer_weight, self.mixer_bias, self.layer_scale1
        self.deploy = True
