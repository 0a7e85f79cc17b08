"""``yamlforge graph``: a model YAML as a Graphviz picture, one node per row with its build facts, edits highlighted."""

from __future__ import annotations

import difflib
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import Any

from ..errors import YamlforgeError
from ..modelyaml.graph import INPUT, SECTIONS, Layer, ModelGraph, from_values, slot_label
from ..modelyaml.layout import ModelLayout
from ..modelyaml.strides import stride_label
from ..resources import render as render_template
from ..target_python import last_lines

TEMPLATE = "graph/model.dot.j2"
FORMATS = ("svg", "png", "pdf")
# Which ``dot`` the ``graphviz`` package runs, in order: a real Graphviz draws every format; graphviz-pure (pip, a
# Rust port installed as ``graphviz-pure``, not ``dot``) draws no PDF.
RENDERERS = (("dot", FORMATS), ("graphviz-pure", ("svg", "png")))
STATUS_COLORS = {"new": "#b8e6b0", "replaced": "#fdd49e", "rewired": "#c6dbef"}
ARGS_WIDTH = 32  # characters of a row's args shown under its module
# The first line gen-yaml writes into its output (proposed): ``# yamlforge: gen-yaml base=rtdetr-l``.
RECORDED_BASE = re.compile(r"\A#\s*yamlforge:\s*gen-yaml\s+base=(\S+)")


@dataclass(frozen=True)
class Edge:
    """One ``from`` entry: the producer's node and output port, and whether it differs from the base."""

    producer: str
    port: int
    changed: bool = False


@dataclass(frozen=True)
class Node:
    """A YAML row as drawn: its slot, what it runs, one label per output, and how it differs from the base."""

    name: str
    slot: str
    section: str
    module: str
    repeats: str
    args: str
    outputs: list[str]
    inputs: list[Edge]
    status: str | None = None


@dataclass
class Comparison:
    """How the model's rows differ from the base's: status by row, changed ``from`` entries, removed base rows."""

    base_name: str
    status: dict[int, str] = field(default_factory=dict)
    changed_refs: set[tuple[int, int]] = field(default_factory=set)  # (row, position in its from)
    removed: int = 0


# ---------------------------------------------------------------- reading the model and the base


@lru_cache(maxsize=1)
def _backbone_specs() -> dict:
    """Every name of a bundled backbone-role spec -> its spec."""
    from ..specs import SpecRegistry

    return {name: spec for spec in SpecRegistry() if spec.role == "backbone" for name in (spec.name, *spec.exports)}


def _slots(module: str, args: list | None = None) -> int:
    """Index slots a row takes: the outputs of a backbone spec (for its args), else 1 (as gen-yaml counts them)."""
    spec = _backbone_specs().get(module)
    return 1 if spec is None else len(spec.strides_of(args))


def read_model(path: Path) -> tuple[str, ModelGraph]:
    """The text of a model YAML and its layer graph; an unreadable file is one error naming it."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlforgeError(f"cannot read the model YAML: {exc}", where=str(path),
                             hint="pass a model YAML (yamlforge gen-yaml writes one)") from None
    return text, ModelLayout(text, where=str(path)).graph(_slots)


def recorded_base(text: str) -> str | None:
    """The base gen-yaml recorded on the file's first line, if it did."""
    found = RECORDED_BASE.match(text)
    return found.group(1) if found else None


def find_base(model_yaml: Path, text: str, target, base: Path | str | None) -> Path | None:
    """``--base`` (a path or a name the target resolves), else the base gen-yaml recorded; None when neither."""
    from ..modelyaml.base import resolve_base

    name = base if base is not None else recorded_base(text)
    if name is None:
        return None
    return resolve_base(str(name), target, relative_to=model_yaml.resolve().parent).path


def _signature(layer: Layer) -> tuple[str, str, str]:
    return layer.module, str(layer.repeats), repr(layer.args)


