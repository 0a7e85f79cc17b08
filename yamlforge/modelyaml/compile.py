"""gen-yaml: resolve a base model YAML, apply layer edits (CLI or recipe), validate, and produce the new text."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import YamlforgeError
from ..targets import Target
from .backbone import swap_backbone
from .base import Base, find_target, resolve_base
from .edits import LayerEdit, ReplaceAll
from .graph import ModelGraph, RowChange, output_strides
from .layout import ModelLayout
from .modules import RESIDUAL_WRAPPER, ModuleResolver, check_residual, edit_args, residual_args
from .naming import output_path
from .recipe import Recipe, load_recipe
from .reload import reload_check
from .scale import apply_scale, set_nc
from .strides import check_strides, layer_factor
from .widths import check_constraints

# The first line of every gen-yaml output: the model it was made from (``yamlforge graph`` reads it)
BASE_RECORD = "# yamlforge: gen-yaml base={base}\n"
RECORDED_BASE = re.compile(r"\A#\s*yamlforge:\s*gen-yaml\s+base=(\S+)[^\n]*\n")


@dataclass
class GenResult:
    """What gen-yaml would write: nothing on disk changes until :func:`write_result`."""

    base_path: Path
    output_path: Path
    old_text: str
    new_text: str
    rows: list[RowChange]
    root: Path | None  # checkout root, for relative display paths
    exists: bool  # the output file already exists (only with force)

    def display(self, path: Path) -> str:
        if self.root is not None and path.is_relative_to(self.root):
            return path.relative_to(self.root).as_posix()
        return str(path)

    def diff(self) -> str:
        """Unified diff of the base against the output, ``a/``/``b/`` headers."""
        from ..patch.changeset import unified_diff

        return unified_diff(self.old_text, self.new_text, f"a/{self.display(self.base_path)}",
                            f"b/{self.display(self.output_path)}")


def render_rows(result: GenResult) -> str:
    """The rows gen-yaml changed as an aligned table (layer, from, n, module, args, status), two-space indented."""
    header = ("layer", "from", "n", "module", "args", "")
    body = [(str(r.index), r.source, r.repeats, r.module, r.args, r.status) for r in result.rows]
    widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
    return "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                     for row in [header, *body])


@dataclass
class GenRequest:
    base: str | None
    edits: list[LayerEdit] = field(default_factory=list)
    backbone: LayerEdit | None = None  # parse_backbone(...): replaces the whole backbone section, before the edits
    replace_all: list[ReplaceAll] = field(default_factory=list)  # after the backbone swap, before the edits
    repo: Path | None = None
    output: Path | None = None
    scale: str | None = None
    nc: int | None = None
    recipe: Path | None = None
    spec_paths: tuple[Path, ...] = ()
    allow_stride_change: bool = False
    force: bool = False
    dry_run: bool = False
    python: str | None = None  # the target's Python, asked about a timm backbone


class MergedRequest(NamedTuple):
    """A gen-yaml call with its recipe merged in (the command line wins), its checkout found and its base read."""

    target: Target
    base: Base
    old_text: str
    edits: list[LayerEdit]
    backbone: LayerEdit | None
    scale: str | None
    nc: int | None


def merge_request(request: GenRequest) -> MergedRequest:
    """Merge the recipe (the command line wins), find the checkout and the base, and read the base."""
    recipe = load_recipe(request.recipe) if request.recipe else Recipe(path=Path.cwd())
    base_name = request.base or recipe.base
    if not base_name:
        raise YamlforgeError("no base model: give BASE or a recipe with 'base:'", where="BASE")
    nc = request.nc if request.nc is not None else recipe.nc
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 1):
        raise YamlforgeError(f"--nc must be a positive whole number, got {nc}", where="--nc")
    relative_to = recipe.path.parent if request.recipe else None
    target = find_target(request.repo, base_name, relative_to)
    base = resolve_base(base_name, target, relative_to=relative_to, python=request.python)
    try:
        old_text = base.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlforgeError(f"cannot read the base: {exc}", where=str(base.path)) from None
    return MergedRequest(target, base, old_text, recipe.edits + list(request.edits),
                         request.backbone or recipe.backbone, request.scale or recipe.scale, nc)


def compile_yaml(request: GenRequest) -> GenResult:
    """Everything gen-yaml does short of writing: resolve, edit, validate, name the output."""
    merged = merge_request(request)
    modules = ModuleResolver(merged.target, request.spec_paths)
    layout = ModelLayout(merged.old_text, where=str(merged.base.path))
    graph = layout.graph(modules.outputs)
    in_base = _specs_in_base(graph, modules)
    specs: dict[str, Any] = {name: spec for name, (spec, _, _) in in_base.items()}
    base_strides = output_strides(graph.base, lambda layer: layer_factor(layer, specs),
                                  merged.target.kind.stride_from_last_input)
    to_apply = _apply_edits(graph, merged, request, modules, specs, base_strides)
    for spec, option, keys in in_base.values():
        if any(key not in graph.swapped for key in keys):
            to_apply.append((spec, option))
    if not request.allow_stride_change:
        check_strides(graph, merged.edits, specs, base_strides)
    check_constraints(graph, specs, layout.data, merged.scale or merged.base.scale)
    for spec, option in to_apply:  # after the strides: a wrong edit is reported before a missing apply
        modules.check_applied(spec, option)
    return _result(request, merged, layout, graph)


def _specs_in_base(graph: ModelGraph, modules: ModuleResolver) -> dict[str, tuple[Any, str, list[int]]]:
    """Spec modules already in the base (an earlier gen-yaml output): module -> (spec, first layer, base keys).

    They count for strides, and they must be applied too.
    """
    in_base: dict[str, tuple[Any, str, list[int]]] = {}
    for layer in graph.base:
        if layer.module in in_base:
            in_base[layer.module][2].append(layer.key)
        elif (spec := modules.spec_behind(layer.module)) is not None:
            in_base[layer.module] = (spec, f"layer {graph.base_slot[layer.key]}", [layer.key])
    return in_base


def _apply_edits(graph: ModelGraph, merged: MergedRequest, request: GenRequest, modules: ModuleResolver,
                 specs: dict[str, Any], base_strides: dict) -> list[tuple[Any, str]]:
    """The backbone swap, then ``--replace-all``, then the edits; returns the (spec, option) pairs to be applied."""
    to_apply: list[tuple[Any, str]] = []
    if merged.backbone is not None:
        row = swap_backbone(graph, merged.backbone, modules, base_strides, request.python)
        specs[row.module] = row.spec
        to_apply.append((row.spec, merged.backbone.option))
    for swap in request.replace_all:
        _replace_all(graph, swap, modules, specs, to_apply)
    for edit in merged.edits:
        _apply_edit(graph, edit, modules, specs, to_apply)
    graph.validate()
    return to_apply


def _apply_edit(graph: ModelGraph, edit: LayerEdit, modules: ModuleResolver, specs: dict[str, Any],
                to_apply: list[tuple[Any, str]]) -> None:
    """One ``--replace``, ``--insert-after``, ``--insert-before`` or ``--remove``."""
    if edit.op == "remove":
        graph.remove(edit.layer, edit.option)
        return
    yaml_name, spec = modules.resolve(edit.module, edit.option)
    if spec is not None:
        specs[yaml_name] = spec
        to_apply.append((spec, edit.option))
    args, args_text = edit_args(edit, spec)
    if edit.residual:  # x + MODULE(x): the row runs the wrapper, which builds MODULE
        check_residual(edit, spec)
        args, args_text = residual_args(yaml_name, args, args_text)
        yaml_name, spec = modules.resolve(RESIDUAL_WRAPPER, edit.option)
        specs[yaml_name] = spec
        to_apply.append((spec, edit.option))
    edit_graph = {"replace": graph.replace, "insert-after": graph.insert_after, "insert-before": graph.insert_before}
    edit_graph[edit.op](edit.layer, yaml_name, args, args_text, edit.repeats or 1, edit.option)


def _replace_all(graph: ModelGraph, swap: ReplaceAll, modules: ModuleResolver, specs: dict[str, Any],
                 to_apply: list[tuple[Any, str]]) -> None:
    """``--replace-all``: every base row running ``swap.old`` (in its section) gets ``swap.new``, args kept."""
    host, _, module = swap.new.partition("_")
    if (host == swap.old and swap.new not in modules.applied_names and swap.new not in modules.target.known_layers
            and modules.registry.find(swap.new) is None):
        raise YamlforgeError(f"'{swap.new}' is not in this checkout: fusion variants are generated by apply",
                             where=swap.option,
                             hint=f"yamlforge apply --repo {modules.target.root} --module {module} --fuse {host}")
    yaml_name, spec = modules.resolve(swap.new, swap.option)
    rows = [layer for layer in graph.base if layer.module == swap.old and layer.key not in graph.swapped
            and swap.section in (None, layer.section)]
    if not rows:
        where = f" in its {swap.section}" if swap.section else ""
        raise YamlforgeError(f"no layer of the base runs {swap.old}{where}, so there is nothing to replace",
                             where=swap.option)
    for layer in rows:
        graph.replace(graph.base_slot[layer.key], yaml_name, layer.args, layer.args_text, layer.repeats, swap.option)
    if spec is not None:
        specs[yaml_name] = spec
        to_apply.append((spec, swap.option))


def _result(request: GenRequest, merged: MergedRequest, layout: ModelLayout, graph: ModelGraph) -> GenResult:
    """Name the output, set ``nc`` and the scale, render, re-load the text, and refuse to overwrite unless forced."""
    named = [LayerEdit("replace", -1, r.new, option=r.option) for r in request.replace_all]  # for the output's name
    edits = ([merged.backbone] if merged.backbone else []) + named + merged.edits
    output = output_path(request.output, merged.base, merged.scale, edits, merged.nc)
    set_nc(layout, merged.nc)
    kept_scale = apply_scale(layout, merged.base, merged.target, merged.scale, output)
    rendered = layout.render(graph)
    reload_check(rendered, output, nc=merged.nc, scale=kept_scale)
    exists = output.exists()
    if exists and not request.force and not request.dry_run:
        raise YamlforgeError(f"'{output}' exists; nothing was written", where="-o",
                             hint="pass --force to overwrite it, or -o another path")
    text = rendered.text if rendered.text == merged.old_text else record_base(rendered.text, merged.base.path, output)
    if RECORDED_BASE.match(text) and text != merged.old_text:  # the old -> new layer map `weights --base` reads
        from .layermap import record_map

        text = record_map(text, rendered.placements, len(graph.base))
    return GenResult(merged.base.path, output, merged.old_text, text, rendered.changes, merged.target.root, exists)


def record_base(text: str, base: Path, output: Path) -> str:
    """``text`` whose first line names its base, relative to the output's folder (``yamlforge graph`` highlights
    what differs from it); a record an earlier gen-yaml left in the base is replaced. An unedited copy gets none:
    it stays byte for byte the base."""
    if RECORDED_BASE.match(text):
        text = text.partition("\n")[2]
    where = os.path.relpath(base, output.parent)
    return BASE_RECORD.format(base=where) + text if not re.search(r"\s", where) else text


def write_result(result: GenResult) -> None:
    """Write the output through the writer, under the checkout's lock when it goes into the checkout."""
    from ..patch.changeset import Changeset
    from ..patch.writer import write_changeset

    path = result.output_path
    inside = result.root is not None and path.is_relative_to(result.root)
    root = result.root if inside else next(folder for folder in path.parents if folder.is_dir())
    changeset = Changeset.styled_like(root, result.base_path)  # the output takes the base's line endings
    changeset.set(path.relative_to(root).as_posix(), result.new_text)
    write_changeset(changeset)
