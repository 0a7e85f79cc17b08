"""gen-yaml: resolve a base model YAML, apply layer edits (CLI or recipe), validate, and produce the new text."""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any, NamedTuple

from ..errors import YamlforgeError
from ..targets import Target, unscaled_stem
from . import widths
from .graph import SECTIONS, Layer, ModelGraph, RowChange, output_strides, slot_numbers
from .layout import ModelLayout, Rendered
from .load import entry, load_nodes
from .strides import builtin_factor, stride_label
from .timm import PREFIX as TIMM_PREFIX
from .timm import SPEC_NAME as TIMM_SPEC
from .timm import ask_timm, head_strides, is_timm, pick_strides

EDIT_OPS = ("replace", "insert-after", "insert-before", "remove")
TORCH_PREFIXES = ("nn.", "torch.nn.", "torchvision.ops.")  # modules parse_model takes from torch itself
RECIPE_KEYS = ("base", "edits", "scale", "nc", "backbone")

# The first line of every gen-yaml output: the model it was made from (``yamlforge graph`` reads it)
BASE_RECORD = "# yamlforge: gen-yaml base={base}\n"
RECORDED_BASE = re.compile(r"\A#\s*yamlforge:\s*gen-yaml\s+base=(\S+)[^\n]*\n")
_LAYER = re.compile(r"\s*(?:layer)?(\d+)\s*")
_MODULE = re.compile(r"\s*([A-Za-z_][\w.]*)\s*(?:\((?P<args>.*)\))?\s*(?:\*\s*(?P<repeats>[-+]?\d+))?\s*", re.DOTALL)


# ---------------------------------------------------------------- edits


@dataclass(frozen=True)
class Edit:
    """One edit; ``layer`` is a BASE layer number whatever other edits do.

    Syntax (CLI value or recipe string): ``N=MODULE``, ``N=MODULE(a, b, name=c)``, ``N=MODULE(a)*3`` for 3 repeats
    (default 1); ``N`` may be written ``layerN``; ``--remove`` takes just ``N``.
    """

    op: str  # one of EDIT_OPS, or "backbone" for --backbone (``layer`` unused)
    layer: int
    module: str | None = None
    args: tuple[tuple[str | None, str], ...] = ()  # (name or None, YAML text of the value)
    repeats: int | None = None
    option: str = ""  # ``--replace 4=SHSA``: what error messages name

    @property
    def has_args(self) -> bool:
        return bool(self.args)


def split_top_level(text: str) -> list[str]:
    """``a, [b, c], 'd,e'`` -> ``['a', '[b, c]', "'d,e'"]``."""
    parts, depth, quote, current = [], 0, None, []
    for c in text:
        if quote:
            quote = None if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "[{(":
            depth += 1
        elif c in "]})":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(c)
    parts.append("".join(current).strip())
    if depth or quote:
        raise ValueError("unbalanced brackets or quotes")
    return parts


def parse_edit(op: str, value: Any) -> Edit:
    """Parse ``--<op> <value>``; bad syntax is one error naming the option."""
    option = f"--{op} {value}"
    value = str(value)
    if op not in EDIT_OPS:
        raise YamlforgeError(f"unknown edit '{op}' (known: {', '.join(EDIT_OPS)})", where=option)
    number, _, module_text = value.partition("=")
    match = _LAYER.fullmatch(number)
    if not match:
        raise YamlforgeError(f"'{number.strip()}' is not a layer number (write N or layerN, as in the base file)",
                             where=option)
    layer = int(match.group(1))
    if op == "remove":
        if module_text:
            raise YamlforgeError("--remove takes only a layer number", where=option)
        return Edit(op, layer, option=option)
    if not module_text.strip():
        raise YamlforgeError(f"missing module: write --{op} {layer}=MODULE or {layer}=MODULE(args)", where=option)
    module, args, repeats = _parse_module(module_text, option)
    return Edit(op, layer, module, args, repeats, option)


def parse_backbone(value: Any, option: str | None = None, sets: list[str] | tuple[str, ...] = ()) -> Edit:
    """Parse ``--backbone MODULE`` or ``--backbone MODULE(a, name=b)``: the module that replaces ``backbone:``;
    ``timm:NAME(key=value)`` names a timm model, and ``sets`` (``--set KEY=VALUE``) add to its options."""
    option = option or f"--backbone {value}"
    value = str(value).strip()
    if not value:
        raise YamlforgeError("missing module: write --backbone MODULE or MODULE(args)", where=option)
    timm = is_timm(value)
    module, args, repeats = _parse_module(value.removeprefix(TIMM_PREFIX), option)
    if repeats not in (None, 1):
        raise YamlforgeError("a backbone is one layer; it takes no repeats", where=option)
    if sets and not timm:
        raise YamlforgeError("--set gives a timm model's create_model options; the backbone is not timm:NAME",
                             where="--set", hint="--backbone timm:resnet18 --set drop_path_rate=0.1")
    for text in sets:
        key, sep, given = text.partition("=")
        if not (sep and key.strip().isidentifier() and given.strip()):
            raise YamlforgeError(f"--set {text!r} is not KEY=VALUE", where="--set", hint="--set drop_path_rate=0.1")
        parse_value(given.strip(), f"--set {text}")
        args += ((key.strip(), given.strip()),)
    return Edit("backbone", 0, TIMM_PREFIX + module if timm else module, args, None, option)


