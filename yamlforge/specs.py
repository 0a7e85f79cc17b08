"""Loads and validates declarative module specs (``module_specs/*.yaml`` and user ``--spec`` files)."""

from __future__ import annotations

import keyword
import re
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from ruamel.yaml.nodes import MappingNode

from . import stamped_cache
from .errors import YamlforgeError
from .modelyaml.load import line_of, load_nodes
from .resources import SPECS_DIR
from .runners.yf_weightmap import WeightMap, parse_official
from .source_files import read_folder

ROLES = ("layer", "backbone")
CHANNEL_RULES = ("keep", "in_out", "none", "custom")
BACKBONE_CHANNELS = "backbone"  # a backbone's output channels come from its width_list; the spec names no rule
REPEATS = ("none", "fold")

# field name -> (required, python types accepted, one-line meaning used in error messages)
FIELDS: dict[str, tuple[bool, tuple[type, ...], str]] = {
    "name": (True, (str,), "the name used in model YAMLs and on the command line"),
    "summary": (True, (str,), "one line saying what the module does"),
    "paper": (True, (str,), "the paper the design comes from"),
    "source": (True, (str,), "implementation file, or package folder ending in '/', relative to the spec"),
    "entry": (False, (str,), "the file of a package folder that defines the exports (folder sources only)"),
    "exports": (True, (list,), "class (or factory) names the target must know"),
    "role": (True, (str,), "layer | backbone"),
    "channels": (False, (str,), "keep | in_out | none | custom (layers only)"),
    "repeats": (False, (str,), "none | fold (in_out only: insert n into args like C2f)"),
    "branch": (False, (str,), "jinja2 parse_model branch body (channels: custom)"),
    "stride": (False, (int, str, list),
               "reduction, 1/2 for a 2x upsampler (layer); output strides or their arg (backbone)"),
    "args": (False, (list,), "YAML args after those the channel rule fills in"),
    "export_args": (False, (dict,), "more args for some exports, after 'args': {export: [arg, ...]}"),
    "requires": (False, (list,), "extra pip requirements"),
    "constraints": (False, (dict,), "channel widths: multiple: N, power_of_two: true, relations: [text] (layers)"),
    "official": (False, (dict,),
                 "the authors' implementation and how its weights map to ours (yamlforge/runners/yf_weightmap.py)"),
}

REQUIRED = object()


@dataclass(frozen=True)
class WidthConstraints:
    """What a layer's channel widths must meet (``constraints:``); ``relations`` only document the constructor
    arguments its adapter derives from the width (``hidden = 2 * inp``)."""

    multiple: int = 1
    power_of_two: bool = False
    relations: tuple[str, ...] = ()

    def violation(self, width: int) -> str | None:
        """Why ``width`` fails (``not a multiple of 32``), None when it is fine."""
        if width % self.multiple:
            return f"not a multiple of {self.multiple}"
        if self.power_of_two and width & (width - 1):
            return "not a power of two"
        return None

    def describe(self) -> str:
        words = [f"multiple of {self.multiple}"] if self.multiple > 1 else []
        return " and ".join(words + (["power of two"] if self.power_of_two else [])) or "any width"


@dataclass(frozen=True)
class Arg:
    """One YAML argument of a module (after the channel arguments parse_model fills in)."""

    name: str
    default: Any = REQUIRED
    doc: str = ""

    @property
    def required(self) -> bool:
        return self.default is REQUIRED


