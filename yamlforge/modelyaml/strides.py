"""Strides: how much a target's own layers shrink the feature map, and how a stride is written (``P3/8``)."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

PLAIN_STRIDE_ARG = {  # module -> index of the stride in its YAML args (after parse_model's c1)
    "Conv": 2, "DWConv": 2, "GhostConv": 2, "RepConv": 2, "SCDown": 2, "Conv2": 2, "LightConv": None,
    "nn.Conv2d": 3, "SP": 1,
}
FIXED_FACTOR = {"ADown": 2, "AConv": 2, "MP": 2, "ReOrg": 2, "HGStem": 4}
UNKNOWN_FACTOR = {"TorchVision", "Index"}

Rule = Callable[[list[Any]], Fraction | None]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _arg(args: list[Any], at: int, default: Any = None) -> Any:
    return args[at] if len(args) > at else default


def _stride_at(at: int | None) -> Rule:
    """A conv whose stride is arg ``at`` (1 when not given)."""
    def factor(args: list[Any]) -> Fraction | None:
        if at is None or len(args) <= at:
            return Fraction(1)
        return Fraction(_int(args[at])) if _int(args[at]) else None
    return factor


def _focus(args: list[Any]) -> Fraction | None:
    """Space-to-depth /2, then its conv's own stride."""
    stride = _int(_arg(args, 2, 1))
    return Fraction(2 * stride) if stride else None


def _resnet_layer(args: list[Any]) -> Fraction:
    """(c1, c2, s, is_first, ...): the first one is a stem conv /2 + max-pool /2."""
    return Fraction(4) if _arg(args, 3) is True else Fraction(_int(_arg(args, 2, 1)) or 1)


def _pool(args: list[Any]) -> Fraction | None:
    """(kernel, stride): the stride defaults to the kernel."""
    stride = _arg(args, 1)
    stride = _int(_arg(args, 0)) if stride in (None, "None") else _int(stride)
    return Fraction(stride) if stride else None


def _upsample(args: list[Any]) -> Fraction | None:
    scale = _int(_arg(args, 1))
    return Fraction(1, scale) if scale else None


def _transposed(at: int, default: int) -> Rule:
    """A transposed conv with its stride at arg ``at``: it upsamples by that stride."""
    def factor(args: list[Any]) -> Fraction | None:
        stride = _int(args[at]) if len(args) > at else default
        return Fraction(1, stride) if stride else None
    return factor


RULES: dict[str, Rule] = {
    **{name: _stride_at(at) for name, at in PLAIN_STRIDE_ARG.items()},
    **{name: (lambda args, factor=factor: Fraction(factor)) for name, factor in FIXED_FACTOR.items()},
    **{name: (lambda args: None) for name in UNKNOWN_FACTOR},
    "Focus": _focus, "ResNetLayer": _resnet_layer, "nn.MaxPool2d": _pool, "nn.AvgPool2d": _pool,
    "nn.Upsample": _upsample, "ConvTranspose": _transposed(2, 2), "nn.ConvTranspose2d": _transposed(3, 1),
    "DWConvTranspose2d": _transposed(3, 1),
    "Contract": lambda args: Fraction(_int(_arg(args, 0)) or 2),
    "Expand": lambda args: Fraction(1, _int(_arg(args, 0)) or 2),
}


def builtin_factor(module: str, args: list[Any]) -> Fraction | None:
    """How much a target's own layer shrinks the feature map (2: /2, 1/2: upsampling x2); None when unknown."""
    rule = RULES.get(module.removeprefix("torch."))
    return rule(args) if rule else Fraction(1)


def stride_label(stride: Fraction | int | None) -> str:
    """``P3/8`` for stride 8; plain numbers for anything that is not a power of two, ``?`` when unknown."""
    if stride is None:
        return "?"
    stride = Fraction(stride)
    if stride.denominator == 1 and stride.numerator & (stride.numerator - 1) == 0:
        return f"P{int(math.log2(stride.numerator))}/{stride.numerator}"
    return str(stride)
