"""Detects the checkout behind ``--repo`` and describes, as data, what differs between target kinds."""

from __future__ import annotations

import ast
import os
import re
from dataclasses import asdict, dataclass, fields, replace
from functools import cached_property
from pathlib import Path

from . import stamped_cache
from .errors import YamlforgeError, command_line
from .textfile import read_text


def parse_python(text: str, filename: str) -> ast.Module:
    """``ast.parse`` whose syntax errors are user errors naming the file and line."""
    try:
        return ast.parse(text)
    except SyntaxError as exc:
        raise YamlforgeError(f"'{filename}' is not valid Python ({exc.msg}); nothing was changed",
                             where=f"{filename}:{exc.lineno}", hint="fix or restore the file, then run again") from None


FACTS_SCHEMA = "yamlforge.target/1"  # what verify_runner.py accepts as --target (it refuses anything else)


@dataclass(frozen=True)
class OpsetFix:
    """The ONNX opset export_runner.py gives a target's exporter in the releases whose own choice is wrong under
    new torch: only where that torch names fewer opsets (``torch.onnx.symbolic_opsetN``) than ``opset`` while its
    exporter supports ``opset``; the report's note says so and quotes ``reason``."""

    since: str  # the first release whose exporter chooses that way
    before: str  # the first release that chooses otherwise
    opset: int  # the opset passed instead
    reason: str  # why the release's own choice is wrong


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
    train_flags: tuple[str, ...] = ()  # extra arguments every training script of the target accepts
    train_hyp: str | None = None  # trainer "script": the file passed as --hyp (ours); None: the runner's defaults
    legacy_numpy: bool = False  # training code calls np.int, np.trapz (gone from numpy): the runner restores them
    # ONNX export (export_runner.py): the checkout's export script, run with include=("onnx",) on a saved model;
    # None: the wrapper's own .export(format="onnx")
    export_script: str | None = None
    # "module:function" writing the script multi-GPU (DDP) workers run in a fresh Python outside the checkout;
    # None: training is never relaunched that way
    ddp_launcher: str | None = None
    thop_distribution: str | None = None  # the distribution whose thop the target's FLOPs code needs; None: any
    thop_distribution_since: str | None = None  # the first version that requires it
    # What the target's trainer saves beside "model" (a float copy of the model object): a checkpoint with these
    # is one its trainer starts from (Ultralytics `pretrained=` / `.load()`, YOLOv5-style `--weights`)
    checkpoint_fields: tuple[tuple[str, int | None], ...] = ()
    # The target's own settings file, by release: (first version, its path under $YOLO_CONFIG_DIR, whether the
    # default folder <config home>/Ultralytics honours $XDG_CONFIG_HOME); () for targets that keep none
    settings_files: tuple[tuple[str, str, bool], ...] = ()
    # Settings a run in yamlforge turns off unless the user passes --log: analytics and every logging integration
    quiet_settings: tuple[str, ...] = ()
    settings_object: str | None = None  # "module:name" of the live settings (a dict whose update() saves the file)
    analytics_clients: tuple[str, ...] = ()  # "module:name" of the analytics client (where each release keeps it)
    # The checkpoint fields holding a model object, in the order the target's loaders take them (the EMA copy first:
    # Ultralytics' attempt_load_one_weight, YOLOv5-style attempt_load): `weights --base` reads the base from them
    checkpoint_models: tuple[str, ...] = ("ema", "model")
    # How the trainer is told which layers to freeze: (a count of first layers, a list of layer indices, the list's
    # separator); `weights --base` prints the value that freezes the same base layers after an edit
    freeze_syntax: tuple[str, str, str] = ("--freeze {}", "--freeze {}", " ")
    export_opset_fix: OpsetFix | None = None  # the opset given to the exporter where its own choice is wrong
    # The module holding the target's task tables (TASKS, TASK2DATA, TASK2METRIC); None: the target names no tasks
    task_tables: str | None = None
    # "module:function" of the target's CLI, whose if/elif chain on the file name picks the model wrapper class
    # (yf_wrappers.py evaluates it); None: the head alone picks (wrappers)
    entry_point: str | None = None
    # Trainer "script" targets name no tasks: (head module prefix, task) says which task a model YAML's head is
    # (the first prefix the head starts with); () for targets whose scripts train detection only
    task_heads: tuple[tuple[str, str], ...] = ()
    # (training script, "module:Class" of the loss it imports and trains with): the backward check's loss for the
    # models that script trains (``ComputeLoss(model)(outputs, targets[, masks])``); a script missing here: the
    # summed outputs (its loss needs the trainer's state)
    script_losses: tuple[tuple[str, str], ...] = ()
    # (training script, "module:Class" it trains): a script that takes a checkpoint (``--model``) instead of a YAML
    # (``--cfg``) gets the YAML's layers in an instance of that class
    script_models: tuple[tuple[str, str], ...] = ()

    @classmethod
    def from_facts(cls, facts: dict) -> Runtime:
        """The inverse of :meth:`Target.runner_facts` (JSON lists back to tuples)."""
        values = {f.name: _tuples(facts[f.name]) for f in fields(cls)}
        if values["export_opset_fix"] is not None:
            values["export_opset_fix"] = OpsetFix(**values["export_opset_fix"])
        return cls(**values)


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
    version_file: str | None = None  # the file whose ``__version__ = "..."`` names the release (when it has one)

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
    version_file="ultralytics/__init__.py",
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
        ddp_launcher="ultralytics.utils.dist:generate_ddp_file",
        thop_distribution="ultralytics-thop",
        thop_distribution_since="8.2",  # 8.0/8.1 want PyPI's thop; 8.4's get_flops passes arguments only it has
        checkpoint_fields=(("epoch", -1), ("best_fitness", None), ("ema", None), ("updates", None),
                           ("optimizer", None)),
        # settings.yaml until 8.2.98; 8.3.196 moved it under $YOLO_CONFIG_DIR/Ultralytics and reads XDG_CONFIG_HOME
        settings_files=(("8.0", "settings.yaml", False), ("8.2.99", "settings.json", False),
                        ("8.3.196", "Ultralytics/settings.json", True)),
        quiet_settings=("sync", "hub", "clearml", "comet", "dvc", "mlflow", "neptune", "raytune", "tensorboard",
                        "wandb"),
        settings_object="ultralytics.utils:SETTINGS",
        analytics_clients=("ultralytics.utils.events:events", "ultralytics.hub.utils:events"),
        freeze_syntax=("freeze={}", "freeze=[{}]", ", "),
        task_tables="ultralytics.cfg",
        entry_point="ultralytics.cfg:entrypoint",
        # 8.0.36 (get_latest_opset) to 8.3.202; 8.3.203 takes torch's own maximum (best_onnx_opset), before 8.0.36
        # the configured default (17 in 8.0.0, None later). 17 has every op the targets' models export with.
        export_opset_fix=OpsetFix(
            since="8.0.36", before="8.3.203", opset=17,
            reason="the exporter takes the newest opset from the symbolic_opsetN modules torch.onnx names "
                   "(get_latest_opset), and new torch names only 9 and 10, which lack ops such as Pad by a computed "
                   "amount (opset 11)"),
    ),
)

