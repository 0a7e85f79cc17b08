"""Base lookup: the model YAML gen-yaml starts from (a path or a name the target resolves), and its checkout."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

from .. import stamped_cache
from ..errors import YamlforgeError
from ..target_python import RUNNERS, resolve_python, run_runner
from ..targets import SCALED_NAME, TASK_SUFFIXES, Target, detect_target, unscaled_stem

NAMES_RUNNER = RUNNERS / "names_runner.py"
NAMES_TIMEOUT = 300  # seconds: importing the target's tasks module (torch) and reading one YAML
NAMES_CACHE = "model-names"  # folder in the cache: per tasks.py, the names its own loader resolved
# The rules resolve_base applies itself: the scaled name (yolov8n -> yolov8.yaml; the scale by the target's
# scale_pattern) and the P6 rename of yolov8n6-style names, which it leaves to the closest match
STOCK_PATTERNS = frozenset({SCALED_NAME, r"(\d+)([nslmx])6(.+)?$"})


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


def resolve_base(base: str, target, *, relative_to: Path | None = None, python: str | None = None) -> Base:
    """A path to a YAML, or a model name resolved the way the target resolves it (``yolov8n`` -> ``yolov8.yaml``).

    A name the stock rules do not resolve, in a checkout whose ``yaml_model_load`` / ``guess_model_scale`` hold rules
    of its own (a fork's names), is resolved by the target's own loader in ``python`` (cached per tasks.py)."""
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
    refuse_missing_task(stem, target)
    if has_own_naming(target):
        asked = ask_target(target, stem, python)
        if asked is not None:
            return asked
    close = difflib.get_close_matches(stem, sorted(by_stem), n=4, cutoff=0.5)
    folders = ", ".join(target.kind.model_dirs)
    raise YamlforgeError(f"no model '{base}' in {target.root.name} ({folders})"
                         + (f"; closest: {', '.join(close)}" if close else ""), where="BASE",
                         hint="pass a path to a .yaml file, or a name such as " + (close[0] if close else "yolov8n"))


def refuse_missing_task(stem: str, target: Target) -> None:
    """A name asking for a task the target does not ship (``yolo11n-obb`` of 8.0.227) is refused in one line."""
    shipped = target.shipped_tasks
    for part in re.findall(r"-([a-z]+)", stem.lower()):
        task = TASK_SUFFIXES.get(part)
        if shipped and task and task not in shipped:
            raise YamlforgeError(f"{target.label} has no {task} task, so no model '{stem}': it ships "
                                 f"{', '.join(shipped)}", where="BASE",
                                 hint=f"use a release that ships {task} models, or a model of another task")


def has_own_naming(target: Target) -> bool:
    """The checkout's naming functions use a regex the stock rules (and its scale pattern) do not cover."""
    return bool(target.naming_patterns - STOCK_PATTERNS - {target.scale_pattern})


def ask_target(target: Target, stem: str, python: str | None) -> Base | None:
    """The file and scale the target's own loader reads for ``stem`` (None: it resolves no such name); its answer
    is kept while tasks.py and that file keep their (path, mtime, size)."""
    entry = stamped_cache.entry_file(NAMES_CACHE, f"{target.tasks_path}::{stem}")
    known = stamped_cache.read(entry)
    if known is None:
        answer = run_runner(NAMES_RUNNER, ["--name", stem], python=resolve_python(python), timeout=NAMES_TIMEOUT,
                            target=target).data or {}
        if not answer.get("file"):
            return None
        known = {"file": str(Path(answer["file"]).resolve()), "scale": answer.get("scale")}
        stamped_cache.write(entry, known, [target.tasks_path, Path(known["file"])])
    return Base(Path(known["file"]), stem, known["scale"])


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
