"""Static analysis of a paper's module source for ``adopt``: files, nn.Module classes, imports (never runs it).

Everything here reads the AST (imports are rewritten by :mod:`yamlforge.patch.codemods.relative_imports`); only
:func:`missing_requirements` starts a process, ``requirements_runner.py`` in the target's Python, which looks the import
names up without importing them.
"""

from __future__ import annotations

import ast
import builtins
import json
import re
import shlex
import sys
from dataclasses import dataclass
from functools import cached_property, lru_cache
from pathlib import Path

from ..errors import YamlforgeError
from ..source_files import SKIPPED_DIRS, parse, read_folder, read_text
from ..target_python import RUNNERS, run_runner

PIP_NAMES = Path(__file__).parent.parent / "data" / "pip_names.json"
SOURCE_SUFFIXES = ("", ".py")
MODULE_BASES = {"torch.nn.Module", "torch.nn.modules.module.Module"}
IMPORT_GUARDS = frozenset({"ImportError", "ModuleNotFoundError", "Exception", "BaseException"})
REQUIREMENTS_RUNNER = RUNNERS / "requirements_runner.py"
FIND_SPEC_TIMEOUT = 60  # seconds; looking names up imports nothing, so this only guards a wedged interpreter


@dataclass(frozen=True)
class Source:
    """A paper's code: one file, or every ``.py`` of a folder (``files`` maps relative path to text)."""

    root: Path
    files: dict[str, str]
    is_package: bool
    entry: str
    name: str

    @cached_property
    def trees(self) -> dict[str, ast.Module]:
        """Each file's AST; a syntax error is a user error naming ``file:line``."""
        return {rel: parse(text, self.root / rel) for rel, text in self.files.items()}

    @cached_property
    def top_names(self) -> frozenset[str]:
        """The modules and sub-folders directly in the folder (for one file: its own module name)."""
        if not self.is_package:
            return frozenset({Path(self.entry).stem})
        return frozenset({rel.split("/")[0].removesuffix(".py") for rel in self.files} - {"__init__"})

    @cached_property
    def own_top_names(self) -> frozenset[str]:
        """Top-level import names that mean this source: :attr:`top_names` and, for a folder, its own name."""
        return self.top_names | {self.root.name} if self.is_package else self.top_names


@dataclass(frozen=True)
class Param:
    """One constructor parameter; ``default`` is the default's source text, None when the argument is required."""

    name: str
    default: str | None
    kind: str  # positional | keyword | var_positional | var_keyword


@dataclass(frozen=True)
class ClassInfo:
    """An nn.Module class of the source: ``params`` of its (possibly inherited) ``__init__``.

    ``forward_params`` are the names ``forward`` takes after ``self``; ``*args``/``**kwargs`` keep their stars.
    """

    name: str
    file: str
    line: int
    params: list[Param]
    forward_params: list[str]
    bases: list[str]


@dataclass(frozen=True)
class Requirement:
    """A third-party top-level import; ``provided`` when the target's own environment has it (torch, numpy).

    ``deferred`` says why importing the module never runs it (``inside a function``, ``under if __name__ ==
    "__main__"``), empty for an import that runs with the module: only those are needed to adopt the class.
    """

    import_name: str
    pip_name: str
    where: str
    optional: bool
    provided: bool = False
    deferred: str = ""

    @property
    def needed(self) -> bool:
        """Runs when the module is imported, unguarded: the class cannot load without it."""
        return not self.optional and not self.deferred


# ------------------------------------------------------------------ loading


def load_source(path: Path | str) -> Source:
    """Read SOURCE (a ``.py`` file, a file without extension, or a folder); every file must parse."""
    given = Path(path).expanduser()
    if not given.exists():
        raise YamlforgeError(f"'{path}' does not exist", where="SOURCE",
                             hint="pass a .py file, a file without extension, or a folder of .py files")
    if given.is_dir():
        root = given.resolve()
        source = Source(root=root, files=read_folder(root), is_package=True, entry="", name=_identifier(root.name))
    else:
        if given.suffix not in SOURCE_SUFFIXES:
            raise YamlforgeError(f"'{given.name}' is not a Python file", where=str(given),
                                 hint="pass a .py file, a file without extension, or a folder")
        file = given.resolve()
        source = repository_source(file, str(given)) or Source(
            root=file.parent, files={file.name: read_text(file, str(given))}, is_package=False, entry=file.name,
            name=_identifier(file.stem))
    source.trees  # noqa: B018 -- parse every file now: a syntax error is an error of load_source
    return source