YOLOV9 = TargetKind(
    name="yolov9",
    tasks_file="models/yolo.py",
    markers=("models/yolo.py", "models/common.py", "train_dual.py"),
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
        loss="script_loss",
        loss_args=None,
        trainer="script",
        # the upstream repository's segment/ and panoptic/ scripts (a yolov9pip release ships neither: verify
        # --train says so)
        train_scripts=(("DualDSegment", "segment/train_dual.py"), ("DSegment", "segment/train.py"),
                       ("Segment", "segment/train.py"), ("Panoptic", "panoptic/train.py"), ("Dual", "train_dual.py"),
                       ("", "train.py")),
        checkpoint_loader="models.experimental:attempt_load",
        safe_load_env=None,
        safe_load_since=None,
        uninstall_hint="remove the other 'models' package",
        stock_names=False,
        train_flags=("--noplots",),
        export_script="export.py",
        checkpoint_fields=(("epoch", -1), ("best_fitness", None), ("ema", None), ("updates", None),
                           ("optimizer", None), ("opt", None)),
        task_heads=(("DualDSegment", "segment"), ("DSegment", "segment"), ("Segment", "segment"),
                    ("Panoptic", "panoptic"), ("", "detect")),
        script_losses=(("segment/train.py", "utils.segment.loss_tal:ComputeLoss"),
                       ("segment/train_dual.py", "utils.segment.loss_tal_dual:ComputeLoss")),
    ),
)

