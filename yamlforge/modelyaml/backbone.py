"""``--backbone``: the one row that replaces a base's ``backbone:`` (a backbone-role spec or ``timm:NAME``)."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction
from typing import Any

from ..errors import YamlforgeError
from .edits import LayerEdit, parse_value, yaml_text
from .graph import SECTIONS, ModelGraph
from .modules import ModuleResolver, edit_args
from .timm import PREFIX as TIMM_PREFIX
from .timm import SPEC_NAME as TIMM_SPEC
from .timm import ask_timm, head_strides, is_timm, pick_strides


@dataclass(frozen=True)
class BackboneRow:
    """The row a ``--backbone`` asks for: its YAML module, args (values and text), output strides and spec."""

    module: str
    args: list[Any]
    args_text: str
    strides: tuple[Fraction, ...]  # relative to the image, one per output
    spec: Any


def swap_backbone(graph: ModelGraph, backbone: LayerEdit, modules: ModuleResolver, old_strides: dict,
                  python: str | None = None) -> BackboneRow:
    """Replace the base's ``backbone:`` rows by the asked row; the head reads its outputs by stride.

    ``old_strides`` are the base's strides (what the head read before); ``python`` the target's, asked about timm.
    """
    if is_timm(backbone.module):
        row = _timm_row(graph, backbone, modules, old_strides, python)
    else:
        row = _spec_row(backbone, modules)
    graph.swap_backbone(row.module, row.args, row.args_text, row.strides, old_strides, backbone.option)
    return row


def _spec_row(backbone: LayerEdit, modules: ModuleResolver) -> BackboneRow:
    """A backbone-role spec's row: the args given, then the spec's defaults; its strides from the spec."""
    yaml_name, spec = modules.resolve_backbone(backbone.module, backbone.option)
    args, args_text = edit_args(backbone, spec)
    return BackboneRow(yaml_name, args, args_text, tuple(Fraction(s) for s in spec.output_strides), spec)


def _timm_row(graph: ModelGraph, backbone: LayerEdit, modules: ModuleResolver, old_strides: dict,
              python: str | None) -> BackboneRow:
    """``timm:NAME``: the target's timm says the model's stages; the row keeps those the head reads."""
    spec = modules.registry.get(TIMM_SPEC, option=backbone.option)
    backbone_rows = {b.key for b in graph.base if b.section == SECTIONS[0]}
    needed = head_strides(old_strides, backbone_rows, [x for x in graph.base if x.key not in backbone_rows])
    name = backbone.module.removeprefix(TIMM_PREFIX)
    options = {}
    for key, text in backbone.args:
        if key is None:
            raise YamlforgeError("a timm backbone takes named options only, e.g. timm:resnet18(drop_path_rate=0.1)",
                                 where=backbone.option)
        options[key] = parse_value(text, backbone.option)
    stages = ask_timm(name, options, python, backbone.option)
    strides = pick_strides(stages, needed, backbone.option)
    args = [name, list(strides), dict(stages.options)]
    text = f"[{yaml_text(name)}, {yaml_text(list(strides))}, {yaml_text(stages.options)}]"
    return BackboneRow(TIMM_SPEC, args, text, tuple(Fraction(s) for s in strides), spec)
