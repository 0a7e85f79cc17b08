"""The output's default name: the base's stem, the scale asked for, the modules added or layers removed."""

from __future__ import annotations

import re
from pathlib import Path

from .base import Base
from .edits import LayerEdit
from .timm import PREFIX as TIMM_PREFIX
from .timm import is_timm

MAX_SUFFIX = 120  # characters of module names in a default output name; more are counted, not listed


def output_path(output: Path | None, base: Base, scale: str | None, edits: list[LayerEdit], nc: int | None) -> Path:
    """``-o`` (a file, or a folder that gets the default name), else the default name next to the base."""
    if output is not None:
        out = Path(output).expanduser()
        return (out / f"{output_stem(base, scale, edits, nc)}.yaml" if out.is_dir() else out).resolve()
    return base.path.parent / f"{output_stem(base, scale, edits, nc)}.yaml"


def output_stem(base: Base, scale: str | None, edits: list[LayerEdit], nc: int | None) -> str:
    stem = base.name
    if scale and scale != base.scale:
        stem = re.sub(r"^(.*?\d+)([nslmx])?(?=\D|$)", lambda m: m.group(1) + scale, stem, count=1) \
            if re.search(r"\d", stem) else f"{stem}-{scale}"
    names = list(dict.fromkeys("residual-" * e.residual + stem_part(e.module) for e in edits if e.module))
    removed = [f"no{e.layer}" for e in edits if e.op == "remove"]
    parts = names + removed
    while len(parts) > 1 and len("-".join(parts)) > MAX_SUFFIX:  # file names stop at 255 bytes
        parts = parts[:-2] + [f"and{len(names + removed) - len(parts) + 2}more"]
    suffix = "-".join(parts) or (f"nc{nc}" if nc is not None else "copy")
    return f"{stem}-{suffix}"


def stem_part(module: str) -> str:
    """A module's part of the output name: ``nn.Identity`` -> ``Identity``, ``timm:resnet18.a1_in1k`` ->
    ``timm-resnet18``."""
    if is_timm(module):
        return "timm-" + module.removeprefix(TIMM_PREFIX).partition(".")[0]
    return module.rpartition(".")[2]