# YOLOv5 and YOLOv7 share YOLOv9's layout (YOLOv9 grew out of YOLOv5); only these facts differ.
YOLOV5 = replace(
    YOLOV9,
    name="yolov5",
    markers=("models/yolo.py", "models/common.py", "utils/dataloaders.py"),
    model_dirs=("models",),  # and its hub/ and segment/ folders
    stride_from_last_input=frozenset(),
    version_file="__init__.py",  # the pip wheel's; a git clone has none
    # classify/train.py trains a ClassificationModel: the wheel makes one of a detection model's first layers and
    # common.py's Classify head, which a model YAML writes as its last row (Classify, [c1, nc])
    runtime=replace(YOLOV9.runtime, train_scripts=(("Segment", "segment/train.py"), ("Classify", "classify/train.py"),
                                                   ("", "train.py")),
                    uninstall_hint="pip uninstall yolov5", legacy_numpy=True,
                    task_heads=(("Segment", "segment"), ("Classify", "classify"), ("", "detect")),
                    script_losses=(("segment/train.py", "utils.segment.loss:ComputeLoss"),
                                   ("classify/train.py", "utils.torch_utils:smartCrossEntropyLoss")),
                    script_models=(("classify/train.py", "models.yolo:ClassificationModel"),)),
)

YOLOV7 = replace(
    YOLOV9,
    name="yolov7",
    markers=("models/yolo.py", "models/common.py", "train_aux.py"),
    model_dirs=("cfg/training", "cfg/deploy"),
    forward_methods=("forward_once",),
    stride_from_last_input=frozenset(),
    version_file="__init__.py",  # yolov7detect's; a git clone has none
    runtime=replace(YOLOV9.runtime, train_scripts=(("IAuxDetect", "train_aux.py"), ("", "train.py")),
                    uninstall_hint="pip uninstall yolov7detect", train_flags=(),
                    train_hyp=str(Path(__file__).with_name("data") / "hyp.yolov7.yaml"),
                    legacy_numpy=True, task_heads=(), script_losses=()),
)

# Detection takes the first kind whose markers all exist: YOLOv9 checkouts also have utils/dataloaders.py.
KINDS = (ULTRALYTICS, YOLOV9, YOLOV7, YOLOV5)


