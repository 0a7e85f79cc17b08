"""Strides: how much a layer shrinks the feature map, how a stride is written (``P3/8``), and that edits keep it."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import Any

from ..errors import YamlforgeError

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


# ---------------------------------------------------------------- gen-yaml's check: edits keep the resolution
# ``graph`` below is a modelyaml.graph.ModelGraph and ``layer`` one of its Layers: not imported, since graph.py
# imports this module for stride_label.


def layer_factor(layer, specs: dict[str, Any]) -> Fraction | tuple[Fraction, ...] | None:
    """A layer's own stride; a backbone's output strides (relative to its input), one per output."""
    spec = specs.get(layer.module)
    if spec is not None:
        if spec.role == "backbone":
            return tuple(Fraction(s) for s in spec.strides_of(layer.args))
        return Fraction(spec.stride)  # a layer's is an int, or a Fraction below 1 for an upsampler (1/2)
    return builtin_factor(layer.module, layer.args)


def check_strides(graph, edits: list, specs: dict[str, Any], base_strides: dict) -> None:
    """An edit may not change the resolution later layers run at: compare each edited layer's own factor.

    ``edits`` are the layer edits applied to ``graph``; ``base_strides`` the strides of the base's layers.
    """
    for edit in edits:
        if edit.op in ("remove", "replace"):
            _check_kept_stride(graph, edit, specs, base_strides)
            continue
        factor = layer_factor(graph.inserted_by(edit.option), specs)
        if factor is not None and factor != 1:
            raise YamlforgeError(f"{edit.module} has stride {factor}: inserted, it would change the resolution of "
                                 "every layer after it", where=edit.option,
                                 hint="--replace a layer with the same stride, or --allow-stride-change")


def _check_kept_stride(graph, edit, specs: dict[str, Any], base_strides: dict) -> None:
    """A replaced layer keeps its own stride; a removed one had stride 1."""
    key, _ = graph.slot_owner[edit.layer]  # the edit was accepted, so the slot exists
    old = graph.base[key]
    old_factor = layer_factor(old, specs)
    new_factor = Fraction(1) if edit.op == "remove" else layer_factor(graph.current(key), specs)
    if old_factor is None or new_factor is None or old_factor == new_factor:
        return
    source = old.refs[0].producer
    before = base_strides.get((source, old.refs[0].output))
    after = base_strides.get((old.key, old.outputs - 1))
    now = before * new_factor if before is not None else None
    doing = "removing it" if edit.op == "remove" else \
        f"replacing it with {edit.module}, which {_factor_words(new_factor)},"
    message = (f"layer {edit.layer} is {old.module} with stride {old_factor} ({stride_label(before)} -> "
               f"{stride_label(after)}); {doing} would leave it and every layer after it at "
               f"{stride_label(now)} instead of {stride_label(after)}")
    hint = None
    if isinstance(source, int) and edit.op == "replace":
        source = graph.base_slot[source] + old.refs[0].output
        hint = (f"--insert-after {source}={edit.module} or --replace {source}={edit.module} keeps the "
                "resolution; --allow-stride-change to do it anyway")
    elif edit.op == "remove":
        hint = "--allow-stride-change to do it anyway"
    raise YamlforgeError(message, where=f"layer {edit.layer}", hint=hint)


def _factor_words(factor: Fraction) -> str:
    return "keeps the resolution" if factor == 1 else f"has stride {factor}"
