"""Channel widths of a model YAML's layers as parse_model scales them: what spec ``constraints`` are checked against.

Only what yamlforge can tell for sure is computed (the image, modules whose first arg is their output width,
Concat, torch's width-keeping layers, spec modules by their channel rule); anything else is None, and a check
against None passes: gen-yaml refuses only a width it knows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from ..errors import YamlforgeError
from .graph import INPUT, Layer, ModelGraph, slot_numbers

IMAGE_CHANNELS = 3
WIDTH_DIVISOR = 8  # parse_model's make_divisible(c2 * width, 8), in Ultralytics and YOLOv9 alike
# Modules whose first YAML arg is their output width, scaled (the same meaning in Ultralytics and YOLOv9).
WIDTH_FIRST = frozenset({
    "Conv", "DWConv", "GhostConv", "RepConv", "Focus", "Bottleneck", "BottleneckCSP", "C1", "C2", "C2f", "C3", "C3x",
    "C3TR", "C3Ghost", "C3k", "C3k2", "C2fAttn", "C2fCIB", "C2PSA", "A2C2f", "SPP", "SPPF", "SCDown", "RepC3",
    "RepNCSPELAN4", "RepNCSP", "ELAN1", "ADown", "AConv", "SPPELAN",
})
SUMS = frozenset({"Concat"})
LAST_INPUT = frozenset({"CBFuse"})


@dataclass(frozen=True)
class Scaling:
    """One scale's width multiple and channel cap (``scales: {n: [depth, width, max_channels]}``)."""

    name: str | None
    width: float = 1.0
    max_channels: float = math.inf

    def scaled(self, c2: int) -> int:
        return math.ceil(min(c2, self.max_channels) * self.width / WIDTH_DIVISOR) * WIDTH_DIVISOR


def scalings(data: dict) -> list[Scaling]:
    """Every scale a model YAML defines (one unnamed for a YAML with ``width_multiple`` or neither)."""
    scales = data.get("scales")
    if isinstance(scales, dict) and scales:
        return [Scaling(str(name), float(row[1]), float(row[2]) if len(row) > 2 else math.inf)
                for name, row in scales.items() if isinstance(row, list) and len(row) >= 2]
    return [Scaling(None, float(data.get("width_multiple") or 1.0))]


def pick_scaling(data: dict, scale: str | None) -> Scaling:
    """The scale the target builds: ``scale`` if given and defined, else the first (what parse_model falls back to)."""
    found = scalings(data)
    return next((s for s in found if s.name == scale), found[0])


# (layer, its input widths, scaling) -> its output width; None: unknown
WidthOf = Callable[[Layer, list[int | None], Scaling], int | None]


def builtin_width(layer: Layer, inputs: list[int | None], scaling: Scaling) -> int | None:
    """The output width of a target's own layer, or None."""
    if layer.module in SUMS:
        return sum(inputs) if None not in inputs else None
    if layer.module in LAST_INPUT:
        return inputs[-1]
    if layer.module.startswith("nn."):
        return inputs[0] if layer.module in ("nn.Upsample", "nn.Identity") else None
    first = layer.args[0] if layer.args else None
    if layer.module in WIDTH_FIRST and isinstance(first, int) and not isinstance(first, bool):
        return scaling.scaled(first)
    return None


def output_widths(layers: list[Layer], scaling: Scaling, width_of: WidthOf) -> dict[tuple[Hashable, int], Any]:
    """Width of every (layer, output); a layer with several outputs gets None for each."""
    out: dict[tuple[Hashable, int], Any] = {(INPUT, 0): IMAGE_CHANNELS}
    for layer in layers:
        inputs = [out.get((ref.producer, ref.output)) for ref in layer.refs]
        width = width_of(layer, inputs, scaling) if layer.outputs == 1 else None
        for k in range(layer.outputs):
            out[layer.key, k] = width
    return out


# ---------------------------------------------------------------- gen-yaml's check: spec constraints on widths


def spec_width(specs: dict[str, Any]) -> WidthOf:
    """A layer's output width: a spec module's by its channel rule, the target's own by builtin_width."""
    def width_of(layer: Layer, inputs: list[int | None], scaling: Scaling) -> int | None:
        spec = specs.get(layer.module)
        if spec is None:
            return builtin_width(layer, inputs, scaling)
        if spec.role == "layer" and spec.channels in ("keep", "none"):
            return inputs[0]
        first = layer.args[0] if layer.args else None
        if spec.role == "layer" and spec.channels == "in_out" and isinstance(first, int):
            return scaling.scaled(first)
        return None
    return width_of


def _constraint_failures(graph: ModelGraph, specs: dict[str, Any], scaling: Scaling):
    """(layer, width, why) for each constrained spec layer whose input (or in_out output) width breaks the spec."""
    found = output_widths(graph.layers, scaling, spec_width(specs))
    for layer in graph.layers:
        spec = specs.get(layer.module)
        if spec is None or spec.constraints is None:
            continue
        ref = layer.refs[0]
        checked = [found.get((ref.producer, ref.output))]
        if spec.channels == "in_out":
            checked.append(found.get((layer.key, 0)))
        for width in checked:
            why = spec.constraints.violation(width) if width is not None else None
            if why:
                yield layer, width, why


def check_constraints(graph: ModelGraph, specs: dict[str, Any], data: dict, scale: str | None) -> None:
    """Refuse, before anything is written, a spec layer whose scaled width breaks its ``constraints``."""
    if not any(getattr(s, "constraints", None) for s in specs.values()):
        return
    scaling = pick_scaling(data, scale)
    failure = next(_constraint_failures(graph, specs, scaling), None)
    if failure is None:
        return
    layer, width, why = failure
    slot = slot_numbers(graph.layers)[layer.key]
    working = [s.name for s in scalings(data) if s.name and next(_constraint_failures(graph, specs, s), None)
               is None]
    at = f" at scale {scaling.name}" if scaling.name else ""
    hint = f"--scale {working[0]} builds it (scales that work: {', '.join(working)})" if working else \
        "put it where the width meets the constraint, or widen the layer before it"
    raise YamlforgeError(f"layer {slot} ({layer.module}) gets {width} channels{at}, {why} (its spec's constraints: "
                         f"{specs[layer.module].constraints.describe()})", where=layer.edited_by or f"layer {slot}",
                         hint=hint)