def compare(model: ModelGraph, base: ModelGraph, base_name: str) -> Comparison:
    """Align the rows by what they run, then compare each kept row's ``from`` through the alignment.

    A ``from`` entry reading another row than in the base is drawn as a changed edge; its row counts as rewired, as in
    gen-yaml's table, only when its written ``from`` changed too (not a ``-1`` that now reads an inserted row).
    """
    result = Comparison(base_name)
    to_model = _align(model.base, base.base, result)
    for i, j in ((i, j) for i, j in to_model.items() if i != INPUT):
        expected = [(to_model.get(r.producer), r.output) for r in base.base[i].refs]
        refs = model.base[j].refs
        moved = {k for k, r in enumerate(refs) if expected[k:k + 1] != [(r.producer, r.output)]}
        result.changed_refs.update((j, k) for k in moved)
        if (moved or len(expected) != len(refs)) and _written_from(model, j) != _written_from(base, i):
            result.status.setdefault(j, "rewired")
    return result


def _align(rows: list[Layer], old: list[Layer], result: Comparison) -> dict[Any, Any]:
    """Base row -> model row by difflib on (module, repeats, args); unpaired model rows are new, pairs that differ
    replaced (in ``result``). Returns the pairing, the image input included."""
    matcher = difflib.SequenceMatcher(None, [_signature(x) for x in old], [_signature(x) for x in rows],
                                      autojunk=False)
    to_model: dict[Any, Any] = {INPUT: INPUT}
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        paired = tag == "equal" or (tag == "replace" and i2 - i1 == j2 - j1)
        if paired:
            to_model.update(zip(range(i1, i2), range(j1, j2)))
        if tag != "equal":
            result.status.update(dict.fromkeys(range(j1, j2), "replaced" if paired else "new"))
            result.removed += 0 if paired else i2 - i1
    return to_model


def _written_from(graph: ModelGraph, key: int) -> list[int]:
    return from_values(graph.base[key], graph.base_slot[key], graph.base_slot | {INPUT: -1})


# ---------------------------------------------------------------- build facts


def build_facts(model_yaml: Path, target, *, imgsz: int = 128, python: str | None = None) -> list[dict]:
    """The graph facts of a real build of ``model_yaml`` in ``target``; a model that does not build is an error.

    ``imgsz`` 128 is the smallest size every recipe model runs at (RT-DETR on 8.0 needs 300 anchors); channels and
    strides do not depend on it.
    """
    from .verify import verify

    report = verify(model_yaml, target, imgsz=imgsz, python=python)
    failed = next((c for c in report.checks if c.status == "fail" and c.name in ("runner", "import", "build",
                                                                                    "forward")), None)
    if failed is not None:
        raise YamlforgeError(f"{Path(report.yaml).name} does not build in {target.label}: {failed.message}",
                             where=failed.where or str(model_yaml),
                             hint=failed.hint or f"yamlforge verify {model_yaml} --repo {target.root}")
    return report_facts(report)


def report_facts(report) -> list[dict]:
    """A verify report's per-layer table as graph facts: a multi-output row's ``stride`` becomes one stride per output
    (the runner gives None for a list of maps), computed from the report's image size."""
    facts = []
    for row in report.layers:
        shapes = row.get("shape")
        if row.get("stride") is None and _is_shape_list(shapes):
            row = row | {"stride": [_ratio(report.imgsz, s[-1]) for s in shapes]}
        facts.append(row)
    return facts


def _is_shape(shape: Any) -> bool:
    return isinstance(shape, list) and len(shape) == 4 and all(isinstance(d, int) for d in shape)


def _is_shape_list(shapes: Any) -> bool:
    return isinstance(shapes, list) and len(shapes) > 1 and all(_is_shape(s) for s in shapes)


def _ratio(imgsz: int, width: int) -> Fraction | None:
    return Fraction(imgsz, width) if width else None