@dataclass(frozen=True)
class ReplaceAll:
    """``--replace-all OLD=NEW [--in SECTION]``: every base layer running OLD (in SECTION only, if given) runs NEW,
    keeping its args, repeats and wiring (``HGBlock=HGBlock_SHSA`` swaps in a fusion variant, see yamlforge.patch.fusion)."""

    old: str
    new: str
    section: str | None = None
    option: str = ""


def parse_replace_all(value: Any, section: str | None = None) -> ReplaceAll:
    """Parse ``--replace-all OLD=NEW``; ``section`` is ``backbone``, ``head`` or None (both)."""
    option = f"--replace-all {value}"
    old, _, new = str(value).partition("=")
    old, new = old.strip(), new.strip()
    if not (old.replace(".", "_").isidentifier() and new.replace(".", "_").isidentifier()):
        raise YamlforgeError("expected OLD=NEW, two module names (e.g. HGBlock=HGBlock_SHSA); NEW takes OLD's args",
                             where=option)
    if section is not None and section not in SECTIONS:
        raise YamlforgeError(f"--in takes {' or '.join(SECTIONS)}, got '{section}'", where="--in")
    return ReplaceAll(old, new, section, option)


def _parse_module(module_text: str, option: str) -> tuple[str, tuple[tuple[str | None, str], ...], int | None]:
    """``MODULE(a, name=b)*3`` -> (module, args as (name, YAML text), repeats or None)."""
    match = _MODULE.fullmatch(module_text)
    if not match:
        raise YamlforgeError(f"cannot read '{module_text}': expected MODULE, MODULE(a, b) or MODULE(a)*3",
                             where=option)
    args: list[tuple[str | None, str]] = []
    if match.group("args") is not None and match.group("args").strip():
        try:
            pieces = split_top_level(match.group("args"))
        except ValueError:
            raise YamlforgeError("unbalanced brackets or quotes in the module's args", where=option) from None
        for piece in pieces:
            named = re.fullmatch(r"([A-Za-z_]\w*)\s*=(?!=)\s*(.+)", piece, re.DOTALL)
            name, text = (named.group(1), named.group(2).strip()) if named else (None, piece)
            if not text:
                raise YamlforgeError("empty argument in the module's args", where=option)
            if name is None and any(n for n, _ in args):
                raise YamlforgeError("positional argument after a named one", where=option)
            parse_value(text, option)
            args.append((name, text))
    repeats = None
    if match.group("repeats") is not None:
        repeats = int(match.group("repeats"))
        if repeats < 1:
            raise YamlforgeError(f"repeats must be 1 or more, got {repeats}", where=option)
    return match.group(1), tuple(args), repeats


def parse_value(text: str, option: str) -> Any:
    """One YAML flow value, as the model YAML will hold it."""
    try:
        loaded, _ = load_nodes(f"[{text}]", where=option, what="value")
    except YamlforgeError:
        loaded = None
    if not isinstance(loaded, list) or len(loaded) != 1:
        raise YamlforgeError(f"'{text}' is not a single YAML value", where=option)
    return loaded[0]


def yaml_text(value: Any) -> str:
    """A spec default written the way model YAMLs write values (``None``, ``True``, ``"nearest"``)."""
    if value is None or isinstance(value, bool):
        return str(value)
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return f"[{', '.join(yaml_text(v) for v in value)}]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{yaml_text(k)}: {yaml_text(v)}" for k, v in value.items()) + "}"
    if isinstance(value, str):
        import json

        plain = re.fullmatch(r"[A-Za-z_][\w.]*", value) and value.lower() not in (
            "true", "false", "null", "none", "yes", "no", "on", "off", "y", "n")
        return value if plain else json.dumps(value)
    raise YamlforgeError(f"cannot write the default {value!r} into a model YAML")


# ---------------------------------------------------------------- recipes


@dataclass
class Recipe:
    """A reproducible gen-yaml call: ``base``, ``backbone`` (``MODULE(args)``), ``edits`` (list of
    ``{kind: "N=MODULE(...)"}``), ``scale``, ``nc``."""

    path: Path
    base: str | None = None
    backbone: Edit | None = None
    edits: list[Edit] = field(default_factory=list)
    scale: str | None = None
    nc: int | None = None


