"""Detects the checkout behind ``--repo`` and describes, as data, what differs between target kinds."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

from .errors import YamlforgeError


def parse_python(text: str, filename: str) -> ast.Module:
    """``ast.parse`` whose syntax errors are user errors naming the file and line."""
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise YamlforgeError(f"'{filename}' is not valid Python ({exc.msg}); nothing was changed",
                             where=f"{filename}:{exc.lineno}", hint="fix or restore the file, then run again") from None


@dataclass(frozen=True)
class TargetKind:
    """Everything the codemods and gen-yaml need to know about one family of checkouts."""

    name: str
    tasks_file: str  # the file holding parse_model and the model classes
    markers: tuple[str, ...]  # files whose presence identifies the checkout root
    modules_dir: str  # where module implementation files are placed
    import_from: str  # module path our classes are imported from, ``{stem}`` = file stem
    package_init: str | None  # our package's __init__ (YOLOv9), None when files sit in the target's own package
    model_dirs: tuple[str, ...]  # where the target keeps its model YAMLs
    flops_file: str  # where get_flops (or model_info's FLOPs) lives
    forward_methods: tuple[str, ...]  # methods that walk ``self.model`` layer by layer


ULTRALYTICS = TargetKind(
    name="ultralytics",
    tasks_file="ultralytics/nn/tasks.py",
    markers=("ultralytics/nn/tasks.py",),
    modules_dir="ultralytics/nn/modules",
    import_from="ultralytics.nn.modules.{stem}",
    package_init=None,
    model_dirs=("ultralytics/cfg/models",),
    flops_file="ultralytics/utils/torch_utils.py",
    forward_methods=("_predict_once", "predict"),
)

YOLOV9 = TargetKind(
    name="yolov9",
    tasks_file="models/yolo.py",
    markers=("models/yolo.py", "models/common.py"),
    modules_dir="models/yamlforge",
    import_from="models.yamlforge.{stem}",
    package_init="models/yamlforge/__init__.py",
    model_dirs=("models/detect", "models/segment", "models/panoptic", "models"),
    flops_file="utils/torch_utils.py",
    forward_methods=("_forward_once",),
)

KINDS = (ULTRALYTICS, YOLOV9)


@dataclass(frozen=True)
class Target:
    """A detected checkout: its root, kind and (Ultralytics) version."""

    root: Path
    kind: TargetKind
    version: str | None

    @property
    def label(self) -> str:
        return f"{self.kind.name} {self.version}" if self.version else self.kind.name

    @property
    def tasks_path(self) -> Path:
        return self.root / self.kind.tasks_file

    def module_path(self, stem: str) -> str:
        """Relative path of the file that holds a spec's implementation in this checkout."""
        return f"{self.kind.modules_dir}/{stem}.py"

    def import_module(self, stem: str) -> str:
        return self.kind.import_from.format(stem=stem)

    @cached_property
    def known_layers(self) -> frozenset[str]:
        """Names parse_model can resolve without yamlforge: everything tasks.py imports or defines."""
        tree = parse_python(self.tasks_path.read_text(encoding="utf-8"), self.kind.tasks_file)
        names: set[str] = set()
        star_modules: list[str] = []
        for node in tree.body:
            if isinstance(node, ast.ImportFrom):
                for alias in node.names:
                    if alias.name == "*":
                        star_modules.append(node.module or "")
                    else:
                        names.add(alias.asname or alias.name)
            elif isinstance(node, ast.ClassDef):
                names.add(node.name)
        for module in star_modules:  # YOLOv9: from models.common import *
            path = self.root / (module.replace(".", "/") + ".py")
            if path.is_file():
                sub = parse_python(path.read_text(encoding="utf-8"), str(path.relative_to(self.root)))
                names.update(n.name for n in sub.body if isinstance(n, ast.ClassDef))
        return frozenset(names)


def _ultralytics_version(root: Path) -> str | None:
    init = root / "ultralytics" / "__init__.py"
    if init.is_file():
        match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", init.read_text(encoding="utf-8"), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def detect_target(repo: Path | str) -> Target:
    """Identify ``repo`` as an Ultralytics or YOLOv9 checkout root, or fail naming what was looked for."""
    root = Path(repo).expanduser()
    if not root.is_dir():
        raise YamlforgeError(f"'{root}' is not a directory", where="--repo")
    root = root.resolve()
    for kind in KINDS:
        if all((root / m).is_file() for m in kind.markers):
            version = _ultralytics_version(root) if kind is ULTRALYTICS else None
            return Target(root=root, kind=kind, version=version)
    looked_for = "; ".join(" + ".join(k.markers) for k in KINDS)
    hint = None
    if (root / "yolov9" / "models" / "yolo.py").is_file():
        hint = f"--repo {root / 'yolov9'}"
    elif (root / "nn" / "tasks.py").is_file():
        hint = f"--repo {root.parent}  # the folder that contains ultralytics/"
    raise YamlforgeError(f"'{root}' is not an Ultralytics or YOLOv9 checkout (looked for {looked_for})",
                         where="--repo", hint=hint)