def import_root(file: Path) -> Path:
    """The folder a repository's code is run from: up from ``file`` while the folder is a package."""
    root = file.parent
    while (root / "__init__.py").is_file() and root.parent != root:
        root = root.parent
    return root


def repository_source(file: Path, shown: str, root: Path | None = None) -> Source | None:
    """``file`` with the files of its repository it imports (``from model.basic import X`` run from the repository
    top, relative imports), followed transitively, as a package source; None when it imports none of them.
    ``root``: the folder imports start from (default: :func:`import_root`)."""
    root = root or import_root(file)
    entry = file.relative_to(root).as_posix()
    files = {entry: read_text(file, shown)}
    pending = [entry]
    while pending:
        rel = pending.pop()
        for found in _local_imports(root, rel, parse(files[rel], root / rel)):
            if found not in files:
                files[found] = read_text(root / found, found)
                pending.append(found)
    if len(files) == 1:
        return None
    return Source(root=root, files=dict(sorted(files.items())), is_package=True, entry=entry,
                  name=_identifier(file.stem))


def narrow(source: Source, rel: str) -> Source:
    """A folder source cut down to file ``rel`` and the files it imports: a script importing what the class does
    not need (a trainer, a dataset tool) is left behind with its requirements."""
    found = repository_source(source.root / rel, rel, source.root)
    if found is None:
        return Source(root=source.root, files={rel: source.files[rel]}, is_package=True, entry=rel, name=source.name)
    return Source(root=source.root, files=found.files, is_package=True, entry=rel, name=source.name)