@dataclass(frozen=True)
class ModuleSpec:
    """A validated module spec; ``source`` is an absolute path inside the spec's folder: a ``.py`` file, or a package
    folder whose file ``entry`` (relative to it) defines the exports."""

    name: str
    summary: str
    paper: str
    source: Path
    exports: tuple[str, ...]
    role: str
    channels: str
    spec_path: Path
    repeats: str = "none"
    branch: str | None = None
    stride: int | Fraction | tuple[int, ...] | str = 1  # a Fraction below 1 for an upsampler (1/2: 2x); str: an arg
    args: tuple[Arg, ...] = ()
    export_args: dict[str, tuple[Arg, ...]] = field(default_factory=dict, hash=False)  # export -> args after ``args``
    requires: tuple[str, ...] = ()
    official: WeightMap | None = None
    bundled: bool = field(default=False, compare=False)
    entry: str | None = None  # package sources only: the file defining the exports, relative to ``source``
    constraints: WidthConstraints | None = None  # layers only: what the channel widths parse_model passes must meet

    def args_for(self, name: str) -> tuple[Arg, ...]:
        """The YAML args of the export (or spec) called ``name``: the shared ``args``, then that export's own."""
        return self.args + self.export_args.get(name, ())

    @property
    def is_package(self) -> bool:
        return self.entry is not None

    @property
    def file_stem(self) -> str:
        """Name of the module file (``shsa`` for ``shsa.py``) or package folder placed in the target."""
        return self.source.stem

    @property
    def import_stem(self) -> str:
        """The module defining the exports, below the target's modules: ``shsa``, or ``dualpath.blocks``."""
        if self.entry is None:
            return self.file_stem
        return ".".join([self.file_stem, *self.entry.removesuffix(".py").split("/")]).removesuffix(".__init__")

    def source_text(self) -> str:
        """The text of the file defining the exports."""
        path = self.source / self.entry if self.entry is not None else self.source
        return path.read_text(encoding="utf-8")

    def package_files(self) -> dict[str, str]:
        """Every ``.py`` of a package source by path relative to its folder (one file: ``{name: text}``)."""
        if self.entry is None:
            return {self.source.name: self.source_text()}
        return read_folder(self.source.resolve())

    def digest(self) -> str:
        """sha256 of the spec and its implementation: what the manifest records."""
        import hashlib  # not at the top: it loads OpenSSL (ms), and gen-yaml reads specs without hashing them

        h = hashlib.sha256(self.spec_path.read_bytes())
        if self.entry is None:
            h.update(self.source.read_bytes())
        for rel, text in sorted(self.package_files().items()) if self.entry is not None else ():
            h.update(f"{rel}\n{text}".encode())
        return h.hexdigest()

    @property
    def output_strides(self) -> tuple[int | Fraction, ...]:
        """Backbone output strides (``(4, 8, 16, 32)``; for one whose rows carry them, its default row's); a layer has
        one entry, its own stride."""
        if isinstance(self.stride, str):
            return tuple(next(a.default for a in self.args if a.name == self.stride))
        return self.stride if isinstance(self.stride, tuple) else (self.stride,)

    def strides_of(self, args: list | None) -> tuple[int | Fraction, ...]:
        """The output strides of a row with YAML ``args``: the spec's, or (``stride: ARG``) that row's own ARG; a row
        without a usable one counts as the default's."""
        if not isinstance(self.stride, str) or args is None:
            return self.output_strides
        position = [a.name for a in self.args].index(self.stride)
        given = args[position] if position < len(args) else None
        if isinstance(given, list) and given and all(isinstance(s, int) and s > 0 for s in given):
            return tuple(given)
        return self.output_strides


class _Where:
    """Builds the error for a spec field: the message plus ``file:line`` of that field (line 1 for a missing one)."""

    def __init__(self, path: Path, node: MappingNode):
        self.path, self.node = path, node

    def __call__(self, key: str | None, message: str) -> YamlforgeError:
        return YamlforgeError(message, where=f"{self.path}:{line_of(self.node, key)}")


def _read(path: Path) -> tuple[dict, _Where]:
    """The spec's mapping and its error builder; an unreadable file or malformed YAML is one error."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise YamlforgeError(f"cannot read module spec: {exc.strerror}", where=str(path)) from None
    data, node = load_nodes(text, where=str(path), what="YAML in module spec")
    if not isinstance(data, dict) or not isinstance(node, MappingNode):
        raise YamlforgeError("a module spec must be a mapping of fields", where=f"{path}:1")
    return data, _Where(path, node)


def _check_fields(data: dict, fail: _Where) -> None:
    """Every field is known, every required one present, each of its declared type."""
    for key in data:
        if key not in FIELDS:
            raise fail(key, f"unknown field '{key}' (known: {', '.join(FIELDS)})")
    for key, (required, types, meaning) in FIELDS.items():
        if key not in data:
            if required:
                raise fail(None, f"missing field '{key}': {meaning}")
            continue
        value = data[key]
        if not isinstance(value, types) or isinstance(value, bool):
            kinds = " or ".join(t.__name__ for t in types)
            raise fail(key, f"field '{key}' must be a {kinds}, got {type(value).__name__}: {meaning}")


def _is_identifier(name: object) -> bool:
    return isinstance(name, str) and name.isidentifier() and not keyword.iskeyword(name)


def _check_names(data: dict, fail: _Where) -> None:
    """``name`` and each of ``exports`` are Python identifiers; exports are listed once each."""
    if not _is_identifier(data["name"]):
        raise fail("name", f"field 'name': '{data['name']}' is not a Python identifier")
    exports = data["exports"]
    if not exports:
        raise fail("exports", "field 'exports' must list at least one class name")
    for export in exports:
        if not _is_identifier(export):
            raise fail("exports", f"field 'exports': {export!r} is not a Python identifier")
    if len(set(exports)) != len(exports):
        raise fail("exports", "field 'exports' lists a name twice")


def _channel_rule(data: dict, fail: _Where) -> str:
    """The spec's channel rule: a layer names one of CHANNEL_RULES, a backbone none (its width_list decides)."""
    role, channels = data["role"], data.get("channels")
    if role not in ROLES:
        raise fail("role", f"field 'role': '{role}' is not one of {', '.join(ROLES)}")
    if role == "backbone":
        if channels is not None or "branch" in data:
            key = "channels" if channels is not None else "branch"
            raise fail(key, f"field '{key}': a backbone is built as cls(input channels, *args) and its output "
                            "channels come from its width_list; drop this field")
        return BACKBONE_CHANNELS
    if channels is None:
        raise fail(None, f"missing field 'channels': {' | '.join(CHANNEL_RULES)}")
    if channels not in CHANNEL_RULES:
        raise fail("channels", f"field 'channels': '{channels}' is not one of {', '.join(CHANNEL_RULES)}")
    return channels


