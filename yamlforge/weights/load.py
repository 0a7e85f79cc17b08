"""``yamlforge weights``: the paper's official weights into every layer of a module, as a checkpoint the trainer
starts from.

The matching itself (``official:`` rules, reports, checkpoint unwrapping) is :mod:`yamlforge.runners.yf_weightmap`,
which ``weights_runner.py`` runs in the target's Python next to the built model; this side parses ``--load``, runs
it (subprocess, timeout, one JSON object out) and renders what it found.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CheckFailed, InternalError, YamlforgeError
from ..runners.yf_weightmap import WeightMap, WeightReport, parse_official, unwrap_checkpoint
from ..target_python import RUNNERS, RunnerAnswer, resolve_python, run_runner
from .basereport import base_summary, raise_for_base, render_base

if TYPE_CHECKING:
    from ..specs import SpecRegistry
    from ..targets import Target

__all__ = ["Load", "WeightMap", "WeightReport", "WeightsResult", "load_weights", "parse_load", "parse_official",
           "render_weights", "unwrap_checkpoint"]

RUNNER = RUNNERS / "weights_runner.py"
TIMEOUT = 900  # seconds: one build of the model plus reading the checkpoints


@dataclass(frozen=True)
class Load:
    """One ``--load NAME=CHECKPOINT``: the module, its layers' class names and its official mapping."""

    name: str
    checkpoint: Path
    classes: tuple[str, ...]
    mapping: WeightMap

    def to_json(self) -> dict:
        return {"name": self.name, "checkpoint": str(self.checkpoint), "classes": list(self.classes),
                "map": self.mapping.to_dict()}


def parse_load(text: str, registry: SpecRegistry) -> Load:
    """``NAME=CHECKPOINT`` -> a :class:`Load`; the module must declare ``official:`` and the file must exist."""
    name, sep, path = text.partition("=")
    if not (sep and name and path):
        raise YamlforgeError(f"--load {text!r} is not NAME=CHECKPOINT", where="--load",
                             hint="--load RevCol=revcol_tiny_1k.pth")
    spec = registry.get(name, option="--load")
    if spec.official is None:
        raise YamlforgeError(f"module {spec.name} declares no official weights mapping", where=f"--load {name}",
                             hint=f"add an 'official:' section to {spec.spec_path.name} (see yamlforge/weightmap.py)")
    checkpoint = Path(path).expanduser()
    if not checkpoint.is_file():
        raise YamlforgeError(f"checkpoint '{path}' does not exist", where=f"--load {name}")
    return Load(spec.name, checkpoint.resolve(), spec.exports, spec.official)


@dataclass(frozen=True)
class WeightsResult:
    """The runner's answer: per ``--load`` the report of each layer; ``written`` when the checkpoint was saved."""

    yaml: str
    loads: list[dict]
    written: str | None
    notes: list[str]
    base: dict | None = None  # ``--base``: the layer map, every row's report, the freeze value

    @property
    def ok(self) -> bool:
        return self.written is not None

    @property
    def layers(self) -> list[tuple[dict, dict]]:
        """``(load, layer report)`` for every layer of every ``--load``, in the order they were given."""
        return [(load, layer) for load in self.loads for layer in load["layers"]]

    def to_json(self) -> str:
        return json.dumps({"schema": "yamlforge.weights/1", "ok": self.ok, "yaml": self.yaml,
                           "written": self.written, "base": self.base, "loads": self.loads, "notes": self.notes},
                          indent=2)


def load_weights(model: Path, target: Target, loads: list[Load], output: Path, *, base: Path | None = None,
                 python: str | None = None) -> WeightsResult:
    """Build ``model`` in ``target``; carry ``base``'s tensors into every row kept from it, fill every layer of
    each load's module, and write ``output`` when all are filled (and the base carried something).

    Raises YamlforgeError for bad input (an unreadable checkpoint, a base of which nothing fits, a module no layer
    uses, a model that does not build); an incomplete ``--load`` match is a result with ``ok`` False and nothing
    written.
    """
    from ..check.verify import resolve_yaml

    if not loads and base is None:
        raise YamlforgeError("nothing to load: give --base BASE.pt and/or --load NAME=CHECKPOINT", where="weights",
                             hint="yamlforge weights MODEL.yaml --repo R --base yolov8n.pt -o out.pt")
    if base is not None and not Path(base).is_file():
        raise YamlforgeError(f"checkpoint '{base}' does not exist", where="--base")
    yaml = resolve_yaml(model, target)
    if not output.resolve().parent.is_dir():
        raise YamlforgeError(f"folder '{output.parent}' does not exist", where="--output")
    args = ["--yaml", yaml, "--output", str(output.resolve()),
            "--load", json.dumps([load.to_json() for load in loads])]
    if base is not None:
        args += ["--base", str(Path(base).resolve())]
    answer = run_runner(RUNNER, args, python=resolve_python(python), timeout=TIMEOUT, target=target)
    _raise_for_answer(answer, Path(yaml).name)
    found = answer.data
    summary = None if found.get("base") is None else base_summary(found["base"], target)
    return WeightsResult(yaml, found["loads"], found["written"], found["notes"], summary)