def load_recipe(path: Path) -> Recipe:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlforgeError(f"cannot read recipe: {exc.strerror}", where="--recipe") from None
    data, node = load_nodes(text, where=str(path), what="recipe YAML")
    if not isinstance(data, dict):
        raise YamlforgeError("a recipe is a mapping with base and edits", where=f"{path}:1")

    def line(key) -> str:
        found = entry(node, key)
        return f"{path}:{found[0].start_mark.line + 1 if found else 1}"

    for key in data:
        if key not in RECIPE_KEYS:
            raise YamlforgeError(f"unknown recipe key '{key}' (known: {', '.join(RECIPE_KEYS)})", where=line(key))
    recipe = Recipe(path=path.resolve(), base=None if data.get("base") is None else str(data["base"]),
                    scale=data.get("scale"), nc=data.get("nc"))
    if data.get("backbone") is not None:
        value = data["backbone"]
        if not isinstance(value, str):
            raise YamlforgeError("recipe key 'backbone' is one module, e.g. 'backbone: revcol_small' or "
                                 "'backbone: revcol_tiny(save_memory=False)'", where=line("backbone"))
        recipe.backbone = parse_backbone(value, f"{line('backbone')} (backbone: {value})")
    if recipe.nc is not None and (not isinstance(recipe.nc, int) or isinstance(recipe.nc, bool) or recipe.nc < 1):
        raise YamlforgeError("recipe key 'nc' must be a positive whole number", where=line("nc"))
    edits = data.get("edits") or []
    if not isinstance(edits, list):
        raise YamlforgeError("recipe key 'edits' must be a list of {kind: value}", where=line("edits"))
    for item, item_node in zip(edits, entry(node, "edits")[1].value if edits else ()):
        where = f"{path}:{item_node.start_mark.line + 1}"
        if not isinstance(item, dict) or len(item) != 1:
            raise YamlforgeError("each edit is one '<kind>: <value>' pair, e.g. 'insert-after: 3=SHSA'", where=where)
        (op, value), = item.items()
        if op not in EDIT_OPS:
            raise YamlforgeError(f"unknown edit '{op}' (known: {', '.join(EDIT_OPS)})", where=where)
        try:
            recipe.edits.append(parse_edit(op, value))
        except YamlforgeError as exc:
            raise YamlforgeError(exc.message, where=f"{where} ({op}: {value})", hint=exc.hint) from None
    return recipe


# ---------------------------------------------------------------- base resolution and scale


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


# ---------------------------------------------------------------- the compile


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

    def table(self) -> str:
        header = ("layer", "from", "n", "module", "args", "")
        body = [(str(r.index), r.source, r.repeats, r.module, r.args, r.status) for r in self.rows]
        widths = [max(len(row[i]) for row in [header, *body]) for i in range(len(header))]
        return "\n".join("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip()
                         for row in [header, *body])


@dataclass
class GenRequest:
    base: str | None
    edits: list[Edit] = field(default_factory=list)
    backbone: Edit | None = None  # parse_backbone(...): replaces the whole backbone section, before the edits
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