def _repeats(data: dict, channels: str, fail: _Where) -> str:
    repeats = data.get("repeats", "none")
    if repeats not in REPEATS:
        raise fail("repeats", f"field 'repeats': '{repeats}' is not one of {', '.join(REPEATS)}")
    if repeats == "fold" and channels != "in_out":
        raise fail("repeats", "field 'repeats': 'fold' needs channels: in_out (it joins the target's repeat modules)")
    return repeats


def _branch(data: dict, channels: str, fail: _Where) -> str | None:
    """The jinja2 parse_model branch body of a ``channels: custom`` spec (and only of one), parsed once to check it."""
    branch = data.get("branch")
    if channels == "custom" and not branch:
        raise fail("channels", "channels: custom needs a 'branch' field with the parse_model branch body")
    if branch and channels != "custom":
        raise fail("branch", "field 'branch' is only used with channels: custom")
    if branch:
        import jinja2

        try:
            jinja2.Environment().parse(branch)
        except jinja2.TemplateSyntaxError as exc:
            raise fail("branch", f"field 'branch' is not a valid jinja2 template: {exc.message}") from None
    return branch


FRACTION = re.compile(r"\s*(\d+)\s*/\s*(\d+)\s*")  # ``1/2``: what YAML reads as a string


def _stride(data: dict, fail: _Where) -> int | Fraction | tuple[int, ...]:
    """A layer's stride (a positive int, or a fraction string ``1/2`` for a 2x upsampler), or a backbone's output
    strides (a non-empty list of positive ints)."""
    stride = data.get("stride", 1)
    if data["role"] == "backbone":
        if isinstance(stride, str):
            return _stride_arg(data, stride, fail)
        if not isinstance(stride, list) or not stride or not all(isinstance(s, int) and s > 0 for s in stride):
            raise fail("stride", "a backbone spec needs 'stride': the list of its output strides, e.g. [4, 8, 16, 32], "
                                 "or the name of its arg that lists them")
        return tuple(stride)
    match = FRACTION.fullmatch(stride) if isinstance(stride, str) else None
    if match and int(match[1]) > 0 and int(match[2]) > 0:
        stride = Fraction(int(match[1]), int(match[2]))
        return int(stride) if stride.denominator == 1 else stride
    if not isinstance(stride, int) or stride < 1:
        raise fail("stride", f"field 'stride' of a layer must be a positive whole number (1: resolution kept) or a "
                             f"fraction such as 1/2 (a 2x upsampler), got {stride!r}")
    return stride


def _stride_arg(data: dict, name: str, fail: _Where) -> str:
    """``stride: ARG`` of a backbone whose outputs depend on its row (a timm model name): ARG is one of its shared
    args, and its default lists strides (what ``yamlforge list`` and apply's probe use)."""
    default = next((a.get("default") for a in data.get("args", []) if isinstance(a, dict) and a.get("name") == name),
                   None)
    if not isinstance(default, list) or not default or not all(isinstance(s, int) and s > 0 for s in default):
        raise fail("stride", f"field 'stride': '{name}' must name an arg in 'args' whose default lists output "
                             "strides, e.g. [8, 16, 32]")
    return name


def _args(items: list, fail: _Where, key: str = "args", what: str = "'args'") -> tuple[Arg, ...]:
    """``args`` (or one export's list in ``export_args``): mappings of name, optional default and doc."""
    args = []
    for item in items:
        named = isinstance(item, dict) and isinstance(item.get("name"), str)
        if not named or set(item) - {"name", "default", "doc"}:
            raise fail(key, f"each entry of {what} is a mapping with 'name' and optional 'default' and 'doc'")
        args.append(Arg(item["name"], item.get("default", REQUIRED), item.get("doc", "")))
    return tuple(args)


