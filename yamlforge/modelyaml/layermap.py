"""The old -> new layer map of a gen-yaml output, as gen-yaml records it in the output's header.

The map itself (record format, structural alignment, freeze values) is :mod:`yamlforge.runners.yf_layermap`, which
``weights_runner.py`` also runs in the target's Python; this side builds it from gen-yaml's placements.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runners.yf_layermap import RECORD, LayerMap, align, layer_map

if TYPE_CHECKING:
    from .graph import Placement

__all__ = ["RECORD", "LayerMap", "align", "layer_map", "map_of_placements", "record_map"]


def map_of_placements(placements: list[Placement], base_rows: int) -> LayerMap:
    """Base row -> output row of every base layer gen-yaml kept: unchanged (carried) or replaced."""
    carried: dict[int, int] = {}
    replaced: dict[int, int] = {}
    for row, placement in enumerate(placements):
        if placement.base_slot is not None:
            (replaced if placement.status == "replaced" else carried)[placement.layer.key] = row
    return LayerMap(base_rows, len(placements), carried, replaced)


def record_map(text: str, placements: list[Placement], base_rows: int) -> str:
    """``text`` (gen-yaml's output, its first line naming the base) with the layer map as its second line; an
    earlier record (a gen-yaml output used as a base) is replaced; none is written when every row stays where it was."""
    first, _, rest = text.partition("\n")
    found = RECORD.match(rest)
    if found:
        rest = rest[found.end():].removeprefix("\n")
    mapping = map_of_placements(placements, base_rows)
    if mapping.is_identity:  # rows edited in place only (nc, scale): what an alignment finds anyway
        return f"{first}\n{rest}"
    return f"{first}\n{mapping.to_record()}\n{rest}"