class _Modules:
    """Which module names a YAML may use in this checkout, and what spec (if any) stands behind each."""

    def __init__(self, target, spec_paths):
        self.target = target
        self.spec_paths = spec_paths
        self._registry = None
        self._applied: set[str] | None = None

    @property
    def applied_names(self) -> set[str]:
        if self._applied is None:
            from ..patch.lock import recover_interrupted
            from ..patch.manifest import read_manifest

            recover_interrupted(self.target.root)  # a half-written apply is rolled back before its manifest is read
            manifest = read_manifest(self.target.root)
            self._applied = manifest.applied_names if manifest else set()
        return self._applied

    @property
    def registry(self):
        if self._registry is None:
            from ..specs import SpecRegistry

            self._registry = SpecRegistry(list(self.spec_paths))
        return self._registry

    def spec_behind(self, name: str):
        """The spec a YAML module name stands for in this checkout; None for torch's and the target's own layers.

        Only a spec name makes yamlforge read tasks.py here: when the spec is not applied, a target class of the same
        name is the one parse_model finds.
        """
        if name.startswith(TORCH_PREFIXES):
            return None
        spec = self.registry.find(name)
        if spec is None or name not in self.applied_names and name in self.target.known_layers:
            return None
        return spec

    def outputs(self, name: str, args: list | None = None) -> int:
        """Index slots a row takes: the number of outputs of a backbone-role spec (for its ``args``), else 1."""
        spec = self.spec_behind(name)
        return len(spec.strides_of(args)) if spec is not None and spec.role == "backbone" else 1

    def resolve_backbone(self, name: str, option: str):
        """(YAML name, spec) of a backbone-role spec; anything else is an error naming ``option``."""
        spec = self.registry.find(name)
        backbones = sorted(e for s in self.registry if s.role == "backbone" for e in s.exports)
        if spec is None:
            what = "a layer of the target" if name in self.target.known_layers else "not a module yamlforge knows"
            close = difflib.get_close_matches(name, backbones, n=3, cutoff=0.6)
            raise YamlforgeError(f"'{name}' is {what}; --backbone takes a backbone module"
                                 + (f"; did you mean {', '.join(close)}?" if close else ""), where=option,
                                 hint=f"backbone modules: {', '.join(backbones)}" if backbones else None)
        if spec.role != "backbone":
            raise YamlforgeError(f"{spec.name} is a {spec.role} module; --backbone takes a backbone module "
                                 f"({', '.join(backbones)})", where=option,
                                 hint=f"--insert-after N={name} or --replace N={name} adds a layer")
        return (name if name in spec.exports else spec.exports[0]), spec

    def resolve(self, name: str, option: str, *, in_base: bool = False):
        """(YAML name, spec or None); an unknown module is an error naming ``option``.

        ``in_base``: a module already in the base, where a backbone-role module is a row like any other.
        """
        spec = self.spec_behind(name)
        if spec is not None:
            if spec.role != "layer" and not in_base:
                raise YamlforgeError(f"{spec.name} is a {spec.role} module; layer edits take layer modules",
                                     where=option, hint=f"--backbone {name} swaps the whole backbone section")
            return (name if name in spec.exports else spec.exports[0]), spec
        if name.startswith(TORCH_PREFIXES) or name in self.target.known_layers:
            return name, None
        names = sorted(set(self.target.known_layers) | {s.name for s in self.registry})
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.6)
        raise YamlforgeError(f"unknown module '{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""),
                             where=option, hint="yamlforge list  # modules yamlforge can add; nn.* names are torch's")


    def check_applied(self, spec, option: str) -> None:
        """A spec module builds only in a checkout yamlforge applied it to; the error gives the command that does."""
        if not {spec.name, *spec.exports} & self.applied_names:
            raise YamlforgeError(f"module {spec.name} is not applied to this checkout, so {self.target.label} "
                                 "cannot build it", where=option,
                                 hint=f"yamlforge apply --repo {self.target.root} --module {spec.name}")


def _edit_args(edit: Edit, spec) -> tuple[list[Any], str]:
    """The YAML args list (values and text): given ones, then the spec's defaults for the rest. The args are those
    of the export the edit names (``revcol_custom`` takes more than ``revcol_tiny``)."""
    spec_args = spec.args_for(edit.module) if spec is not None else ()
    if not spec_args:
        if any(name for name, _ in edit.args):
            raise YamlforgeError(f"named args need a module spec that names them; {edit.module} has none",
                                 where=edit.option)
        texts = [text for _, text in edit.args]
    else:
        names = [a.name for a in spec_args]
        slots: dict[str, str] = {}
        positional = [text for name, text in edit.args if name is None]
        if len(positional) > len(names):
            raise YamlforgeError(f"{edit.module} takes {len(names)} args ({', '.join(names)}), got {len(positional)}",
                                 where=edit.option, hint=f"yamlforge show {spec.name}")
        slots.update(zip(names, positional))
        for name, text in edit.args:
            if name is None:
                continue
            if name not in names:
                raise YamlforgeError(f"{edit.module} has no arg '{name}' (args: {', '.join(names)})",
                                     where=edit.option, hint=f"yamlforge show {spec.name}")
            if name in slots:
                raise YamlforgeError(f"arg '{name}' given twice", where=edit.option)
            slots[name] = text
        texts = []
        for arg in spec_args:
            if arg.name in slots:
                texts.append(slots[arg.name])
            elif arg.required:
                raise YamlforgeError(f"{edit.module} needs arg '{arg.name}'", where=edit.option,
                                     hint=f"yamlforge show {spec.name}")
            else:
                texts.append(yaml_text(arg.default))
    values = [parse_value(t, edit.option) for t in texts]
    return values, f"[{', '.join(texts)}]"


def _factor(layer: Layer, specs: dict[str, Any]) -> Fraction | tuple[Fraction, ...] | None:
    """A layer's own stride; a backbone's output strides (relative to its input), one per output."""
    spec = specs.get(layer.module)
    if spec is not None:
        if spec.role == "backbone":
            return tuple(Fraction(s) for s in spec.strides_of(layer.args))
        return Fraction(spec.stride)  # a layer's is an int, or a Fraction below 1 for an upsampler (1/2)
    return builtin_factor(layer.module, layer.args)


