"""``--nc`` and ``--scale``: the number of classes and the one scale the output builds at, edited in place."""

from __future__ import annotations

import re
from pathlib import Path

from ..errors import YamlforgeError
from ..targets import Target
from .base import Base, guess_scale
from .layout import ModelLayout
from .load import entry


def set_nc(layout: ModelLayout, nc: int | None) -> None:
    """``--nc``: rewrite the number in place, comment and spacing kept."""
    if nc is None:
        return
    found = entry(layout.node, "nc")
    if found is None:
        raise YamlforgeError("the base has no 'nc:' key to set", where="--nc")
    value = layout.data["nc"]
    if not isinstance(value, int) or isinstance(value, bool) or not re.fullmatch(r"\d+", found[1].value):
        raise YamlforgeError("the base's 'nc:' is not a plain number", where="--nc")
    layout.splice_node(found[1], str(nc))


def apply_scale(layout: ModelLayout, base: Base, target: Target, scale: str | None, output: Path) -> str | None:
    """Make the output build at the requested scale: keep a name the target parses, or keep only that scale row.

    Returns the one scale the output keeps, None when it keeps them all.
    """
    scales = layout.data.get("scales")
    if scale and (not isinstance(scales, dict) or len(scales) < 2):
        raise YamlforgeError(f"the base {base.path.name} has a single scale; --scale cannot pick another",
                             where="--scale")
    wanted = scale or base.scale
    if not wanted or not isinstance(scales, dict) or len(scales) < 2:
        return None
    if wanted not in scales:
        raise YamlforgeError(f"scale '{wanted}' is not in the base (scales: {', '.join(scales)})", where="--scale")
    parsed = guess_scale(target.scale_pattern, output.stem)
    if parsed == wanted:
        return None
    if parsed:
        raise YamlforgeError(f"the output name {output.name} makes {target.label} build scale '{parsed}', "
                             f"not '{wanted}'", where="-o", hint=f"name it like {base.name}-*.yaml")
    scale_rows = entry(layout.node, "scales")[1]
    if scale_rows.flow_style:
        raise YamlforgeError(f"the base's scales are one flow mapping, so the other scales cannot be dropped from the "
                             f"output; name it so {target.label} reads scale '{wanted}' from it",
                             where="-o", hint="write the base's scales one per line (block style), so the others "
                                              "can be dropped")
    for key, value in scale_rows.value:
        if key.value != wanted:
            layout.cut_lines(key, value)
    return wanted
