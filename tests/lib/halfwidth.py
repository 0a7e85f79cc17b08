"""HalfWidth: a layer that breaks its spec's channel rule on purpose, for the tests of --verify."""

from __future__ import annotations

# A layer whose spec says `channels: keep` but which halves the width: the layer after it cannot run. It refuses
# to be built narrower than 64 channels, so apply's rule check (which probes at 32 and 48) cannot build it and
# only notes that; verify, building the real model, is what finds the broken rule.
HALF_WIDTH_PY = '''\
"""A layer that breaks its spec's channel rule on purpose (tests of --verify)."""
from torch import nn


class HalfWidth(nn.Module):
    def __init__(self, c1):
        super().__init__()
        if c1 < 64:
            raise ValueError("HalfWidth needs 64 channels or more")
        self.conv = nn.Conv2d(c1, c1 // 2, 1)

    def forward(self, x):
        return self.conv(x)
'''
HALF_WIDTH_SPEC = """\
name: HalfWidth
summary: Claims to keep its width but halves it.
paper: "none"
source: half_width.py
exports: [HalfWidth]
role: layer
channels: keep
stride: 1
args: []
requires: []
"""
