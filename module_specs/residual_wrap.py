"""A residual wrapper: ``x + f(x)`` around any module that keeps its width (the form SHViT, BiFormer and most
attention papers use their blocks in).

A module whose last normalisation starts at zero (SHSA's projection BN, layer-scale blocks) outputs zeros at
initialisation: as a plain layer it cuts the signal for every later layer, while as the branch of a residual it
starts as the identity, which is what its authors intended. gen-yaml writes this form for ``residual:MODULE``:

    - [-1, 1, ResidualWrap, [SHSA, 16, None]]     # ResidualWrap(c, SHSA, 16, None) = x + SHSA(c, 16, None)(x)

``module`` is the wrapped class, or its name as the model YAML writes it: parse_model passes names through as
strings (YOLOv5/YOLOv9 evaluate them to the class), and the name is looked up where parse_model looks up the
row's own module, in the globals of the code building this layer. The wrapped module gets ``c`` (the input
width, filled in by the keep rule) and then ``args``.

This file is standalone (torch + stdlib only): yamlforge copies it verbatim into the target checkout.
"""

from __future__ import annotations

import sys

from torch import nn

__all__ = ("ResidualWrap",)

_CALLER_DEPTH = 8  # frames searched for the name: parse_model, its generator expression, a fork's wrapper


def _module_class(module):
    """The class ``module`` names: itself if it is one, else the name as parse_model's globals bind it."""
    if not isinstance(module, str):
        return module
    frame = sys._getframe(2)  # the caller of ResidualWrap.__init__
    for _ in range(_CALLER_DEPTH):
        if frame is None:
            break
        if module in frame.f_globals:
            return frame.f_globals[module]
        frame = frame.f_back
    raise NameError(f"ResidualWrap: no module named '{module}' where this layer is built (is it applied?)")


class ResidualWrap(nn.Module):
    """``x + module(c, *args)(x)``; (N, c, H, W) -> (N, c, H, W).

    Args:
        c: input and output channels (parse_model passes the input channels).
        module: the wrapped module's class or name; ``None`` wraps nothing (``x + x``, what a probe builds).
        args: the wrapped module's args after its channels.
    """

    def __init__(self, c: int, module=None, *args):
        super().__init__()
        self.m = nn.Identity() if module is None else _module_class(module)(c, *args)

    def forward(self, x):
        return x + self.m(x)