def _check_strides(graph: ModelGraph, edits: list[Edit], specs: dict[str, Any], from_last_input: frozenset[str]) -> None:
    """An edit may not change the resolution later layers run at: compare each edited layer's own factor."""
    base_strides = output_strides(graph.base, lambda layer: _factor(layer, specs), from_last_input)
    for edit in edits:
        if edit.op in ("remove", "replace"):
            _check_kept_stride(graph, edit, specs, base_strides)
            continue
        factor = _factor(graph.inserted_by(edit.option), specs)
        if factor is not None and factor != 1:
            raise YamlforgeError(f"{edit.module} has stride {factor}: inserted, it would change the resolution of "
                                 "every layer after it", where=edit.option,
                                 hint="--replace a layer with the same stride, or --allow-stride-change")


def _check_kept_stride(graph: ModelGraph, edit: Edit, specs: dict[str, Any], base_strides: dict) -> None:
    """A replaced layer keeps its own stride; a removed one had stride 1."""
    key, _ = graph.slot_owner[edit.layer]  # the edit was accepted, so the slot exists
    old = graph.base[key]
    old_factor = _factor(old, specs)
    new_factor = Fraction(1) if edit.op == "remove" else _factor(graph.current(key), specs)
    if old_factor is None or new_factor is None or old_factor == new_factor:
        return
    source = old.refs[0].producer
    before = base_strides.get((source, old.refs[0].output))
    after = base_strides.get((old.key, old.outputs - 1))
    now = before * new_factor if before is not None else None
    doing = "removing it" if edit.op == "remove" else \
        f"replacing it with {edit.module}, which {_factor_words(new_factor)},"
    message = (f"layer {edit.layer} is {old.module} with stride {old_factor} ({stride_label(before)} -> "
               f"{stride_label(after)}); {doing} would leave it and every layer after it at "
               f"{stride_label(now)} instead of {stride_label(after)}")
    hint = None
    if isinstance(source, int) and edit.op == "replace":
        source = graph.base_slot[source] + old.refs[0].output
        hint = (f"--insert-after {source}={edit.module} or --replace {source}={edit.module} keeps the "
                "resolution; --allow-stride-change to do it anyway")
    elif edit.op == "remove":
        hint = "--allow-stride-change to do it anyway"
    raise YamlforgeError(message, where=f"layer {edit.layer}", hint=hint)


def _factor_words(factor: Fraction) -> str:
    return "keeps the resolution" if factor == 1 else f"has stride {factor}"


def _detect(request: GenRequest, base_hint: Path | None):
    from ..targets import detect_target

    if request.repo is not None:
        return detect_target(request.repo)
    # Without --repo: the checkout that holds the base file, else the current directory.
    for folder in ([*base_hint.parents] if base_hint else []) + [Path.cwd()]:
        try:
            return detect_target(folder)
        except YamlforgeError:
            continue
    raise YamlforgeError("no Ultralytics or YOLOv9 checkout found for the base", where="--repo",
                         hint="yamlforge gen-yaml BASE --repo PATH/TO/CHECKOUT ...")


class _Inputs(NamedTuple):
    """A gen-yaml call's inputs once its recipe is merged in and its base is found and read."""

    target: Target
    base: Base
    old_text: str
    edits: list[Edit]
    backbone: Edit | None
    scale: str | None
    nc: int | None


def _resolve_inputs(request: GenRequest) -> _Inputs:
    """Merge the recipe (the command line wins), find the checkout and the base, and read the base."""
    recipe = load_recipe(request.recipe) if request.recipe else Recipe(path=Path.cwd())
    base_name = request.base or recipe.base
    if not base_name:
        raise YamlforgeError("no base model: give BASE or a recipe with 'base:'", where="BASE")
    nc = request.nc if request.nc is not None else recipe.nc
    if nc is not None and (not isinstance(nc, int) or isinstance(nc, bool) or nc < 1):
        raise YamlforgeError(f"--nc must be a positive whole number, got {nc}", where="--nc")
    relative_to = recipe.path.parent if request.recipe else None
    target = _detect(request, _existing_base(base_name, relative_to))
    base = resolve_base(base_name, target, relative_to=relative_to)
    try:
        old_text = base.path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise YamlforgeError(f"cannot read the base: {exc}", where=str(base.path)) from None
    return _Inputs(target, base, old_text, recipe.edits + list(request.edits), request.backbone or recipe.backbone,
                   request.scale or recipe.scale, nc)


def _existing_base(base_name: str, relative_to: Path | None) -> Path | None:
    """The base as a file (next to the recipe first), to find the checkout it sits in; None for a model name."""
    as_path = Path(base_name).expanduser()
    if relative_to is not None and not as_path.is_absolute() and (relative_to / as_path).is_file():
        as_path = relative_to / as_path
    return as_path.resolve() if as_path.is_file() else None


