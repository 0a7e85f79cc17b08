"""Runs inside the target's Python: loads official checkpoints into a model's layers, saves a checkpoint, prints JSON.

``yamlforge.weights.load`` runs it as
``python weights_runner.py --target FACTS --yaml MODEL --load LOADS --output OUT``.
``LOADS`` is a JSON list of ``{"name", "checkpoint", "classes", "map"}``: a module's name, the official
checkpoint, the class names its layers have, and its spec's ``official:`` fields. The model is built by the
target's own code through verify_runner.py's facts-driven build; every layer whose class is one of ``classes``
is matched against the checkpoint (weightmap.py). Only when every layer of every module is filled is
``OUT`` written, as the target's trainer saves checkpoints (``checkpoint_fields``), so its trainer starts from it.
With ``--base BASE.pt`` (a checkpoint the target's trainer wrote) every row kept from the base model first gets the
base's tensors at its new index (yf_basecarry.py); nothing of the base fitting writes nothing.
Like its two siblings, this file imports nothing from yamlforge.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from pathlib import Path

if __package__:  # imported as yamlforge.runners.weights_runner (the tests): no stray folder on sys.path
    from . import verify_runner as runner
    from . import yf_basecarry as basecarry
    from . import yf_build, yf_facts, yf_train
    from .yf_weightmap import MappingError, WeightMap, unwrap_checkpoint
else:  # a script in the target's Python, where yamlforge may be missing: its own folder is sys.path[0]
    import verify_runner as runner
    import yf_basecarry as basecarry
    import yf_build
    import yf_facts
    import yf_train
    from yf_weightmap import MappingError, WeightMap, unwrap_checkpoint

SCHEMA = "yamlforge.weights/1"


def module_layers(model, classes: set[str]) -> list:
    """``(path, module)`` of every module of one of ``classes`` in the model, outermost only."""
    found: list = []
    for path, module in model.named_modules():
        if type(module).__name__ in classes and not any(path.startswith(f"{outer}.") for outer, _ in found):
            found.append((path, module))
    return found


def read_official(path: str) -> dict:
    """The official state_dict in ``path``; a file torch's safe loader refuses is a MappingError, never unpickled."""
    import torch

    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise MappingError(f"torch.load(weights_only=True) cannot read {Path(path).name}: {yf_facts.one_line(exc)}",
                           hint="if you trust the file, re-save its state_dict: torch.save(torch.load(F, "
                                "weights_only=False)['state_dict'], 'plain.pt')") from None
    return unwrap_checkpoint(checkpoint)


def match_layers(model, load: dict) -> tuple[dict, list]:
    """The official state_dict and ``(path, module, WeightReport)`` for each layer of the module."""
    official = read_official(load["checkpoint"])
    mapping = WeightMap.from_dict(load["map"])
    shapes = {key: tuple(tensor.shape) for key, tensor in official.items()}
    return official, [
        (path, module, mapping.match(shapes, {key: tuple(t.shape) for key, t in module.state_dict().items()}))
        for path, module in module_layers(model, set(load["classes"]))
    ]


def load_summary(load: dict, layers: list, error: MappingError | None) -> dict:
    """What the JSON says about one ``--load``: its layers' reports, or why the checkpoint was unusable."""
    summary = {"name": load["name"], "checkpoint": load["checkpoint"], "error": None, "hint": None, "layers": [
        {"path": path, "index": getattr(module, "i", None), "class": type(module).__name__, **report.to_dict()}
        for path, module, report in layers]}
    if error is not None:
        summary.update(error=str(error), hint=error.hint)
    return summary


def save_checkpoint(model, facts: dict, output: Path) -> None:
    """``{"model": a float copy, **checkpoint_fields}``, as the target's trainer saves one; renamed into place.

    Its parameters need no gradients, as in the trainers' finished checkpoints (strip_optimizer): the trainers
    build their own model and copy the weights in, and torch's attention takes its fused inference path (other
    rounding) only for such parameters, so OUT.pt computes bit for bit what the base's checkpoint computes."""
    import torch

    checkpoint = {"model": copy.deepcopy(model).float().requires_grad_(False), **dict(facts["checkpoint_fields"])}
    partial = output.with_name(output.name + ".partial")
    torch.save(checkpoint, partial)
    os.replace(partial, output)


def carry_base(args, facts: dict, model, cfg_dict: dict, report) -> dict | None:
    """``--base``: the base checkpoint's tensors of every kept row, reported in ``report.data["base"]``; None when
    nothing can be carried (the report says why)."""
    base = {"checkpoint": args.base, "error": None, "hint": None}
    report.data["base"] = base
    try:
        base_model = basecarry.read_base(args.base, facts)
    except basecarry.BaseError as exc:
        base.update(error=str(exc), hint=exc.hint)
        return None
    rows = [list(r) for section in ("backbone", "head") for r in cfg_dict.get(section) or []]
    summary, tensors = basecarry.carry(base_model, model, rows, Path(args.yaml).read_text(encoding="utf-8"))
    base.update(summary)
    return tensors if any(basecarry.layermap.fits_whole(row) for row in summary["rows"]) else None


def fill_and_save(args, facts: dict, model, report, carried: dict | None = None) -> None:
    """Match every ``--load``; when all layers are filled (and ``--base`` carried something), load the base's then
    the official tensors and write ``--output``."""
    matched = []
    for load in json.loads(args.load):
        try:
            matched.append((load, *match_layers(model, load), None))
        except MappingError as exc:
            matched.append((load, {}, [], exc))
    report.data["loads"] = [load_summary(load, layers, error) for load, _, layers, error in matched]
    if not all(layers and error is None and all(r.filled for *_, r in layers) for _, _, layers, error in matched):
        return
    if getattr(args, "base", None) and carried is None:
        return
    if carried:
        basecarry.load_carried(model, carried)
    for _, official, layers, _ in matched:
        for _, module, layer_report in layers:
            module.load_state_dict(layer_report.state_dict(official))
    save_checkpoint(model, facts, Path(args.output))
    report.data["written"] = args.output
    if yf_train.needs_legacy_load(facts):
        report.note(f"the checkout's loader predates torch's weights_only=True default: load {Path(args.output).name} "
                    f"with {yf_facts.LEGACY_LOAD_ENV}=1 (as yamlforge verify --train does), or pin torch<2.6")


def mode_weights(args, facts: dict) -> dict:
    root = Path(facts["root"]).resolve()
    report = yf_facts.Report(schema=SCHEMA, target={"kind": facts["kind"], "version": facts["version"],
                                                  "root": str(root)}, yaml=args.yaml, loads=[], written=None)
    yf_facts.put_checkout_on_path(facts["path_entry"])
    yf_facts.check_import(report, facts, root)
    model, cfg_dict = yf_build.build(report, facts, args.yaml, root) if report.data["imported"] else (None, None)
    if model is not None:
        carried = carry_base(args, facts, model, cfg_dict, report) if args.base else None
        fill_and_save(args, facts, model, report, carried)
    return report.data


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="the facts JSON of yamlforge's Target.runner_facts")
    parser.add_argument("--yaml", required=True)
    parser.add_argument("--load", default="[]", help="JSON list of {name, checkpoint, classes, map}")
    parser.add_argument("--base", help="a checkpoint of the base model the target's trainer wrote")
    parser.add_argument("--output", required=True)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return runner.serve(args.target, lambda facts: mode_weights(args, facts), SCHEMA)


if __name__ == "__main__":
    sys.exit(main())
