"""``--at auto``: the usual places to try a module, read from the base's layer graph and strides as gen-yaml sees them.

The candidates are each backbone stage output the head reads (the last backbone layer at each stride the head takes
from the backbone: P3/8, P4/16, P5/32 of a detector) and each level the last layer (the head: Detect, Segment, ...)
reads. Which of them gen-yaml accepts for the module (strides, widths) is the plan's to find out, by compiling each.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..modelyaml.compile import GenRequest, merge_request
from ..modelyaml.graph import SECTIONS, output_strides
from ..modelyaml.layout import ModelLayout
from ..modelyaml.modules import ModuleResolver
from ..modelyaml.strides import layer_factor, stride_label
from ..modelyaml.timm import head_strides


@dataclass(frozen=True)
class Candidate:
    """A layer of the base (its number in the base file) worth inserting after, and why: ``P4/16 stage`` or
    ``read by Detect``."""

    layer: int
    why: str


def candidate_layers(base: str, repo: Path | None) -> list[Candidate]:
    """The stage outputs the head reads, then the levels the last layer reads, in layer order, each once."""
    merged = merge_request(GenRequest(base, repo=repo))
    modules = ModuleResolver(merged.target, ())
    graph = ModelLayout(merged.old_text, where=str(merged.base.path)).graph(modules.outputs)
    specs = {x.module: spec for x in graph.base if (spec := modules.spec_behind(x.module)) is not None}
    strides = output_strides(graph.base, lambda layer: layer_factor(layer, specs),
                             merged.target.kind.stride_from_last_input)
    backbone = [x for x in graph.base if x.section == SECTIONS[0] and x.outputs == 1]
    found: dict[int, str] = {}
    for stride in head_strides(strides, {x.key for x in backbone}, [x for x in graph.base if x.section != SECTIONS[0]]):
        last = [x.key for x in backbone if strides.get((x.key, 0)) == stride]
        if last:
            found[last[-1]] = f"{stride_label(stride)} stage"
    head = graph.base[-1]
    for ref in head.refs:
        if isinstance(ref.producer, int) and graph.base[ref.producer].outputs == 1:
            found.setdefault(ref.producer, f"read by {head.module}")
    return [Candidate(graph.base_slot[key], found[key]) for key in sorted(found)]


def describe(chosen: list[Candidate]) -> str:
    """``4 (P3/8 stage), 6 (P4/16 stage), 15 (read by Detect)``."""
    return ", ".join(f"{c.layer} ({c.why})" for c in chosen)

