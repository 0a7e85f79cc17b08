"""Runs inside the target's Python: carries a base model's trained tensors into an edited model, row by row.

Every tensor of a base row the layer map keeps unchanged goes to the new row's index (``model.16.`` ->
``model.17.``); a report per row says what was carried, what is new, replaced or of another shape. The base comes
from a checkpoint the target's trainer wrote: its model object (``checkpoint_models``: the EMA copy first, as the
trainers' own loaders take it) holds the YAML it was built from, whose rows are aligned with the edited model's.
"""

from __future__ import annotations

from pathlib import Path

if __package__:  # imported as yamlforge.runners.yf_basecarry (the tests)
    from . import yf_layermap as layermap
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_layermap as layermap


class BaseError(ValueError):
    """A base checkpoint that cannot be used (unreadable, no model, another family); has a ``hint``."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


def read_base(path: str, facts: dict):
    """The model object in a trainer's checkpoint at ``path``; BaseError naming why not."""
    import torch

    name = Path(path).name
    try:  # the user's own training output: its pickled model object is what the trainers' loaders read too
        checkpoint = torch.load(path, map_location="cpu", weights_only=False)
    except ModuleNotFoundError as exc:
        raise BaseError(f"{name} is a checkpoint of another model family (it needs the module '{exc.name}', "
                        f"which this {facts['kind']} checkout does not have)",
                        hint="pass a checkpoint the same kind of checkout trained") from None
    except Exception as exc:  # a text file, a truncated download, a zip of something else
        raise BaseError(f"{name} is not a checkpoint torch can read ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0] if str(exc) else 'no detail'})",
                        hint="pass the .pt the trainer wrote (runs/.../weights/best.pt or last.pt)") from None
    fields = checkpoint if isinstance(checkpoint, dict) else {}
    model = next((fields[f] for f in facts["checkpoint_models"] if hasattr(fields.get(f), "state_dict")), None)
    if model is None or not layermap.yaml_rows(getattr(model, "yaml", None)) or not hasattr(model, "model"):
        raise BaseError(f"{name} holds no model the target's trainer saved (no "
                        f"{' / '.join(repr(f) for f in facts['checkpoint_models'])} model object with its YAML)",
                        hint="pass the .pt the trainer wrote, not a bare state_dict")
    return model


def child_names(model) -> list[str]:
    """The names of the model's layers in ``model.model`` (the state_dict's ``model.<name>.``), in row order."""
    return [name for name, _ in model.model.named_children()]


def row_of(key: str, prefixes: dict[str, int]) -> int | None:
    """The row whose ``model.<name>.`` prefixes ``key``; None for a key outside the layers."""
    head, _, rest = key.partition(".")
    name = rest.partition(".")[0]
    return prefixes.get(f"{head}.{name}.") if head == "model" else None


def carry_row(base_state: dict, new_state: dict, src: str, dst: str) -> dict:
    """One kept row: its base tensors renamed ``src`` -> ``dst``, and those of another shape or with no place."""
    carried, mismatched, unexpected = {}, {}, []
    for key, tensor in base_state.items():
        if not key.startswith(src):
            continue
        ours = dst + key[len(src):]
        if ours not in new_state:
            unexpected.append(key)
        elif tuple(new_state[ours].shape) == tuple(tensor.shape):
            carried[ours] = key
        else:
            mismatched[ours] = (tuple(tensor.shape), tuple(new_state[ours].shape))
    if all(not tuple(new_state[k].shape) for k in carried):  # BatchNorm's step counters fit any row: not a match
        carried = {}
    missing = [k for k in new_state if k.startswith(dst) and k not in carried and k not in mismatched]
    return {"carried": carried, "mismatched": mismatched, "missing": missing, "unexpected": unexpected}


def carry(base_model, new_model, new_rows: list, yaml_text: str) -> tuple[dict, dict]:
    """(the report of every row, {our key: base tensor} to load); the layer map is recorded or aligned."""
    base_rows = layermap.yaml_rows(base_model.yaml)
    mapping, why = layermap.layer_map(base_rows, new_rows, yaml_text)
    base_names, new_names = child_names(base_model), child_names(new_model)
    base_state = base_model.float().state_dict()
    new_state = new_model.state_dict()
    rows, tensors = [], {}
    for j, row in enumerate(new_rows):
        entry = {"index": j, "module": row[2], "base": None, "status": "new", "carried": {}, "mismatched": {},
                 "missing": [k for k in new_state if k.startswith(layermap.row_prefix(j, new_names))],
                 "unexpected": [], "dropped": 0}
        rows.append(entry)
    for old, now in mapping.carried.items():
        report = carry_row(base_state, new_state, layermap.row_prefix(old, base_names),
                           layermap.row_prefix(now, new_names))
        rows[now].update(base=old, status="carried", **report)
        tensors.update({ours: base_state[key] for ours, key in report["carried"].items()})
    for old, now in mapping.replaced.items():
        dropped = [k for k in base_state if k.startswith(layermap.row_prefix(old, base_names))]
        rows[now].update(base=old, status="replaced", dropped=len(dropped))
    outside = carry_outside_rows(base_state, new_state, base_names)
    tensors.update(outside)
    summary = {"map": mapping.to_dict(), "map_note": why, "rows": rows, "outside": sorted(outside),
               "backbone_rows": len((base_model.yaml or {}).get("backbone") or []),
               "base_scale": (base_model.yaml or {}).get("scale"),
               "removed": [{"base": i, "module": base_rows[i][2]} for i in mapping.removed]}
    return summary, tensors


def carry_outside_rows(base_state: dict, new_state: dict, base_names: list[str]) -> dict:
    """Whole-model tensors outside ``model.<row>.`` (none in the stock models): same name and shape only."""
    prefixes = {layermap.row_prefix(i, base_names): i for i in range(len(base_names))}
    return {key: tensor for key, tensor in base_state.items()
            if row_of(key, prefixes) is None and key in new_state
            and tuple(new_state[key].shape) == tuple(tensor.shape)}


def load_carried(model, tensors: dict) -> None:
    """Copy the carried tensors into the model (everything else keeps its fresh initialisation)."""
    state = model.state_dict()
    state.update(tensors)
    model.load_state_dict(state)