def compile_yaml(request: GenRequest) -> GenResult:
    """Everything gen-yaml does short of writing: resolve, edit, validate, name the output."""
    inputs = _resolve_inputs(request)
    modules = _Modules(inputs.target, request.spec_paths)
    layout = ModelLayout(inputs.old_text, where=str(inputs.base.path))
    graph = layout.graph(modules.outputs)
    in_base = _specs_in_base(graph, modules)
    specs: dict[str, Any] = {name: spec for name, (spec, _, _) in in_base.items()}
    to_apply = _apply_edits(graph, inputs, request.replace_all, modules, specs, request.python)
    for spec, option, keys in in_base.values():
        if any(key not in graph.swapped for key in keys):
            to_apply.append((spec, option))
    if not request.allow_stride_change:
        _check_strides(graph, inputs.edits, specs, inputs.target.kind.stride_from_last_input)
    _check_constraints(graph, specs, layout.data, inputs.scale or inputs.base.scale)
    for spec, option in to_apply:  # after the strides: a wrong edit is reported before a missing apply
        modules.check_applied(spec, option)
    return _result(request, inputs, layout, graph)


def _spec_width(specs: dict[str, Any]) -> widths.WidthOf:
    """A layer's output width: a spec module's by its channel rule, the target's own by widths.builtin_width."""
    def width_of(layer: Layer, inputs: list[int | None], scaling: widths.Scaling) -> int | None:
        spec = specs.get(layer.module)
        if spec is None:
            return widths.builtin_width(layer, inputs, scaling)
        if spec.role == "layer" and spec.channels in ("keep", "none"):
            return inputs[0]
        first = layer.args[0] if layer.args else None
        if spec.role == "layer" and spec.channels == "in_out" and isinstance(first, int):
            return scaling.scaled(first)
        return None
    return width_of


def _constraint_failures(graph: ModelGraph, specs: dict[str, Any], scaling: widths.Scaling):
    """(layer, width, why) for each constrained spec layer whose input (or in_out output) width breaks the spec."""
    found = widths.output_widths(graph.layers, scaling, _spec_width(specs))
    for layer in graph.layers:
        spec = specs.get(layer.module)
        if spec is None or spec.constraints is None:
            continue
        ref = layer.refs[0]
        checked = [found.get((ref.producer, ref.output))]
        if spec.channels == "in_out":
            checked.append(found.get((layer.key, 0)))
        for width in checked:
            why = spec.constraints.violation(width) if width is not None else None
            if why:
                yield layer, width, why


def _check_constraints(graph: ModelGraph, specs: dict[str, Any], data: dict, scale: str | None) -> None:
    """Refuse, before anything is written, a spec layer whose scaled width breaks its ``constraints``."""
    if not any(getattr(s, "constraints", None) for s in specs.values()):
        return
    scaling = widths.pick_scaling(data, scale)
    failure = next(_constraint_failures(graph, specs, scaling), None)
    if failure is None:
        return
    layer, width, why = failure
    slot = slot_numbers(graph.layers)[layer.key]
    working = [s.name for s in widths.scalings(data) if s.name and next(_constraint_failures(graph, specs, s), None)
               is None]
    at = f" at scale {scaling.name}" if scaling.name else ""
    hint = f"--scale {working[0]} builds it (scales that work: {', '.join(working)})" if working else \
        "put it where the width meets the constraint, or widen the layer before it"
    raise YamlforgeError(f"layer {slot} ({layer.module}) gets {width} channels{at}, {why} (its spec's constraints: "
                         f"{specs[layer.module].constraints.describe()})", where=layer.edited_by or f"layer {slot}",
                         hint=hint)


def _specs_in_base(graph: ModelGraph, modules: _Modules) -> dict[str, tuple[Any, str, list[int]]]:
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


def _apply_edits(graph: ModelGraph, inputs: _Inputs, replace_all: list[ReplaceAll], modules: _Modules,
                 specs: dict[str, Any], python: str | None = None) -> list[tuple[Any, str]]:
    """The backbone swap, then ``--replace-all``, then the edits; returns the (spec, option) pairs to be applied."""
    to_apply: list[tuple[Any, str]] = []
    if inputs.backbone is not None and is_timm(inputs.backbone.module):
        _swap_timm_backbone(graph, inputs.backbone, modules, specs, to_apply, python)
    elif inputs.backbone is not None:
        _swap_backbone(graph, inputs.backbone, modules, specs, to_apply)
    for swap in replace_all:
        _replace_all(graph, swap, modules, specs, to_apply)
    for edit in inputs.edits:
        _apply_edit(graph, edit, modules, specs, to_apply)
    graph.validate()
    return to_apply


