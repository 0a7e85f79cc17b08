"""The reload check: the text gen-yaml would write, loaded again, holds exactly the planned rows, nc and scale."""

from __future__ import annotations

from pathlib import Path

from ..errors import InternalError, YamlforgeError
from .layout import Rendered
from .load import load_nodes


def reload_check(rendered: Rendered, output: Path, *, nc: int | None, scale: str | None) -> None:
    """Re-load what would be written and compare it with the plan (the writer never writes a broken file).

    A mismatch is yamlforge's bug, never the user's: an InternalError (exit 3), and nothing is written.
    """
    try:
        data, _ = load_nodes(rendered.text, where=str(output), what="output")
    except YamlforgeError as exc:  # malformed YAML of our making
        raise InternalError(f"the generated YAML does not re-load ({exc.message}); nothing was written",
                            where=exc.where, hint="please report this with the command") from None
    problem = _first_difference(data, rendered, nc=nc, scale=scale)
    if problem is not None:
        raise InternalError(f"the generated YAML does not re-load as planned at {problem}; nothing was written",
                            where=str(output), hint="please report this with the command")


def _first_difference(data: dict, rendered: Rendered, *, nc: int | None, scale: str | None) -> str | None:
    """Where the re-loaded ``data`` first differs from the plan (``layer 4``, ``nc``, ``scales``); None: nowhere."""
    rows = list(data["backbone"]) + list(data["head"])
    expected = [[p.from_written, p.layer.repeats, p.layer.module, p.layer.args] for p in rendered.placements]
    if rows != expected:
        bad = next((i for i, (a, b) in enumerate(zip(rows, expected)) if a != b), min(len(rows), len(expected)))
        return f"layer {bad}"
    if nc is not None and data.get("nc") != nc:
        return "nc"
    if scale is not None and list(data.get("scales") or ()) != [scale]:
        return "scales"
    return None