def _local_imports(root: Path, rel: str, tree: ast.Module) -> set[str]:
    """Files under ``root`` that the imports of file ``rel`` run: each module and the ``__init__.py`` above it."""
    package = rel.split("/")[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name.split(".") for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = (package[:len(package) - node.level + 1] if node.level else []) + (node.module or "").split(".")
            base = [part for part in base if part]
            targets = [base] + [base + [a.name] for a in node.names if a.name != "*"]
        else:
            continue
        for parts in targets:
            found |= _module_files(root, parts)
    return found


def _module_files(root: Path, parts: list[str]) -> set[str]:
    """The ``__init__.py`` of each package along ``parts`` and the module itself, those that exist under root."""
    found = set()
    for i in range(1, len(parts) + 1):
        folder = root.joinpath(*parts[:i])
        for candidate in (folder / "__init__.py", folder.with_suffix(".py") if i == len(parts) else None):
            if candidate is not None and candidate.is_file() and not any(
                    p.startswith(".") or p in SKIPPED_DIRS for p in parts[:i]):
                found.add(candidate.relative_to(root).as_posix())
    return found


def _identifier(name: str) -> str:
    """A module name Python can import: ``my-block`` becomes ``my_block``."""
    cleaned = re.sub(r"\W", "_", name)
    return f"_{cleaned}" if cleaned[:1].isdigit() else cleaned


# ------------------------------------------------------------------ classes


def module_classes(source: Source) -> list[ClassInfo]:
    """Top-level classes deriving from ``torch.nn`` classes, directly or through classes of the source.

    Any capitalised ``torch.nn`` name counts as a base (``nn.Module``, ``nn.Sequential``, ``nn.Conv2d``), in
    every spelling an import allows (``torch.nn.Module``, ``from torch import nn``, ``from torch.nn import
    Module as M``). Bases from other files of the source match by class name (the same file's class first).
    """
    classes = {(rel, c.name): c for rel, tree in source.trees.items() for c in tree.body if isinstance(c, ast.ClassDef)}
    aliases = {rel: _import_aliases(tree) for rel, tree in source.trees.items()}
    modules: dict[tuple[str, str], ast.ClassDef] = {}
    changed = True
    while changed:  # a class whose base is a module class is one too; repeat until nothing new is found
        changed = False
        for key, node in classes.items():
            if key not in modules and any(_is_module_base(b, key[0], aliases[key[0]], modules) for b in node.bases):
                modules[key] = node
                changed = True
    infos = [_class_info(rel, node, source, modules) for (rel, _), node in modules.items()]
    return sorted(infos, key=lambda info: (info.file, info.line))


def _import_aliases(tree: ast.Module) -> dict[str, str]:
    """Local name -> the dotted name it stands for, from the file's absolute imports."""
    aliases = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                local = alias.asname or alias.name.split(".")[0]
                aliases[local] = alias.name if alias.asname else local
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            aliases.update((a.asname or a.name, f"{node.module}.{a.name}") for a in node.names)
    return aliases


def _is_module_base(base: ast.expr, rel: str, aliases: dict[str, str], modules: dict) -> bool:
    dotted = _dotted(base)
    if dotted is None:
        return False
    head, _, rest = dotted.partition(".")
    full = ".".join(filter(None, (aliases.get(head, head), rest)))
    last = full.rsplit(".", 1)[-1]
    torch_class = full in MODULE_BASES or (full.startswith("torch.nn.") and last[:1].isupper())
    return torch_class or _source_class(dotted, rel, modules) is not None


def _source_class(dotted: str, rel: str, modules: dict) -> tuple[str, ast.ClassDef] | None:
    """(file, class) of the module class a base expression names: the same file's first, then any file's."""
    name = dotted.rsplit(".", 1)[-1]
    if (rel, name) in modules:
        return rel, modules[rel, name]
    return next(((r, node) for (r, n), node in modules.items() if n == name), None)


def _dotted(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value)
        return owner and f"{owner}.{node.attr}"
    return None


def _class_info(rel: str, node: ast.ClassDef, source: Source, modules: dict) -> ClassInfo:
    init = _inherited_method(rel, node, "__init__", modules)
    forward = _inherited_method(rel, node, "forward", modules)
    params = _params(init[1], source.files[init[0]]) if init else []
    forward_params = [_star(p) + p.name for p in _params(forward[1], "")] if forward else []
    return ClassInfo(name=node.name, file=rel, line=node.lineno, params=params, forward_params=forward_params,
                     bases=[ast.unparse(b) for b in node.bases])


def _inherited_method(rel: str, node: ast.ClassDef, name: str, modules: dict, depth: int = 0):
    """(file, def) of method ``name`` in the class or, depth-first, in its bases that are classes of the source."""
    for item in node.body:
        if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)) and item.name == name:
            return rel, item
    bases = (_source_class(_dotted(b) or "", rel, modules) for b in node.bases)
    for base in filter(None, bases):
        if base[1] is not node and depth < 50:  # ``class A(A)`` after an import of another A
            found = _inherited_method(*base, name, modules, depth + 1)
            if found:
                return found
    return None


def _params(func: ast.FunctionDef, text: str) -> list[Param]:
    """The parameters after ``self``, with each default's source text (``text`` empty: unparsed)."""
    args = func.args
    positional = [*args.posonlyargs, *args.args][1:]
    defaults = [None] * (len(positional) - len(args.defaults)) + list(args.defaults)
    params = [Param(a.arg, _text(d, text), "positional") for a, d in zip(positional, defaults[-len(positional):])]
    if args.vararg:
        params.append(Param(args.vararg.arg, None, "var_positional"))
    params += [Param(a.arg, _text(d, text), "keyword") for a, d in zip(args.kwonlyargs, args.kw_defaults)]
    if args.kwarg:
        params.append(Param(args.kwarg.arg, None, "var_keyword"))
    return params


def _text(node: ast.expr | None, text: str) -> str | None:
    if node is None:
        return None
    return (ast.get_source_segment(text, node) if text else None) or ast.unparse(node)


def _star(param: Param) -> str:
    return {"var_positional": "*", "var_keyword": "**"}.get(param.kind, "")


