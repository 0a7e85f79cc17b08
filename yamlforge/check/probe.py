"""The probe model ``apply --verify`` builds: a small detector that uses every module one apply call added.

The probe proves the modules in one task, detection (every probe template ends in its target's detection head):
:func:`probe_scope` says so, and how to prove them in another task's model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import YamlforgeError
from ..modelyaml.edits import yaml_text
from ..modelyaml.strides import stride_label
from ..resources import render
from ..specs import ModuleSpec, SpecRegistry
from ..targets import Target

PROBE_NAME = "yamlforge-probe.yaml"  # matches no Ultralytics scale pattern, so the file builds as written
TEMPLATE = "probe_model.{kind}.yaml.j2"
# The stock part: stride-2 Conv rows to P4/16 (layer modules run there, where the bundled ones are used), one to P5.
STEM_WIDTHS = (16, 32, 64, 128)
P5_WIDTH = 256
LAYER_WIDTH = 128  # the c2 given to in_out modules: the width they would get at P4 in a small model
DETECT_STRIDES = (8, 16, 32)
LAYER_STRIDE = 16
PROBE_TASK = "detect"  # the task of every probe template's head (the target's own name for it)


@dataclass(frozen=True)
class ProbeRow:
    """One YAML row: ``source`` and ``args`` are YAML text, ``slot`` the index slot(s) it occupies."""

    source: str
    module: str
    args: str
    slot: str
    comment: str = ""


def probe_names(names: list[str], registry: SpecRegistry) -> list[tuple[str, ModuleSpec]]:
    """The YAML names to probe for ``--module`` values: a spec name means all its layers, or its first backbone
    (the smallest bundled RevCol); an export name means that one."""
    chosen: dict[str, ModuleSpec] = {}
    for name in names:
        spec = registry.get(name)
        if name in spec.exports:
            picked = [name]
        else:
            picked = list(spec.exports) if spec.role == "layer" else [spec.exports[0]]
        chosen.update((n, spec) for n in picked)
    return list(chosen.items())


def _args(spec: ModuleSpec, name: str) -> str:
    """The YAML args the probe gives the export ``name``: the spec's defaults; an in_out module's width first."""
    texts = []
    for index, arg in enumerate(spec.args_for(name)):
        if index == 0 and spec.channels == "in_out" and arg.required:
            texts.append(str(LAYER_WIDTH))
        elif not arg.required:
            texts.append(yaml_text(arg.default))
        else:
            edit = f"--backbone {name}(...)" if spec.role == "backbone" else f"--insert-after N={name}(...)"
            raise YamlforgeError(f"{name} needs arg '{arg.name}', so apply --verify cannot place it in a probe model",
                                 where="--verify", hint=f"yamlforge gen-yaml BASE {edit} --verify builds it in your "
                                                        "own model")
    return f"[{', '.join(texts)}]"


def probe_yaml(target: Target, modules: list[tuple[str, ModuleSpec]]) -> str:
    """The probe model YAML for ``target`` using ``modules`` ((YAML name, spec) pairs from :func:`probe_names`).

    Layer modules run one after another at stride 16 and feed the head's P4 input. A backbone-role module is
    the first row; it takes one index slot per output (the convention of :mod:`yamlforge.patch.codemods.backbone`)
    and the head reads its stride 8/16/32 outputs, with the layer modules on its stride-16 output.
    """
    backbones = [(name, spec) for name, spec in modules if spec.role == "backbone"]
    layers = [(name, spec) for name, spec in modules if spec.role != "backbone"]
    if len(backbones) > 1:
        raise YamlforgeError(f"a probe model has one backbone, got {', '.join(n for n, _ in backbones)}",
                             where="--verify", hint="apply backbone modules with --verify one at a time")
    rows, levels, slot = _backbone_rows(*backbones[0]) if backbones else _stem_rows()
    rows += _layer_rows(layers, levels, slot)
    slot += len(layers)
    if not backbones:
        rows.append(ProbeRow(str(slot - 1), "Conv", f"[{P5_WIDTH}, 3, 2]", f"{slot}-P5/32"))
        levels[32] = slot
        slot += 1
    detect = [levels[s] for s in sorted(levels)]
    names = ", ".join(n for n, _ in modules) or "only the target's own layers"
    return render(TEMPLATE.format(kind=target.kind.name), label=target.label, root=target.root, names=names,
                  rows=rows, detect_from=str(detect), detect_slot=slot,
                  detect_levels=", ".join(stride_label(s) for s in sorted(levels)))


def _backbone_rows(name: str, spec: ModuleSpec) -> tuple[list[ProbeRow], dict[int, int], int]:
    """The backbone row; stride -> index slot of the outputs the head reads (its 8/16/32 ones if it has them); the
    next free slot."""
    strides = spec.output_strides
    row = ProbeRow("-1", name, _args(spec, name), f"0-{len(strides) - 1}" if len(strides) > 1 else "0",
                   f"{name} outputs " + ", ".join(stride_label(s) for s in strides))
    levels = {s: i for i, s in enumerate(strides) if s in DETECT_STRIDES} or {s: i for i, s in enumerate(strides)}
    return [row], levels, len(strides)


def _stem_rows() -> tuple[list[ProbeRow], dict[int, int], int]:
    """Stride-2 Conv rows down to P4/16; stride -> index slot of those the head reads; the next free slot."""
    rows, levels = [], {}
    for index, width in enumerate(STEM_WIDTHS):
        stride = 2 ** (index + 1)
        rows.append(ProbeRow("-1", "Conv", f"[{width}, 3, 2]", f"{index}-{stride_label(stride)}"))
        if stride in DETECT_STRIDES:
            levels[stride] = index
    return rows, levels, len(rows)


def _layer_rows(layers: list[tuple[str, ModuleSpec]], levels: dict[int, int], slot: int) -> list[ProbeRow]:
    """The layer modules one after another on the stride-16 map (or the deepest), which ``levels`` then points at."""
    level = LAYER_STRIDE if LAYER_STRIDE in levels else max(levels)
    rows, source = [], str(levels[level])
    for name, spec in layers:
        if spec.stride != 1:
            raise YamlforgeError(f"{name} has stride {spec.stride}: a probe model runs layer modules where the "
                                 "resolution stays, so apply --verify cannot place it", where="--verify",
                                 hint=f"yamlforge gen-yaml BASE --replace N={name}(...) --verify builds it where its "
                                      "stride fits")
        why = spec.constraints.violation(STEM_WIDTHS[-1]) if spec.constraints else None
        if why:  # the stride-16 map of the probe model is STEM_WIDTHS[-1] wide
            raise YamlforgeError(f"{name} would get {STEM_WIDTHS[-1]} channels in the probe model, {why} (its spec's "
                                 f"constraints: {spec.constraints.describe()})", where="--verify",
                                 hint=f"yamlforge gen-yaml BASE --insert-after N={name} --verify builds it where the "
                                      "width fits")
        rows.append(ProbeRow(source, name, _args(spec, name), str(slot), f"{name} (applied by this call)"))
        source, levels[level], slot = "-1", slot, slot + 1
    return rows


def probe_scope(modules: list[str]) -> str:
    """One line: the task the probe proves the applied ``modules`` in, and the command that proves them in another."""
    shown = ", ".join(modules) or "the applied modules"
    first = modules[0] if modules else "MODULE"
    return (f"apply --verify proves {shown} in a {PROBE_TASK} model (the probe); for segment, pose, obb, classify or "
            f"another task: yamlforge gen-yaml BASE --insert-after N={first} --verify (BASE: that task's model, "
            "e.g. yolo11n-seg)")


def write_probe(text: str, folder: Path) -> Path:
    path = Path(folder) / PROBE_NAME
    path.write_text(text, encoding="utf-8")
    return path