def _apply_edit(graph: ModelGraph, edit: Edit, modules: _Modules, specs: dict[str, Any],
                to_apply: list[tuple[Any, str]]) -> None:
    """One ``--replace``, ``--insert-after``, ``--insert-before`` or ``--remove``."""
    if edit.op == "remove":
        graph.remove(edit.layer, edit.option)
        return
    yaml_name, spec = modules.resolve(edit.module, edit.option)
    if spec is not None:
        specs[yaml_name] = spec
        to_apply.append((spec, edit.option))
    args, args_text = _edit_args(edit, spec)
    edit_graph = {"replace": graph.replace, "insert-after": graph.insert_after, "insert-before": graph.insert_before}
    edit_graph[edit.op](edit.layer, yaml_name, args, args_text, edit.repeats or 1, edit.option)


def _result(request: GenRequest, inputs: _Inputs, layout: ModelLayout, graph: ModelGraph) -> GenResult:
    """Name the output, set ``nc`` and the scale, render, re-load the text, and refuse to overwrite unless forced."""
    named = [Edit("replace", -1, r.new, option=r.option) for r in request.replace_all]  # for the output's name
    edits = ([inputs.backbone] if inputs.backbone else []) + named + inputs.edits
    output = _output_path(request, inputs.base, inputs.scale, edits, inputs.nc)
    _set_nc(layout, inputs.nc)
    kept_scale = _apply_scale(layout, inputs.base, inputs.target, inputs.scale, output)
    rendered = layout.render(graph)
    _reload_check(rendered, output, nc=inputs.nc, scale=kept_scale)
    exists = output.exists()
    if exists and not request.force and not request.dry_run:
        raise YamlforgeError(f"'{output}' exists; nothing was written", where="-o",
                             hint="pass --force to overwrite it, or -o another path")
    text = rendered.text if rendered.text == inputs.old_text else record_base(rendered.text, inputs.base.path, output)
    if RECORDED_BASE.match(text) and text != inputs.old_text:  # the old -> new layer map `weights --base` reads
        from .layermap import record_map

        text = record_map(text, rendered.placements, len(graph.base))
    return GenResult(inputs.base.path, output, inputs.old_text, text, rendered.changes, inputs.target.root, exists)


def record_base(text: str, base: Path, output: Path) -> str:
    """``text`` whose first line names its base, relative to the output's folder (``yamlforge graph`` highlights
    what differs from it); a record an earlier gen-yaml left in the base is replaced. An unedited copy gets none:
    it stays byte for byte the base."""
    if RECORDED_BASE.match(text):
        text = text.partition("\n")[2]
    where = os.path.relpath(base, output.parent)
    return BASE_RECORD.format(base=where) + text if not re.search(r"\s", where) else text


def _swap_backbone(graph: ModelGraph, backbone: Edit, modules: _Modules, specs: dict[str, Any],
                   to_apply: list[tuple[Any, str]]) -> None:
    """``--backbone``: one row of the backbone module replaces ``backbone:``; the head reads its outputs by stride."""
    yaml_name, spec = modules.resolve_backbone(backbone.module, backbone.option)
    args, args_text = _edit_args(backbone, spec)
    old_strides = output_strides(graph.base, lambda layer: _factor(layer, specs),
                                       modules.target.kind.stride_from_last_input)
    graph.swap_backbone(yaml_name, args, args_text, tuple(Fraction(s) for s in spec.output_strides), old_strides,
                        backbone.option)
    specs[yaml_name] = spec
    to_apply.append((spec, backbone.option))


def _swap_timm_backbone(graph: ModelGraph, backbone: Edit, modules: _Modules, specs: dict[str, Any],
                        to_apply: list[tuple[Any, str]], python: str | None) -> None:
    """``--backbone timm:NAME``: the target's timm says the model's stages; the row keeps those the head reads."""
    spec = modules.registry.get(TIMM_SPEC, option=backbone.option)
    old_strides = output_strides(graph.base, lambda layer: _factor(layer, specs),
                                 modules.target.kind.stride_from_last_input)
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
    graph.swap_backbone(TIMM_SPEC, args, text, tuple(Fraction(s) for s in strides), old_strides, backbone.option)
    specs[TIMM_SPEC] = spec
    to_apply.append((spec, backbone.option))


