"""Detects the checkout behind ``--repo`` and describes, as data, what differs between target kinds."""

from __future__ import annotations

import ast
import re
from dataclasses import asdict, dataclass, fields
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


FACTS_SCHEMA = "yamlforge.target/1"  # what verify_runner.py accepts as --target (it refuses anything else)


@dataclass(frozen=True)
class Runtime:
    """How the target's own code reads, builds, measures and trains a model: the facts verify_runner.py
    dispatches on. Values are JSON-friendly; ``"module:name"`` strings name a callable in the checkout."""

    yaml_loader: str | None  # "module:function" reading a model YAML into a dict; None: yaml.safe_load
    name_lookup: str  # how parse_model resolves a YAML module name: "namespace" (globals()[m]) or "eval" (eval(m))
    build: str  # "wrapper": the package's model wrapper class (see wrappers); "model_class": model_class(cfg, ch=3)
    model_class: str | None  # "module:Class" for build "model_class"
    wrappers: tuple[tuple[str, str], ...]  # (head module prefix, wrapper class in the package); "" matches any head
    flops_function: str | None  # "module:function" (model, imgsz) -> the GFLOPs the target prints; None: none
    loss: str  # "model_loss": the model's own .loss(batch); "summed_outputs": the mean of every output, summed
    loss_args: str | None  # "module:function" giving the hyperparameters model.loss reads (build "wrapper")
    trainer: str  # "wrapper": the wrapper's .train(); "script": the checkout's own training script
    train_scripts: tuple[tuple[str, str], ...]  # (head module prefix, script in the checkout) for trainer "script"
    checkpoint_loader: str  # "module:function" loading checkpoints; its source says whether it passes weights_only
    safe_load_env: str | None  # environment variable turning on a restricted checkpoint loader
    safe_load_since: str | None  # the first version that has it
    uninstall_hint: str  # how to get rid of another copy of the package shadowing the checkout
    stock_names: bool  # the build finds a bare stock file name (yolov8n.yaml) itself

    @classmethod
    def from_facts(cls, facts: dict) -> Runtime:
        """The inverse of :meth:`Target.runner_facts` (JSON lists back to tuples)."""
        return cls(**{f.name: _tuples(facts[f.name]) for f in fields(cls)})


def _tuples(value):
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


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
    stride_from_last_input: frozenset[str]  # layers whose output has the stride of their LAST input (YOLOv9 CBFuse)
    blocks_file: str  # where the host blocks fusions subclass are defined
    runtime: Runtime

    @property
    def package(self) -> str:
        """The top-level package the checkout's code is imported as (``ultralytics``, ``models``)."""
        return self.tasks_file.split("/", 1)[0]

    @property
    def tasks_module(self) -> str:
        return _module_of(self.tasks_file)

    @property
    def blocks_module(self) -> str:
        return _module_of(self.blocks_file)


def _module_of(relpath: str) -> str:
    return relpath.removesuffix(".py").replace("/", ".")


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
    stride_from_last_input=frozenset(),
    blocks_file="ultralytics/nn/modules/block.py",
    runtime=Runtime(
        yaml_loader="ultralytics.nn.tasks:yaml_model_load",
        name_lookup="namespace",
        build="wrapper",
        model_class=None,
        wrappers=(("RTDETRDecoder", "RTDETR"), ("", "YOLO")),
        flops_function="ultralytics.utils.torch_utils:get_flops",
        loss="model_loss",
        loss_args="ultralytics.cfg:get_cfg",
        trainer="wrapper",
        train_scripts=(),
        checkpoint_loader="ultralytics.nn.tasks:torch_safe_load",
        safe_load_env="ULTRALYTICS_SAFE_LOAD",
        safe_load_since="8.4",
        uninstall_hint="pip uninstall ultralytics",
        stock_names=True,
    ),
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
    stride_from_last_input=frozenset({"CBFuse"}),
    blocks_file="models/common.py",
    runtime=Runtime(
        yaml_loader=None,
        name_lookup="eval",
        build="model_class",
        model_class="models.yolo:Model",
        wrappers=(),
        flops_function=None,
        loss="summed_outputs",
        loss_args=None,
        trainer="script",
        train_scripts=(("Dual", "train_dual.py"), ("", "train.py")),
        checkpoint_loader="models.experimental:attempt_load",
        safe_load_env=None,
        safe_load_since=None,
        uninstall_hint="remove the other 'models' package",
        stock_names=False,
    ),
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

    def runner_facts(self) -> dict:
        """What verify_runner.py needs to know about this checkout, as the JSON object it reads (``--target``)."""
        kind = self.kind
        return {"schema": FACTS_SCHEMA, "kind": kind.name, "version": self.version, "root": str(self.root),
                "package": kind.package, "tasks_module": kind.tasks_module, "modules_dir": kind.modules_dir,
                **asdict(kind.runtime)}

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

    @cached_property
    def scale_pattern(self) -> str | None:
        """The regex the checkout's ``guess_model_scale`` reads a scale from a file name with (the string passed to
        ``re.search`` in it); None when the target guesses no scale from names (YOLOv9)."""
        source = self.tasks_path.read_text(encoding="utf-8")
        # Only the function is parsed: all of tasks.py would cost gen-yaml ~40 ms.
        block = re.search(r"^def guess_model_scale\b.*?(?=^[^\s#]|\Z)", source, re.MULTILINE | re.DOTALL)
        for node in ast.walk(parse_python(block.group(), self.kind.tasks_file)) if block else ():
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "search"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                return node.args[0].value
        return None


def unscaled_stem(stem: str) -> str:
    """The file Ultralytics' ``yaml_model_load`` reads for a scaled name: ``yolov8x`` -> ``yolov8``."""
    return re.sub(r"(\d+)([nslmx])(.+)?$", r"\1\3", stem)


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
