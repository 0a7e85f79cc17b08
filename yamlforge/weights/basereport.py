"""``weights --base``: what the runner carried from the base checkpoint, judged (nothing carried is an error) and
rendered as a row per layer, with the freeze value that freezes the same base layers in the edited model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import YamlforgeError
from ..runners.yf_layermap import LayerMap, fits_whole

if TYPE_CHECKING:
    from ..targets import Target

__all__ = ["base_summary", "freeze_text", "raise_for_base", "render_base"]


def freeze_text(value: int | list[int], syntax: tuple[str, str, str]) -> str:
    """The trainer's option for ``value``: ``freeze=10``, ``freeze=[0, 1, 3]``, ``--freeze 0 1 3``. A one-item list
    is written twice: YOLOv5-style ``--freeze`` reads a single number as a count."""
    count, listed, separator = syntax
    if isinstance(value, int):
        return count.format(value)
    return listed.format(separator.join(str(i) for i in (value * 2 if len(value) == 1 else value)))


def base_summary(summary: dict, target: Target) -> dict:
    """The runner's ``base`` answer plus ``freeze``: the base's backbone frozen as a count there and here."""
    mapping = LayerMap.from_dict(summary["map"])
    count = summary["backbone_rows"]
    syntax = target.kind.runtime.freeze_syntax
    value = mapping.freeze(count)
    return {**summary, "freeze": {"base": count, "base_option": freeze_text(count, syntax), "value": value,
                                  "option": freeze_text(value, syntax)}}


def raise_for_base(base: dict, model: str) -> None:
    """An unusable base checkpoint, or one of which nothing fits the model, as one error naming the likely cause."""
    name = Path(base["checkpoint"]).name
    if base["error"]:
        raise YamlforgeError(f"{base['error']}; nothing was written", where="--base", hint=base["hint"])
    if any(fits_whole(row) for row in base["rows"]):
        return
    kept = [row for row in base["rows"] if row["status"] == "carried"]
    if len(kept) * 2 < base["map"]["base_rows"]:  # most base rows have no counterpart: not the model's base
        raise YamlforgeError(f"nothing of {name} fits {model}: {len(kept)} of its {base['map']['base_rows']} rows "
                             "are rows of the model, and none of their weights fit: a checkpoint of another base "
                             "model? Nothing was written", where="--base",
                             hint="pass the checkpoint of the model gen-yaml started from (its first line names it)")
    scale = f" (it was trained at scale '{base['base_scale']}')" if base.get("base_scale") else ""
    raise YamlforgeError(f"none of the {len(kept)} rows {model} kept from {name} fits whole, their tensors have "
                         f"another shape: a checkpoint of another scale{scale}? Nothing was written", where="--base",
                         hint="train or pick the base at the scale the model builds, or gen-yaml --scale")


def _mismatch_cause(row: dict, last: int) -> str:
    return "nc differs?" if row["index"] == last else "a width changed upstream?"


def render_base(base: dict, yaml: str, console) -> None:
    """A row per layer (base -> new, status, tensors carried / of another shape / fresh), then warnings and notes."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("layer", "base", "module", "status", "carried", "shape-mismatched", "fresh", box=None,
                  pad_edge=False, title=f"{escape(Path(base['checkpoint']).name)} into {escape(Path(yaml).name)}")
    for row in base["rows"]:
        old = "" if row["base"] is None else str(row["base"])
        table.add_row(str(row["index"]), old, escape(row["module"]), row["status"], str(len(row["carried"])),
                      str(len(row["mismatched"])), str(len(row["missing"])))
    console.print(table)
    for removed in base["removed"]:
        console.print(f"  base layer {removed['base']} ({escape(removed['module'])}): removed, its weights dropped")
    last = len(base["rows"]) - 1
    for row in base["rows"]:
        if row["mismatched"]:
            key, (was, now) = next(iter(row["mismatched"].items()))
            console.print(f"[yellow]warning:[/] layer {row['index']}: {len(row['mismatched'])} tensor(s) of another "
                          f"shape, e.g. {escape(key)} base {tuple(was)} ours {tuple(now)} "
                          f"({_mismatch_cause(row, last)})"
                          "; they start fresh")
    if base["map_note"]:
        console.print(f"note: {escape(base['map_note'])}")
    freeze = base["freeze"]
    console.print(f"freeze: the base's {freeze['base']} backbone layers ({escape(freeze['base_option'])} there) are "
                  f"{escape(freeze['option'])} here")
