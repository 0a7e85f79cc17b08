"""Shared by the adopt probes (runs in the target's Python): feeding a module in each layout, reading its output."""

from __future__ import annotations

import math
import sys
from fractions import Fraction

if __package__:  # imported as yamlforge.runners.yf_probe (the tests)
    from . import yf_facts
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts

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
    x, args = inputs(layout, channels, size)
    with torch.no_grad():
        out = module(x, *args)
    return to_nchw(out, layout)


def inputs(layout: str, channels: int, size: int, batch: int = 1) -> tuple:
    """(x, the forward's other arguments) for one map of ``size`` in ``layout``."""
    import torch

    shapes = {"nchw": (batch, channels, size, size), "nhwc": (batch, size, size, channels)}
    x = torch.randn(shapes.get(layout, (batch, size * size, channels)))
    return x, {"tokens_hw": (size, size), "tokens_size": ((size, size),)}.get(layout, ())


def check_training(module, layout: str, channels: int, size: int) -> None:
    """A train-mode forward of two maps and a backward, the way a detector trains it (its input the output of a
    layer before, so autograd keeps it); ProbeError naming the cause when either fails."""
    import torch

    progress(type(module).__name__, layout, size, "train")
    x, args = inputs(layout, channels, size, batch=2)
    x.requires_grad_(True)
    module.train()
    try:
        out = unwrap_tokens(module(x * 1, *args), layout)  # x * 1: not a leaf, as a layer's input is in a detector
        loss = sum(t.float().sum() for t in (out if isinstance(out, (list, tuple)) else [out])
                   if isinstance(t, torch.Tensor) and t.requires_grad)
        if isinstance(loss, torch.Tensor):
            loss.backward()
    except Exception as exc:
        if "inplace operation" in str(exc):
            said = yf_facts.one_line(exc).split(": [", 1)[0]  # the tensor's description would not fit one line
            raise ProbeError("its forward writes in place into its input (or a tensor its backward needs), so it "
                             f"cannot be trained: the backward fails with {said}") from None
        raise ProbeError("it runs in eval mode but a train-mode forward and backward fail: "
                         + yf_facts.one_line(exc)) from None
    finally:
        module.eval()


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