@dataclass(frozen=True)
class Target:
    """A detected checkout: its root, kind, version and the prefix its code imports itself with.

    ``package_prefix`` is ``""`` for a git clone (``from models.common import *``) and ``"yolov5."`` for a
    pip-packaged one whose root is the ``yolov5/`` package folder (``from yolov5.models.common import *``).
    """

    root: Path
    kind: TargetKind
    version: str | None
    package_prefix: str = ""

    @property
    def label(self) -> str:
        return f"{self.kind.name} {self.version}" if self.version else self.kind.name

    @property
    def package(self) -> str:
        """The top-level package the checkout's code is imported as (``ultralytics``, ``models``, ``yolov5``)."""
        return self.package_prefix.rstrip(".") or self.kind.package

    @property
    def blocks_module(self) -> str:
        """The module the host blocks are imported from, as this checkout imports it."""
        return self.package_prefix + self.kind.blocks_module

    @property
    def path_entry(self) -> Path:
        """The folder that goes on ``sys.path`` so that :attr:`package` imports from this checkout."""
        return self.root.parent if self.package_prefix else self.root

    @property
    def tasks_path(self) -> Path:
        return self.root / self.kind.tasks_file

    def runner_facts(self) -> dict:
        """What verify_runner.py needs to know about this checkout, as the JSON object it reads (``--target``)."""
        kind = self.kind
        runtime = {key: self._qualified(value) for key, value in asdict(kind.runtime).items()}
        return {"schema": FACTS_SCHEMA, "kind": kind.name, "version": self.version, "root": str(self.root),
                "path_entry": str(self.path_entry), "package": self.package,
                "tasks_module": self.package_prefix + kind.tasks_module, "modules_dir": kind.modules_dir, **runtime}

    def _qualified(self, value):
        """A ``"module:name"`` fact (``models.yolo:Model``) as this checkout imports it, also inside a table's rows;
        other values unchanged."""
        if isinstance(value, (tuple, list)):
            return type(value)(self._qualified(v) for v in value)
        return self.package_prefix + value if isinstance(value, str) and re.fullmatch(r"[\w.]+:\w+", value) else value

    def module_path(self, stem: str) -> str:
        """Relative path of the file that holds a spec's implementation in this checkout."""
        return f"{self.kind.modules_dir}/{stem}.py"

    def import_module(self, stem: str) -> str:
        return self.package_prefix + self.kind.import_from.format(stem=stem)

    @cached_property
    def known_layers(self) -> frozenset[str]:
        """Names parse_model can resolve without yamlforge: everything tasks.py imports or defines.

        Parsing tasks.py costs a gen-yaml call 15-19 ms, so the names are kept in the cache while the files they
        were read from keep their (mtime, size).
        """
        entry = stamped_cache.entry_file(KNOWN_LAYERS_CACHE, str(self.tasks_path))
        cached = stamped_cache.read(entry)
        if cached is not None:
            return frozenset(cached)
        names, read = self._parse_known_layers()
        stamped_cache.write(entry, sorted(names), read)
        return names

    def _parse_known_layers(self) -> tuple[frozenset[str], list[Path]]:
        """(the names tasks.py imports or defines, the files read for them: tasks.py and its star imports)."""
        tree = parse_python(read_text(self.tasks_path), self.kind.tasks_file)
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
        read = [self.tasks_path]
        for module in star_modules:  # YOLOv9: from models.common import *
            path = self.root / (module.removeprefix(self.package_prefix).replace(".", "/") + ".py")
            if path.is_file():
                sub = parse_python(read_text(path), str(path.relative_to(self.root)))
                names.update(n.name for n in sub.body if isinstance(n, ast.ClassDef))
                read.append(path)
        return frozenset(names), read

    @cached_property
    def scale_pattern(self) -> str | None:
        """The regex the checkout's ``guess_model_scale`` reads a scale from a file name with (the string passed to
        ``re.search`` in it); None when the target guesses no scale from names (YOLOv9)."""
        block = self._function_source("guess_model_scale")
        if block is None:
            return None
        for node in ast.walk(parse_python(block, self.kind.tasks_file)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "search"
                    and node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                return node.args[0].value
        return None

    def _function_source(self, name: str) -> str | None:
        """The source of tasks.py's top-level function ``name`` (up to the next top-level line), None without it.

        Only the function is parsed by its readers: all of tasks.py would cost gen-yaml ~40 ms."""
        source = read_text(self.tasks_path)
        start = source.find(f"\ndef {name}(") + 1
        if not start:
            return None
        end = re.compile(r"^[^\s#]", re.MULTILINE).search(source, start + 1)
        return source[start:end.start() if end else len(source)]

    @cached_property
    def naming_patterns(self) -> frozenset[str]:
        """Every regex the checkout's ``yaml_model_load`` and ``guess_model_scale`` use on a model's name (the
        string constants passed to ``re.sub``/``re.search``/``re.match``/...): a fork's own naming shows here as a
        pattern the stock rules lack."""
        patterns = set()
        for function in NAMING_FUNCTIONS:
            block = self._function_source(function)
            for node in ast.walk(parse_python(block, self.kind.tasks_file)) if block else ():
                if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args
                        and isinstance(node.func.value, ast.Name) and node.func.value.id == "re"
                        and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)):
                    patterns.add(node.args[0].value)
        return frozenset(patterns)

    @cached_property
    def shipped_tasks(self) -> tuple[str, ...] | None:
        """The task names the checkout ships (its ``TASKS`` in the module ``task_tables`` names), None when it names
        none. Read from the source's ``TASKS = ...`` line (no import)."""
        module = self.kind.runtime.task_tables
        path = self.root / (module.replace(".", "/") + ".py") if module else None
        if path is None or not path.is_file():
            path = path.with_suffix("") / "__init__.py" if path is not None else None
        if path is None or not path.is_file():
            return None
        match = re.search(r"^TASKS\s*=\s*(.+)$", read_text(path), re.MULTILINE)
        text = match.group(1).strip() if match else "None"
        if text.startswith(("frozenset(", "set(")):
            text = text.partition("(")[2].removesuffix(")")
        try:
            value = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            return None
        return tuple(value) if isinstance(value, (tuple, list, set)) else None


