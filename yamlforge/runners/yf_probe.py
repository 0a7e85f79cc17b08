"""Shared by the adopt probes (runs in the target's Python): feeding a module in each layout, reading its output."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

HW_NAMES = ("H", "W", "h", "w", "height", "width")
SIZE_NAMES = ("x_size", "hw_shape", "hw", "size", "shape")


class ProbeError(Exception):
    """A one-line reason the class cannot be adopted."""


def progress(*parts) -> None:
    print("yamlforge-probe:", *parts, file=sys.stderr, flush=True)


def layouts(extra: tuple[str, ...]) -> tuple[str, ...]:
    if len(extra) == 2 and set(extra) <= set(HW_NAMES):
        return ("tokens_hw",)
    if len(extra) == 1 and extra[0] in SIZE_NAMES:
        return ("tokens_size",)
    if len(extra) == 1:
        raise ProbeError(f"forward(x, {extra[0]}) takes a second input: two-input blocks (an upsampler fusing a skip "
                         "connection) are refused, since a spec module's YAML row feeds it one map; wrap it in a "
                         "one-input module, or add it to the target by hand")
    if extra:
        raise ProbeError(f"forward needs arguments {', '.join(extra)} besides x; only (x), (x, H, W) and "
                         "(x, x_size) can be fed by a detector")
    return ("nchw", "nhwc", "tokens")


def run(module, layout: str, channels: int, size: int):
    """One forward; the output as (N, C, H, W) maps, a list of them, or an (N, K) tensor."""
    import torch

    progress(type(module).__name__, layout, size)
    shapes = {"nchw": (1, channels, size, size), "nhwc": (1, size, size, channels)}
    x = torch.randn(shapes.get(layout, (1, size * size, channels)))
    args = {"tokens_hw": (size, size), "tokens_size": ((size, size),)}.get(layout, ())
    with torch.no_grad():
        out = module(x, *args)
    return to_nchw(out, layout)


def tokens_to_nchw(t):
    side = math.isqrt(t.shape[1])
    if side * side != t.shape[1]:
        raise ProbeError(f"returned {t.shape[1]} tokens, not a square map")
    return t.transpose(1, 2).reshape(t.shape[0], t.shape[2], side, side)


def unwrap_tokens(out, layout: str):
    """``(tokens, H, W)``, as patch-merging layers return it, is the tokens."""
    if layout.startswith("tokens") and isinstance(out, (list, tuple)) and len(out) == 3 \
            and all(isinstance(v, int) for v in out[1:]):
        return out[0]
    return out


def to_nchw(out, layout: str):
    import torch

    out = unwrap_tokens(out, layout)
    if isinstance(out, (list, tuple)):
        if not out or not all(isinstance(o, torch.Tensor) and o.ndim == 4 for o in out):
            raise ProbeError("returned a list/tuple that is not a list of (N, C, H, W) feature maps")
        return list(out)
    if not isinstance(out, torch.Tensor):
        raise ProbeError(f"returned a {type(out).__name__}, not a tensor")
    expected = {"nchw": 4, "nhwc": 4}.get(layout, 3)
    if out.ndim not in (2, expected):
        raise ProbeError(f"returned shape {tuple(out.shape)} for {layout} input")
    if out.ndim == 2:
        return out
    if layout == "nhwc":
        return out.permute(0, 3, 1, 2)
    return tokens_to_nchw(out) if expected == 3 else out


def stride_of(size: int, out_size: int) -> Fraction:
    if out_size >= size:
        if out_size % size:
            raise ProbeError(f"output size {out_size} for input {size} is no whole upsampling factor")
        return Fraction(1, out_size // size)
    k = 2 ** round(math.log2(size / out_size))
    if abs(size / k - out_size) <= 1:
        return Fraction(k)
    return Fraction(round(size / out_size))