def _export_args(data: dict, shared: tuple[Arg, ...], fail: _Where) -> dict[str, tuple[Arg, ...]]:
    """``export_args``: per export, the args it takes after the shared ones; names are exports, args new names."""
    per_export = {}
    for export, items in data.get("export_args", {}).items():
        if export not in data["exports"]:
            raise fail("export_args", f"field 'export_args': {export!r} is not one of the exports "
                                      f"({', '.join(data['exports'])})")
        if not isinstance(items, list):
            raise fail("export_args", f"field 'export_args': {export} must map to a list of args")
        args = _args(items, fail, "export_args", f"'export_args' {export}")
        names = [a.name for a in shared + args]
        if len(set(names)) != len(names):
            raise fail("export_args", f"field 'export_args': {export} names an arg twice ({', '.join(names)})")
        per_export[export] = args
    return per_export


def _constraints(data: dict, fail: _Where) -> WidthConstraints | None:
    """``constraints``: a layer's mapping of ``multiple`` (int > 0), ``power_of_two`` (bool), ``relations`` (texts)."""
    given = data.get("constraints")
    if given is None:
        return None
    if data["role"] != "layer":
        raise fail("constraints", "field 'constraints': only a layer's channel widths are checked; drop it")
    unknown = sorted(set(given) - {"multiple", "power_of_two", "relations"})
    multiple, power, relations = given.get("multiple", 1), given.get("power_of_two", False), given.get("relations", [])
    if unknown or not isinstance(multiple, int) or isinstance(multiple, bool) or multiple < 1 \
            or not isinstance(power, bool) or not isinstance(relations, list) \
            or not all(isinstance(r, str) for r in relations):
        raise fail("constraints", "field 'constraints' maps multiple (a positive whole number), power_of_two "
                                  "(true/false) and relations (a list of texts)"
                   + (f"; unknown key {', '.join(unknown)}" if unknown else ""))
    return WidthConstraints(multiple, power, tuple(relations))


def _requires(data: dict, fail: _Where) -> tuple[str, ...]:
    requires = data.get("requires", [])
    if not all(isinstance(r, str) and r.strip() for r in requires):
        raise fail("requires", "field 'requires' must list pip requirement strings")
    return tuple(requires)


def _source(path: Path, data: dict, fail: _Where) -> Path:
    """The implementation: an existing ``.py`` file, or package folder (``source: name/``), with an importable name
    inside the spec's own folder."""
    folder = path.resolve().parent
    given = data["source"]
    source = (folder / given).resolve()
    if not source.is_relative_to(folder):
        raise fail("source", f"field 'source': '{given}' points outside the spec's folder {folder}")
    if given.endswith("/"):
        if not _is_identifier(source.name):
            raise fail("source", f"field 'source': package folder '{given}' must have an importable name")
        if not source.is_dir():
            raise fail("source", f"field 'source': package folder '{given}' does not exist")
        return source
    if source.suffix != ".py" or not _is_identifier(source.stem):
        raise fail("source", f"field 'source': '{given}' must be a .py file with an importable name, or a package "
                             "folder ending in '/'")
    if not source.is_file():
        raise fail("source", f"field 'source': implementation file '{given}' does not exist")
    return source


def _entry(data: dict, source: Path, fail: _Where) -> str | None:
    """The file of a package folder that defines the exports (required for a folder, refused for a file)."""
    entry = data.get("entry")
    if not source.is_dir():
        if entry is not None:
            raise fail("entry", "field 'entry' is only used with a package folder source ('source: name/')")
        return None
    if entry is None:
        raise fail("source", f"missing field 'entry': the file of '{data['source']}' that defines the exports")
    path = (source / entry).resolve()
    parts = entry.removesuffix(".py").split("/")
    if not path.is_relative_to(source) or not entry.endswith(".py") or not all(map(_is_identifier, parts)):
        raise fail("entry", f"field 'entry': '{entry}' must be a .py file inside '{data['source']}' with an "
                            "importable path")
    if not path.is_file():
        raise fail("entry", f"field 'entry': '{entry}' does not exist in '{data['source']}'")
    return path.relative_to(source).as_posix()