# ------------------------------------------------------------------ requirements


@lru_cache(maxsize=1)
def _pip_table() -> tuple[dict[str, str], frozenset[str]]:
    data = json.loads(PIP_NAMES.read_text(encoding="utf-8"))
    return data["pip_names"], frozenset(data["provided"])


def pip_name(import_name: str) -> str:
    """The pip distribution that provides ``import_name`` (the name itself unless the table says otherwise)."""
    return _pip_table()[0].get(import_name, import_name)


def requirements(source: Source) -> list[Requirement]:
    """Third-party top-level imports, anywhere in the code; ``optional`` when every one is guarded by
    ``try: ... except ImportError``, ``deferred`` when every one sits where importing the module does not run it.
    Standard library, relative imports and the source's own modules are left out.
    """
    own = source.own_top_names | {Path(rel).stem for rel in source.files} | {
        part for rel in source.files for part in rel.split("/")[:-1]}
    provided = _pip_table()[1]
    found: dict[str, Requirement] = {}
    for rel, tree in source.trees.items():
        for name, line, optional, deferred in _ImportCollector.collect(tree):
            if name in own or name in sys.stdlib_module_names:
                continue
            seen = Requirement(name, pip_name(name), f"{rel}:{line}", optional, name in provided, deferred)
            known = found.get(name)
            if known is None or _strength(seen) > _strength(known):
                found[name] = seen
    return list(found.values())


def _strength(req: Requirement) -> tuple[bool, bool]:
    """Which of two imports of one name counts: one that runs with the module, then one without a guard."""
    return not req.deferred, not req.optional


def _is_main_guard(node: ast.If) -> bool:
    """``if __name__ == "__main__":`` (either side of ``==``)."""
    match node.test:
        case ast.Compare(left=ast.Name(id="__name__"), ops=[ast.Eq()], comparators=[ast.Constant(value="__main__")]):
            return True
        case ast.Compare(left=ast.Constant(value="__main__"), ops=[ast.Eq()], comparators=[ast.Name(id="__name__")]):
            return True
    return False


class _ImportCollector(ast.NodeVisitor):
    """(top-level name, line, inside ``try`` with an ImportError handler, why importing the module does not run it)
    for every absolute import."""

    def __init__(self):
        self.found: list[tuple[str, int, bool, str]] = []
        self.guarded = 0
        self.deferred: list[str] = []

    @classmethod
    def collect(cls, tree: ast.Module) -> list[tuple[str, int, bool, str]]:
        collector = cls()
        collector.visit(tree)
        return collector.found

    def _add(self, name: str, line: int) -> None:
        self.found.append((name, line, self.guarded > 0, self.deferred[0] if self.deferred else ""))

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name.split(".")[0], node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if not node.level and node.module:
            self._add(node.module.split(".")[0], node.lineno)

    def visit_FunctionDef(self, node: ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) -> None:
        for default in (*node.args.defaults, *node.args.kw_defaults):  # evaluated with the def: they run
            if default is not None:
                self.visit(default)
        self.deferred.append("inside a function")
        for statement in node.body if isinstance(node.body, list) else [node.body]:
            self.visit(statement)
        self.deferred.pop()

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_main_guard(node):
            self.generic_visit(node)
            return
        self.deferred.append('under if __name__ == "__main__"')
        for statement in node.body:
            self.visit(statement)
        self.deferred.pop()
        for statement in node.orelse:
            self.visit(statement)

    def visit_Try(self, node: ast.Try) -> None:
        guard = any(self._catches_import_error(h) for h in node.handlers)
        self.guarded += guard
        for statement in node.body:
            self.visit(statement)
        self.guarded -= guard
        for child in (*node.handlers, *node.orelse, *node.finalbody):
            self.visit(child)

    visit_TryStar = visit_Try

    @staticmethod
    def _catches_import_error(handler: ast.ExceptHandler) -> bool:
        if handler.type is None:
            return True
        caught = handler.type.elts if isinstance(handler.type, ast.Tuple) else [handler.type]
        return any((_dotted(c) or "").rsplit(".", 1)[-1] in IMPORT_GUARDS for c in caught)


