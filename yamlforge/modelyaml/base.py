"""Base lookup: the model YAML gen-yaml starts from (a path or a name the target resolves), and its checkout."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import YamlforgeError
from ..targets import Target, detect_target, unscaled_stem


@dataclass(frozen=True)
class Base:
    path: Path
    name: str  # the stem the output name is built from (``yolov8n``, ``rtdetr-l``, ``gelan-c``)
    scale: str | None  # scale implied by the name (``yolov8n`` -> ``n``)


def _model_files(target) -> list[Path]:
    files = []
    for folder in target.kind.model_dirs:
        root = target.root / folder
        if root.is_dir():
            files.extend(sorted(root.rglob("*.yaml")))
    return files


def guess_scale(pattern: str | None, stem: str) -> str:
    """What the target reads from a file name (``yolov8n-x`` -> ``n``), ``""`` when nothing."""
    if not pattern:
        return ""
    match = re.search(pattern, stem)
    return match.group(match.re.groups) if match else ""


def resolve_base(base: str, target, *, relative_to: Path | None = None) -> Base:
    """A path to a YAML, or a model name resolved the way the target resolves it (``yolov8n`` -> ``yolov8.yaml``)."""
    candidates = [Path(base).expanduser()]
    if relative_to is not None and not Path(base).is_absolute():
        candidates.insert(0, relative_to / base)
    for candidate in candidates:
        if candidate.suffix in (".yaml", ".yml") and candidate.is_file():
            pattern = target.scale_pattern if target else None
            return Base(candidate.resolve(), candidate.stem, guess_scale(pattern, candidate.stem) or None)
    if target is None:
        raise YamlforgeError(f"'{base}' is not a YAML file, and without --repo model names cannot be resolved",
                             where="BASE")
    stem = Path(base).stem if base.endswith((".yaml", ".yml")) else base
    files = _model_files(target)
    by_stem: dict[str, Path] = {}
    for f in files:
        by_stem.setdefault(f.stem, f)
    scale = guess_scale(target.scale_pattern, stem)
    if stem in by_stem:
        return Base(by_stem[stem], stem, scale or None)
    if scale and unscaled_stem(stem) in by_stem:
        return Base(by_stem[unscaled_stem(stem)], stem, scale)
    close = difflib.get_close_matches(stem, sorted(by_stem), n=4, cutoff=0.5)
    folders = ", ".join(target.kind.model_dirs)
    raise YamlforgeError(f"no model '{base}' in {target.root.name} ({folders})"
                         + (f"; closest: {', '.join(close)}" if close else ""), where="BASE",
                         hint="pass a path to a .yaml file, or a name such as " + (close[0] if close else "yolov8n"))


def find_target(repo: Path | None, base_name: str, relative_to: Path | None) -> Target:
    """The checkout ``--repo`` names; without it, the one that holds the base file, else the current directory's."""
    if repo is not None:
        return detect_target(repo)
    base_file = _existing_base(base_name, relative_to)
    for folder in ([*base_file.parents] if base_file else []) + [Path.cwd()]:
        try:
            return detect_target(folder)
        except YamlforgeError:
            continue
    raise YamlforgeError("no Ultralytics or YOLOv9 checkout found for the base", where="--repo",
                         hint="yamlforge gen-yaml BASE --repo PATH/TO/CHECKOUT ...")


def _existing_base(base_name: str, relative_to: Path | None) -> Path | None:
    """The base as a file (next to the recipe first), to find the checkout it sits in; None for a model name."""
    as_path = Path(base_name).expanduser()
    if relative_to is not None and not as_path.is_absolute() and (relative_to / as_path).is_file():
        as_path = relative_to / as_path
    return as_path.resolve() if as_path.is_file() else None