NAMING_FUNCTIONS = ("yaml_model_load", "guess_model_scale")  # where Ultralytics reads a model's file and scale
# The model-name suffix of each task, as the Ultralytics releases name their models (``yolo11n-obb``): what a name
# asks for, even of a release that lacks that task
TASK_SUFFIXES = {"seg": "segment", "cls": "classify", "pose": "pose", "obb": "obb", "sem": "semantic",
                 "depth": "depth"}


KNOWN_LAYERS_CACHE = "known-layers"  # folder in the cache: one JSON file per tasks.py


SCALED_NAME = r"(\d+)([nslmx])(.+)?$"  # Ultralytics' yaml_model_load: the scale letter after the version


def unscaled_stem(stem: str) -> str:
    """The file Ultralytics' ``yaml_model_load`` reads for a scaled name: ``yolov8x`` -> ``yolov8``."""
    return re.sub(SCALED_NAME, r"\1\3", stem)


def _release_version(root: Path, kind: TargetKind) -> str | None:
    init = root / kind.version_file if kind.version_file else None
    if init and init.is_file():
        match = re.search(r"""^__version__\s*=\s*["']([^"']+)["']""", init.read_text(encoding="utf-8"), re.MULTILINE)
        if match:
            return match.group(1)
    return None


def _package_prefix(root: Path, kind: TargetKind) -> str:
    """``"yolov5."`` when the tasks file imports its blocks as ``yolov5.models.common`` (a pip-packaged root)."""
    if kind.package_init is None:  # Ultralytics: the root holds the package folder itself
        return ""
    source = read_text(root / kind.tasks_file)
    match = re.search(rf"^from\s+((?:\w+\.)*){re.escape(kind.blocks_module)}\s+import\b", source, re.MULTILINE)
    prefix = match.group(1) if match else ""
    if prefix and prefix != f"{root.name}.":
        raise YamlforgeError(f"'{root}' imports its own code as '{prefix}models', so its folder must be named "
                             f"'{prefix.rstrip('.')}', not '{root.name}'", where="--repo",
                             hint=command_line("move" if os.name == "nt" else "mv", root,
                                               root.with_name(prefix.rstrip("."))))
    return prefix


def detect_target(repo: Path | str) -> Target:
    """Identify ``repo`` as an Ultralytics, YOLOv9, YOLOv7 or YOLOv5 checkout root, or fail naming what was
    looked for."""
    root = Path(repo).expanduser()
    if not root.is_dir():
        raise YamlforgeError(f"'{root}' is not a directory", where="--repo")
    root = root.resolve()
    for kind in KINDS:
        if all((root / m).is_file() for m in kind.markers):
            return Target(root=root, kind=kind, version=_release_version(root, kind),
                          package_prefix=_package_prefix(root, kind))
    looked_for = "; ".join(" + ".join(k.markers) for k in KINDS)
    hint = None
    packaged = [root / name for name in ("yolov9", "yolov7", "yolov5")
                if (root / name / "models" / "yolo.py").is_file()]
    if packaged:
        hint = f"--repo {packaged[0]}"
    elif (root / "nn" / "tasks.py").is_file():
        hint = f"--repo {root.parent}  # the folder that contains ultralytics/"
    raise YamlforgeError(f"'{root}' is not an Ultralytics, YOLOv9, YOLOv7 or YOLOv5 checkout (looked for {looked_for})",
                         where="--repo", hint=hint)