def missing_requirements(python: str, reqs: list[Requirement], every: bool = False) -> list[Requirement]:
    """The ``reqs`` that ``python`` cannot import (looked up with find_spec in a subprocess), of those the class
    needs (:attr:`Requirement.needed`) or, with ``every``, of all."""
    wanted = [r for r in reqs if every or r.needed]
    if not wanted:
        return []
    names = sorted({r.import_name for r in wanted})
    answer = run_runner(REQUIREMENTS_RUNNER, ["--imports", json.dumps(names)], python=python,
                        timeout=FIND_SPEC_TIMEOUT)  # in a temporary folder: no local folder shadows a package
    if answer.timed_out:
        raise YamlforgeError(f"'{python}' did not answer within {FIND_SPEC_TIMEOUT} s", where="--python")
    if not answer.ok:
        said = answer.error or answer.tail(1, empty="no output")
        raise YamlforgeError(f"'{python}' could not look up imports: {said}", where="--python")
    missing = set(answer.data["missing_imports"])
    return [r for r in wanted if r.import_name in missing]


def install_hint(python: str, missing: list[Requirement]) -> str:
    """The pip command that installs ``missing`` into ``python``'s environment."""
    names = dict.fromkeys(r.pip_name for r in missing)
    return f"{shlex.quote(python)} -m pip install {' '.join(shlex.quote(n) for n in names)}"


# ------------------------------------------------------------------ relative imports


def relativize_imports(source: Source) -> dict[str, str]:
    """Files of a package whose absolute imports of the package's own modules become relative (changed ones only)."""
    if not source.is_package:
        return {}
    from ..patch.codemods.relative_imports import relative_imports  # libcst only for a package, the only case with work
    changed = {}
    for rel, text in source.files.items():
        new = relative_imports(text, lambda dotted: _in_source(source, dotted), rel.split("/")[:-1], filename=rel)
        if new != text:
            changed[rel] = new
    return changed


def _in_source(source: Source, dotted: str) -> list[str] | None:
    """The path inside the source (folder parts) that an absolute module name means, or None for foreign code.

    ``models.layers`` means ``models/layers`` when the folder holds ``models/``; ``model.basic`` means ``basic``
    when the folder itself is ``model/`` (and holds no ``model/``).
    """
    parts = dotted.split(".")
    if parts[0] in source.top_names:
        return parts
    if parts[0] == source.root.name:
        return parts[1:]
    return None


# ------------------------------------------------------------------ classes the runner confirms, literals


def candidate_classes(source: Source) -> list[ClassInfo]:
    """Top-level classes with bases that :func:`module_classes` cannot show to be nn.Modules (``nn`` from a star
    import, a base imported under another name): only proposals, the runner confirms them with issubclass."""
    known = {(c.file, c.name) for c in module_classes(source)}
    every = {(rel, c.name): c for rel, tree in source.trees.items() for c in tree.body if isinstance(c, ast.ClassDef)}
    infos = [_class_info(rel, node, source, every) for (rel, name), node in every.items()
             if (rel, name) not in known and node.bases]
    return sorted(infos, key=lambda info: (info.file, info.line))


@dataclass(frozen=True)
class Proposal:
    """A value for a required constructor argument, read from a call of the class in the source (the paper's own
    network class): ``value`` a literal, or ``ratio`` to the first argument (``ed // 4``); ``where`` is file:line."""

    name: str
    where: str
    value: object = None
    ratio: tuple[int, int] | None = None


def proposals(source: Source, info: ClassInfo) -> list[Proposal]:
    """Values for ``info``'s required arguments from the first call of the class (outside it) that gives them."""
    required = [p.name for p in info.params if p.kind == "positional" and p.default is None]
    for rel, tree in source.trees.items():
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and (_dotted(node.func) or "").rsplit(".", 1)[-1] == info.name:
                found = _call_proposals(node, required, f"{rel}:{node.lineno}")
                if found:
                    return found
    return []