def output_labels(row: dict | None, outputs: int) -> list[str]:
    """``512 · P3/8`` per output of a facts row (channels, stride level); blanks where the build says nothing."""
    if row is None:
        return [""] * outputs
    shape, stride = row.get("shape"), row.get("stride")
    if outputs > 1 and _is_shape_list(shape) and isinstance(stride, list) and len(shape) == outputs:
        return [_output_label(s, st) for s, st in zip(shape, stride)]
    if outputs == 1 and _is_shape(shape):
        return [_output_label(shape, stride)]
    if outputs == 1 and isinstance(shape, list) and shape and all(isinstance(d, int) for d in shape):
        return ["×".join(map(str, shape[1:]))]
    return [""] * outputs


def _output_label(shape: list[int], stride: Any) -> str:
    # the runner rounds a stride that is not a whole number to 3 decimals: 3.2 is 16/5
    return f"{shape[1]} · {stride_label(Fraction(stride).limit_denominator(1000)) if stride is not None else '?'}"


# ---------------------------------------------------------------- the document


def _short_args(layer: Layer) -> str:
    text = layer.args_text.strip()
    text = text[1:-1] if text.startswith("[") and text.endswith("]") else text
    return text if len(text) <= ARGS_WIDTH else text[:ARGS_WIDTH - 1] + "…"


def model_nodes(graph: ModelGraph, facts: list[dict] | None, comparison: Comparison | None) -> list[Node]:
    """One node per row, in order, with its inputs as edges from the producers' output ports."""
    by_slot = {row["index"]: row for row in facts or []}
    comparison = comparison or Comparison("")
    nodes = []
    for layer in graph.base:
        slot, status = graph.base_slot[layer.key], comparison.status.get(layer.key)
        inputs = [Edge("input" if r.producer == INPUT else f"n{graph.base_slot[r.producer]}", r.output,
                       status == "new" or (layer.key, j) in comparison.changed_refs)
                  for j, r in enumerate(layer.refs)]
        repeats = "" if str(layer.repeats) == "1" else f"×{layer.repeats}"
        nodes.append(Node(f"n{slot}", slot_label(slot, layer.outputs), layer.section, layer.module,
                          repeats, _short_args(layer), output_labels(by_slot.get(slot), layer.outputs), inputs,
                          status))
    return nodes


def graph_document(model_yaml: Path, target, *, base: Path | str | None = None,
                   facts: list[dict] | None = None) -> str:
    """The DOT text of ``model_yaml``: rows as nodes (with ``facts``, the verify runner's layer table, on them),
    backbone and head as clusters, and rows that differ from ``base`` (default: gen-yaml's record) highlighted."""
    model_yaml = Path(model_yaml)
    text, graph = read_model(model_yaml)
    base_path = find_base(model_yaml, text, target, base)
    comparison = None
    if base_path is not None:
        comparison = compare(graph, read_model(base_path)[1], base_path.name)
    nodes = model_nodes(graph, facts, comparison)
    used = {n.status for n in nodes if n.status}
    legend = [(s, c) for s, c in STATUS_COLORS.items() if s in used]
    return render_template(TEMPLATE, title=model_yaml.name, target=target.label,
                           sections=[(s, [n for n in nodes if n.section == s]) for s in SECTIONS],
                           nodes=nodes, colors=STATUS_COLORS, legend=legend, comparison=comparison)


# ---------------------------------------------------------------- rendering


def find_renderer() -> tuple[Path, tuple[str, ...]] | None:
    """A Graphviz ``dot`` (next to this Python, then on PATH) and what it draws, else the pip-installed port."""
    for name, formats in RENDERERS:
        for found in (Path(sys.executable).parent / name, shutil.which(name)):
            if found is not None and Path(found).is_file():
                return Path(found), formats
    return None