def _replace_all(graph: ModelGraph, swap: ReplaceAll, modules: _Modules, specs: dict[str, Any],
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


def _output_path(request: GenRequest, base: Base, scale: str | None, edits: list[Edit], nc: int | None) -> Path:
    if request.output is not None:
        out = Path(request.output).expanduser()
        return (out / f"{_output_stem(base, scale, edits, nc)}.yaml" if out.is_dir() else out).resolve()
    return base.path.parent / f"{_output_stem(base, scale, edits, nc)}.yaml"


MAX_SUFFIX = 120  # characters of module names in a default output name; more are counted, not listed


def _output_stem(base: Base, scale: str | None, edits: list[Edit], nc: int | None) -> str:
    stem = base.name
    if scale and scale != base.scale:
        stem = re.sub(r"^(.*?\d+)([nslmx])?(?=\D|$)", lambda m: m.group(1) + scale, stem, count=1) \
            if re.search(r"\d", stem) else f"{stem}-{scale}"
    names = list(dict.fromkeys(_stem_part(e.module) for e in edits if e.module))
    removed = [f"no{e.layer}" for e in edits if e.op == "remove"]
    parts = names + removed
    while len(parts) > 1 and len("-".join(parts)) > MAX_SUFFIX:  # file names stop at 255 bytes
        parts = parts[:-2] + [f"and{len(names + removed) - len(parts) + 2}more"]
    suffix = "-".join(parts) or (f"nc{nc}" if nc is not None else "copy")
    return f"{stem}-{suffix}"


def _stem_part(module: str) -> str:
    """A module's part of the output name: ``nn.Identity`` -> ``Identity``, ``timm:resnet18.a1_in1k`` ->
    ``timm-resnet18``."""
    if is_timm(module):
        return "timm-" + module.removeprefix(TIMM_PREFIX).partition(".")[0]
    return module.rpartition(".")[2]


def _set_nc(layout: ModelLayout, nc: int | None) -> None:
    """``--nc``: rewrite the number in place, comment and spacing kept."""
    if nc is None:
        return
    found = entry(layout.node, "nc")
    if found is None:
        raise YamlforgeError("the base has no 'nc:' key to set", where="--nc")
    value = layout.data["nc"]
    if not isinstance(value, int) or isinstance(value, bool) or not re.fullmatch(r"\d+", found[1].value):
        raise YamlforgeError("the base's 'nc:' is not a plain number", where="--nc")
    layout.splice_node(found[1], str(nc))


def _apply_scale(layout: ModelLayout, base: Base, target: Target, scale: str | None, output: Path) -> str | None:
    """Make the output build at the requested scale: keep a name the target parses, or keep only that scale row.

    Returns the one scale the output keeps, None when it keeps them all.
    """
    scales = layout.data.get("scales")
    if scale and (not isinstance(scales, dict) or len(scales) < 2):
        raise YamlforgeError(f"the base {base.path.name} has a single scale; --scale cannot pick another",
                             where="--scale")
    wanted = scale or base.scale
    if not wanted or not isinstance(scales, dict) or len(scales) < 2:
        return None
    if wanted not in scales:
        raise YamlforgeError(f"scale '{wanted}' is not in the base (scales: {', '.join(scales)})", where="--scale")
    parsed = guess_scale(target.scale_pattern, output.stem)
    if parsed == wanted:
        return None
    if parsed:
        raise YamlforgeError(f"the output name {output.name} makes {target.label} build scale '{parsed}', "
                             f"not '{wanted}'", where="-o", hint=f"name it like {base.name}-*.yaml")
    scale_rows = entry(layout.node, "scales")[1]
    if scale_rows.flow_style:
        raise YamlforgeError(f"the base's scales are one flow mapping, so the other scales cannot be dropped from the "
                             f"output; name it so {target.label} reads scale '{wanted}' from it",
                             where="-o", hint="write the base's scales one per line (block style), so the others "
                                              "can be dropped")
    for key, value in scale_rows.value:
        if key.value != wanted:
            layout.cut_lines(key, value)
    return wanted


def _reload_check(rendered: Rendered, output: Path, *, nc: int | None, scale: str | None) -> None:
    """Re-load what would be written and compare it with the plan (the writer never writes a broken file)."""
    data, _ = load_nodes(rendered.text, where=str(output), what="output (internal error, please report it)")
    rows = list(data["backbone"]) + list(data["head"])
    expected = [[p.from_written, p.layer.repeats, p.layer.module, p.layer.args] for p in rendered.placements]
    if rows != expected:
        bad = next((i for i, (a, b) in enumerate(zip(rows, expected)) if a != b), min(len(rows), len(expected)))
        problem = f"layer {bad}"
    elif nc is not None and data.get("nc") != nc:
        problem = "nc"
    elif scale is not None and list(data.get("scales") or ()) != [scale]:
        problem = "scales"
    else:
        return
    raise YamlforgeError(f"internal error: the generated YAML does not re-load as planned at {problem}; "
                         "nothing was written", where=str(output), hint="please report this with the command")


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