def _call_proposals(call: ast.Call, required: list[str], where: str) -> list[Proposal]:
    given = dict(zip(required, call.args)) | {k.arg: k.value for k in call.keywords if k.arg in required}
    first = ast.dump(call.args[0]) if call.args else None
    found = []
    for name in required[1:]:
        node = given.get(name)
        ratio = _ratio_to(node, first) if node is not None else None
        if ratio:
            found.append(Proposal(name, where, ratio=ratio))
            continue
        try:
            found.append(Proposal(name, where, value=ast.literal_eval(node)))
        except (ValueError, TypeError, SyntaxError, RecursionError):
            continue
    return found


def _ratio_to(node: ast.expr, first: str | None) -> tuple[int, int] | None:
    """(n, d) when ``node`` is the first argument's expression times n over d (``ed * 2``, ``2 * ed``, ``ed // 4``)."""
    if first is None:
        return None
    if ast.dump(node) == first:
        return (1, 1)
    if not isinstance(node, ast.BinOp) or not isinstance(node.op, (ast.Mult, ast.FloorDiv, ast.Div)):
        return None
    for expr, number in ((node.left, node.right), (node.right, node.left)):
        if ast.dump(expr) == first and isinstance(number, ast.Constant) and isinstance(number.value, int) \
                and number.value > 0 and (isinstance(node.op, ast.Mult) or expr is node.left):
            return (number.value, 1) if isinstance(node.op, ast.Mult) else (1, number.value)
    return None


# ------------------------------------------------------------------ names nothing defines


USUAL_IMPORTS = {  # the import line that defines a name paper code uses without saying where it comes from
    "torch": "import torch", "nn": "from torch import nn", "F": "import torch.nn.functional as F",
    "Tensor": "from torch import Tensor", "math": "import math", "np": "import numpy as np",
    "rearrange": "from einops import rearrange", "repeat": "from einops import repeat",
    "Rearrange": "from einops.layers.torch import Rearrange", "partial": "from functools import partial",
    "Optional": "from typing import Optional", "List": "from typing import List", "Tuple": "from typing import Tuple",
    "trunc_normal_": "from timm.layers import trunc_normal_", "DropPath": "from timm.layers import DropPath",
    "to_2tuple": "from timm.layers import to_2tuple", "checkpoint": "from torch.utils import checkpoint",
}


def undefined_names(tree: ast.Module) -> list[str]:
    """Names the file reads that nothing in it binds (no import, def, assignment, argument) and that are no builtins,
    in order of first use: a class cut out of a bigger file without its imports. A star import binds anything, so
    such a file has none."""
    bound = set(dir(builtins)) | {"__file__", "__class__", "__builtins__"}
    read: dict[str, tuple[int, int]] = {}
    for node in ast.walk(tree):
        match node:
            case ast.ImportFrom(names=[ast.alias(name="*")]):
                return []
            case ast.Import(names=names) | ast.ImportFrom(names=names):
                bound |= {a.asname or a.name.split(".")[0] for a in names}
            case ast.FunctionDef(name=name) | ast.AsyncFunctionDef(name=name) | ast.ClassDef(name=name):
                bound.add(name)
            case ast.Global(names=names) | ast.Nonlocal(names=names):
                bound.update(names)
            case ast.arg(arg=name) | ast.ExceptHandler(name=str(name)):
                bound.add(name)
            case ast.MatchAs(name=str(name)) | ast.MatchStar(name=str(name)) | ast.MatchMapping(rest=str(name)):
                bound.add(name)
            case ast.Name(id=name, ctx=ast.Store() | ast.Del()):
                bound.add(name)
            case ast.Name(id=name, ctx=ast.Load()):
                read[name] = min(read.get(name, (node.lineno, node.col_offset)), (node.lineno, node.col_offset))
    return sorted((name for name in read if name not in bound), key=read.__getitem__)


def import_lines(names: list[str]) -> list[str]:
    """The usual import line of each name that has one (:data:`USUAL_IMPORTS`), once each."""
    return list(dict.fromkeys(USUAL_IMPORTS[name] for name in names if name in USUAL_IMPORTS))