def _raise_for_answer(answer: RunnerAnswer, model: str) -> None:
    """The runner's crash, a failed build, an unreadable checkpoint or a module no layer uses, as one error."""
    if not answer.ok:
        raise InternalError(f"the weights subprocess gave no result: {answer.reason(5)}")
    failed, found = answer.failed_check, answer.data
    if failed:  # a model the target cannot build (or import) is bad input to this command: nothing to load into
        error = YamlforgeError if failed["name"] == "build" else CheckFailed
        raise error(f"{failed['message']}; nothing was written", where=failed.get("where") or model,
                    hint=failed.get("hint"))
    if found.get("base") is not None:
        raise_for_base(found["base"], model)
    for load in found["loads"]:
        where = f"--load {load['name']}"
        if load["error"]:
            raise YamlforgeError(f"{load['error']}; nothing was written", where=where, hint=load["hint"])
        if not load["layers"]:
            raise YamlforgeError(f"{model} has no layer of {load['name']}; nothing was written", where=where,
                                 hint=f"yamlforge show {load['name']}  # the rows that use it")


def _problems(layer: dict, shown: int = 4) -> list[str]:
    """One line per kind of problem of a layer, naming its first keys."""
    def keys(items) -> str:
        items = list(items)
        return ", ".join(items[:shown]) + (f", ... ({len(items)} in all)" if len(items) > shown else "")

    lines = [f"missing: {keys(layer['missing'])}"] if layer["missing"] else []
    if layer["mismatched"]:
        lines.append("shape: " + keys(f"{k} official {tuple(a)} ours {tuple(b)}"
                                      for k, (a, b) in layer["mismatched"].items()))
    if layer["unexpected"]:
        lines.append(f"unused official: {keys(layer['unexpected'])}")
    return lines


def _refusal(load: dict, layer: dict) -> str:
    """Why ``load`` cannot fill ``layer``, in one line: a checkpoint of another module or of another width."""
    total = len(layer["matched"]) + len(layer["missing"]) + len(layer["mismatched"])
    if layer["mismatched"]:
        why = f"{len(layer['mismatched'])} tensor(s) of another shape: another width or configuration?"
    elif not layer["matched"]:
        why = f"none of its names are {load['name']}'s: a checkpoint of another module?"
    else:
        why = f"{len(layer['missing'])} tensor(s) missing"
    return (f"{Path(load['checkpoint']).name} fills {len(layer['matched'])} of the {total} tensors of "
            f"{load['name']} at layer {_layer_name(layer)}; {why}")


def _layer_name(layer: dict) -> str:
    """The YAML row index of a model layer; the module path of one nested in a layer (a fused host's block)."""
    return layer["path"] if layer["index"] is None else str(layer["index"])


def render_weights(result: WeightsResult, output: Path, console=None) -> None:
    """The base's table (``--base``), a row per filled layer (``--load``) with its problem keys, one summary line."""
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(stderr=True, soft_wrap=True, highlight=False)
    if result.base is not None:
        render_base(result.base, result.yaml, console)
    if result.loads:
        _render_loads(result, console)
    for note in result.notes:
        console.print(f"note: {escape(note)}")
    if result.ok:
        carried = sum(len(row["carried"]) for row in result.base["rows"]) if result.base else 0
        what = [f"{carried} base tensor(s)"] if result.base else []
        what += [f"{len(result.layers)} layer(s) filled"] if result.loads else []
        console.print(f"[bold green]create[/]   {escape(str(output))} ({', '.join(what)})")
        return
    for load, layer in result.layers:
        if layer["missing"] or layer["mismatched"]:
            console.print(f"[bold red]error:[/] {escape(_refusal(load, layer))}")
    console.print("nothing was written")


def _render_loads(result: WeightsResult, console) -> None:
    """The ``--load`` table: a row per layer of each module, then its problem keys."""
    from rich.markup import escape
    from rich.table import Table

    table = Table("layer", "module", "matched", "missing", "unexpected", "shape-mismatched", box=None,
                  pad_edge=False, title=f"official weights into {escape(Path(result.yaml).name)}")
    for _, layer in result.layers:
        table.add_row(_layer_name(layer), escape(layer["class"]), *(str(len(layer[kind])) for kind in
                                                                    ("matched", "missing", "unexpected", "mismatched")))
    console.print(table)
    for _, layer in result.layers:
        for line in _problems(layer):
            console.print(f"  layer {_layer_name(layer)}: {escape(line)}")