def load_spec(path: Path, *, bundled: bool = False) -> ModuleSpec:
    """Read one spec file; any problem is a YamlforgeError naming ``file:line`` and the field."""
    path = Path(path)
    data, fail = _read(path)
    _check_fields(data, fail)
    _check_names(data, fail)
    channels = _channel_rule(data, fail)
    return ModuleSpec(
        name=data["name"],
        summary=data["summary"],
        paper=data["paper"],
        exports=tuple(data["exports"]),
        role=data["role"],
        channels=channels,
        spec_path=path.resolve(),
        repeats=_repeats(data, channels, fail),
        branch=_branch(data, channels, fail),
        stride=_stride(data, fail),
        args=(args := _args(data.get("args", []), fail)),
        export_args=_export_args(data, args, fail),
        requires=_requires(data, fail),
        constraints=_constraints(data, fail),
        source=(source := _source(path, data, fail)),  # last: a field error is reported before a file-system one
        entry=_entry(data, source, fail),
        official=parse_official(data["official"], fail) if "official" in data else None,
        bundled=bundled,
    )


def field_error(spec: ModuleSpec, key: str, message: str, *, hint: str | None = None) -> YamlforgeError:
    """An error about one field of a loaded spec, naming ``file:line`` of that field (for checks made later)."""
    _, fail = _read(spec.spec_path)
    error = fail(key, message)
    error.hint = hint
    return error


def bundled_specs() -> list[ModuleSpec]:
    """Every spec shipped in ``module_specs/``, sorted by name."""
    return sorted((load_spec(p, bundled=True) for p in SPECS_DIR.glob("*.yaml")), key=lambda s: s.name)


BUNDLED_INDEX_CACHE = "bundled-specs"  # folder in the cache: the bundled specs' names and exports


def bundled_index() -> dict[str, dict[str, str]]:
    """``{"names": {spec name: file}, "exports": {export: file}}`` of the bundled specs, file names relative to
    ``module_specs/``. Loading the six specs costs a gen-yaml call ~40 ms, so the index is kept in the cache while
    the spec files keep their stamps; a spec is then loaded, and checked, only when a call names it."""
    paths = sorted(SPECS_DIR.glob("*.yaml"))
    entry = stamped_cache.entry_file(BUNDLED_INDEX_CACHE, str(SPECS_DIR))
    cached = stamped_cache.read(entry)
    if cached is not None and sorted(cached["files"]) == [p.name for p in paths]:
        return cached
    specs = sorted((load_spec(p, bundled=True) for p in paths), key=lambda s: s.name)
    index = {"files": [p.name for p in paths], "names": {s.name: s.spec_path.name for s in specs},
             "exports": {e: s.spec_path.name for s in specs for e in s.exports}}
    stamped_cache.write(entry, index, paths)
    return index


class SpecRegistry:
    """Bundled specs plus the user's ``--spec`` files (a user spec overrides a bundled one of the same name).

    The user's specs are loaded (and checked) at once; a bundled one when it is first looked up.
    """

    def __init__(self, extra: list[Path] | tuple[Path, ...] = ()):
        self._index = bundled_index()
        self._bundled: dict[str, ModuleSpec] = {}  # file name -> loaded spec
        self._user: dict[str, ModuleSpec] = {}
        for path in extra:
            spec = load_spec(path)
            self._user[spec.name] = spec

    def _load_bundled(self, file: str | None) -> ModuleSpec | None:
        """The bundled spec in ``file`` unless a user spec of its name replaces it."""
        if file is None:
            return None
        if file not in self._bundled:
            self._bundled[file] = load_spec(SPECS_DIR / file, bundled=True)
        spec = self._bundled[file]
        return None if spec.name in self._user else spec

    @property
    def _specs(self) -> dict[str, ModuleSpec]:
        """Every spec by name (loads each bundled one)."""
        bundled = (self._load_bundled(file) for file in self._index["names"].values())
        return {**{s.name: s for s in bundled if s is not None}, **self._user}

    def __iter__(self):
        return iter(sorted(self._specs.values(), key=lambda s: s.name))

    def find(self, name: str) -> ModuleSpec | None:
        """The spec named ``name`` or exporting ``name`` (``revcol_tiny`` finds the RevCol spec)."""
        if name in self._user:
            return self._user[name]
        found = self._load_bundled(self._index["names"].get(name)) or \
            self._load_bundled(self._index["exports"].get(name))
        return found or next((s for s in self._user.values() if name in s.exports), None)

    def get(self, name: str, *, option: str = "--module") -> ModuleSpec:
        spec = self.find(name)
        if spec is None:
            import difflib

            names = sorted({*self._index["names"], *self._index["exports"], *self._user,
                            *(e for s in self._user.values() for e in s.exports)})
            close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
            raise YamlforgeError(
                f"unknown module '{name}'" + (f"; did you mean {', '.join(close)}?" if close else ""),
                where=option,
                hint="yamlforge list  # shows every bundled module; --spec PATH adds your own",
            )
        return spec