@contextmanager
def _dot_first_on_path(binary: Path) -> Iterator[None]:
    """``binary`` as the ``dot`` the ``graphviz`` package runs (it always runs ``dot`` from PATH): its directory,
    or for graphviz-pure a private one linking it as ``dot``, first on PATH until the block ends."""
    saved = os.environ.get("PATH")
    with tempfile.TemporaryDirectory(prefix="yamlforge-dot-") as private:
        directory = binary.parent
        if binary.name != "dot":
            directory = Path(private)
            (directory / "dot").symlink_to(binary.resolve())
        os.environ["PATH"] = os.pathsep.join(filter(None, (str(directory), saved)))
        try:
            yield
        finally:
            if saved is None:
                os.environ.pop("PATH", None)
            else:
                os.environ["PATH"] = saved


def layout(dot: str, fmt: str, *, name: str = "the graph") -> bytes:
    """``dot`` laid out by Graphviz through the ``graphviz`` package in format ``fmt`` (svg, png, pdf, json0...).

    ``name`` is what the errors call the picture. The package has no timeout: ``dot`` lays out a 60-row model in
    well under a second, and a Ctrl-C stops it.
    """
    binary = _renderer_for(fmt, name)
    graphviz = _graphviz_package()
    try:
        with _dot_first_on_path(binary):
            return graphviz.pipe("dot", fmt, dot.encode(), quiet=True)
    except graphviz.ExecutableNotFound:
        raise YamlforgeError(f"{binary} could not be run to draw {name}", where="-o",
                             hint=f"{sys.executable} -m pip install graphviz-pure  # or -o {Path(name).stem}.dot"
                             ) from None
    except graphviz.CalledProcessError as exc:
        message = last_lines((exc.stderr or b"").decode(errors="replace"), 1, empty="no message")
        raise YamlforgeError(f"{binary} could not draw {name}: {message}", where="-o",
                             hint=f"-o {Path(name).stem}.dot writes the graph without Graphviz") from None


def _renderer_for(fmt: str, name: str) -> Path:
    """The ``dot`` to draw ``fmt`` with; none, or graphviz-pure asked for a PDF, is one error."""
    renderer = find_renderer()
    if renderer is None:
        raise YamlforgeError(f"no Graphviz to draw {name} with", where="-o",
                             hint=f"{sys.executable} -m pip install graphviz-pure  # or -o {Path(name).stem}.dot")
    binary, formats = renderer
    if fmt in FORMATS and fmt not in formats:
        raise YamlforgeError(f"{binary.name} draws {', '.join('.' + f for f in formats)}, not .{fmt}", where="-o",
                             hint=f"-o {Path(name).stem}.svg, or install a system Graphviz (apt-get install graphviz)")
    return binary


def _graphviz_package():
    """The ``graphviz`` package (the ``graph`` extra); missing, it is one error saying how to install it."""
    try:
        import graphviz
    except ImportError:
        raise YamlforgeError("drawing needs the graphviz package", where="-o",
                             hint=f"{sys.executable} -m pip install graphviz graphviz-pure  # or -o x.dot") from None
    return graphviz


def draw(model: Path, target, output: Path, *, base: Path | str | None = None, python: str | None = None) -> Path:
    """Build ``model`` in ``target`` (in ``python``), draw it against ``base`` and render it to ``output``."""
    return render(graph_document(model, target, base=base, facts=build_facts(model, target, python=python)), output)


def render(dot: str, out: Path) -> Path:
    """Write ``dot`` to ``out`` as .dot text, or laid out by Graphviz as .svg, .png or .pdf."""
    out = Path(out)
    fmt = out.suffix.lstrip(".").lower()
    if fmt == "dot":
        out.write_text(dot, encoding="utf-8")
        return out
    if fmt not in FORMATS:
        raise YamlforgeError(f"cannot draw '{out.name}': the picture is .svg, .png, .pdf or .dot", where="-o")
    out.write_bytes(layout(dot, fmt, name=out.name))
    return out
