"""Recipes: a gen-yaml call kept in a YAML file (base, backbone, edits, scale, nc), read into layer edits."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..errors import YamlforgeError
from .edits import EDIT_OPS, LayerEdit, parse_backbone, parse_edit
from .load import entry, load_nodes

RECIPE_KEYS = ("base", "edits", "scale", "nc", "backbone")


@dataclass
class Recipe:
    """A reproducible gen-yaml call: ``base``, ``backbone`` (``MODULE(args)``), ``edits`` (list of
    ``{kind: "N=MODULE(...)"}``), ``scale``, ``nc``."""

    path: Path
    base: str | None = None
    backbone: LayerEdit | None = None
    edits: list[LayerEdit] = field(default_factory=list)
    scale: str | None = None
    nc: int | None = None


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlforgeError(f"cannot read recipe: {exc.strerror}", where="--recipe") from None
    data, node = load_nodes(text, where=str(path), what="recipe YAML")
    if not isinstance(data, dict):
        raise YamlforgeError("a recipe is a mapping with base and edits", where=f"{path}:1")

    def line(key) -> str:
        found = entry(node, key)
        return f"{path}:{found[0].start_mark.line + 1 if found else 1}"

    for key in data:
        if key not in RECIPE_KEYS:
            raise YamlforgeError(f"unknown recipe key '{key}' (known: {', '.join(RECIPE_KEYS)})", where=line(key))
    recipe = Recipe(path=path.resolve(), base=None if data.get("base") is None else str(data["base"]),
                    scale=data.get("scale"), nc=data.get("nc"))
    if data.get("backbone") is not None:
        value = data["backbone"]
        if not isinstance(value, str):
            raise YamlforgeError("recipe key 'backbone' is one module, e.g. 'backbone: revcol_small' or "
                                 "'backbone: revcol_tiny(save_memory=False)'", where=line("backbone"))
        recipe.backbone = parse_backbone(value, f"{line('backbone')} (backbone: {value})")
    if recipe.nc is not None and (not isinstance(recipe.nc, int) or isinstance(recipe.nc, bool) or recipe.nc < 1):
        raise YamlforgeError("recipe key 'nc' must be a positive whole number", where=line("nc"))
    recipe.edits = _recipe_edits(path, data, node, line)
    return recipe


def _recipe_edits(path: Path, data: dict, node, line) -> list[LayerEdit]:
    """The recipe's ``edits:`` list, each error naming its line and entry."""
    edits = data.get("edits") or []
    if not isinstance(edits, list):
        raise YamlforgeError("recipe key 'edits' must be a list of {kind: value}", where=line("edits"))
    parsed = []
    for item, item_node in zip(edits, entry(node, "edits")[1].value if edits else ()):
        where = f"{path}:{item_node.start_mark.line + 1}"
        if not isinstance(item, dict) or len(item) != 1:
            raise YamlforgeError("each edit is one '<kind>: <value>' pair, e.g. 'insert-after: 3=SHSA'", where=where)
        (op, value), = item.items()
        if op not in EDIT_OPS:
            raise YamlforgeError(f"unknown edit '{op}' (known: {', '.join(EDIT_OPS)})", where=where)
        try:
            parsed.append(parse_edit(op, value))
        except YamlforgeError as exc:
            raise YamlforgeError(exc.message, where=f"{where} ({op}: {value})", hint=exc.hint) from None
    return parsed
