"""adopt's plan: every file it writes (the module, an adapter where needed, the spec), validated, as a changeset.

Nothing here touches the disk beyond reading: :func:`yamlforge.patch.writer.write_changeset` writes the plan.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import YamlforgeError
from ..patch.changeset import Changeset
from ..targets import Target
from . import source as adopt_source
from .decision import Decision
from .rendering import render_adapter, render_rename, render_spec

ADAPTER_SUFFIX = "Adapted"
ONE_WORD = re.compile(r"[A-Z][a-z0-9]*")  # Block, Mlp, Conv: paper code's generic names (SHSA, an acronym, is not)


@dataclass(frozen=True)
class Taken:
    """What a spec's name must not reuse: the target's module files (``block`` for ``block.py``) and the layer
    names parse_model already resolves; with no target to read, every one-word class name counts as taken."""

    stems: dict[str, str]  # file or folder stem -> its path in the target
    layers: frozenset[str]
    where: str | None = None  # the target's tasks file; None: no target read

    @classmethod
    def of(cls, target: Target | None) -> Taken:
        if target is None:
            return cls({}, frozenset())
        folder = target.root / target.kind.modules_dir
        files = folder.iterdir() if folder.is_dir() else ()  # YOLOv9's models/yamlforge/ is made by apply
        stems = {path.stem.lower(): f"{target.kind.modules_dir}/{path.name}" for path in files
                 if path.suffix == ".py" or (path.is_dir() and not path.name.startswith("__"))}
        return cls(stems, target.known_layers, target.kind.tasks_file)

    def clash(self, name: str) -> str | None:
        """Why ``name`` cannot be a spec's name or exported class (None: it is free)."""
        if name.lower() in self.stems:
            return f"{name} would be placed as {name.lower()}.py, which would replace {self.stems[name.lower()]}"
        if name in self.layers:
            return f"{name} is a layer the target already has ({self.where})"
        if self.where is None and ONE_WORD.fullmatch(name):
            return f"{name} is a one-word name a target may have (--repo checks the target's own names)"
        return None


@dataclass(frozen=True)
class Naming:
    """The spec's name (its file stem too), the class the YAML uses, and why the class's own name was not kept."""

    name: str
    export: str
    renamed: str | None = None  # the clash that made adopt pick ``name``; None: the class's own name or --name


def choose_name(source_name: str, d: Decision, name: str | None, taken: Taken) -> Naming:
    """A free, readable name: ``name`` (--name) when given and free, else the class's own, else the source's name
    as a prefix (``CoordAttBlock`` for ``Block`` of ``coord_att.py``)."""
    if name is not None:
        clash = taken.clash(name) if taken.where else None
        if clash:
            raise YamlforgeError(f"--name {clash}", where="--name", hint=f"--name {_prefixed(source_name, name)}")
        spec, export = export_name(d, name)
        return Naming(spec, name if export == d.class_name and taken.clash(export) else export)
    clash = taken.clash(d.class_name)
    if clash is None:
        return Naming(*export_name(d, None))
    base = _prefixed(source_name, d.class_name)
    return Naming(base, base, renamed=clash)  # the YAML uses a subclass (or the adapter) under the new name


def _prefixed(source_name: str, class_name: str) -> str:
    """``CoordAttBlock`` from ``coord_att`` and ``Block``; a prefix that is the class's name already is dropped."""
    prefix = "".join(part[:1].upper() + part[1:] for part in re.split(r"[^0-9A-Za-z]+", source_name))
    if not prefix or prefix[0].isdigit() or prefix.lower() == class_name.lower():
        prefix = "Paper"
    return prefix + class_name


def export_name(d: Decision, name: str | None) -> tuple[str, str]:
    """(spec name, the class name the YAML uses): the class itself, or its adapter."""
    if not d.needs_adapter:
        return name or d.class_name, d.class_name
    export = name or d.class_name + ADAPTER_SUFFIX
    if export == d.class_name:
        raise YamlforgeError(f"--name {export} is the adopted class's own name; its adapter needs another",
                             where="--name", hint=f"--name {d.class_name}{ADAPTER_SUFFIX}")
    return name or export, export


def plan_files(source: adopt_source.Source, info: adopt_source.ClassInfo, d: Decision, *, name: str, export: str,
               origin: str, requires: list[str], renamed: str | None = None) -> dict[str, str]:
    """Every file adopt writes, relative to the output folder: the module file or package, and the spec."""
    stem = name.lower()
    wrapped = d.needs_adapter or export != d.class_name  # an adapter, or a subclass under a free name

    def wrapper(**where) -> str:
        return render_adapter(d, export, **where) if d.needs_adapter else render_rename(d, export, **where)

    if source.is_package:
        files = {f"{stem}/{rel}": text for rel, text in {**source.files, **adopt_source.relativize_imports(source)}
                 .items()}
        files.setdefault(f"{stem}/__init__.py", "")
        entry = info.file
        if wrapped:
            entry = "yamlforge_adapter.py"
            module = "." + info.file.removesuffix(".py").replace("/", ".")
            files[f"{stem}/{entry}"] = wrapper(import_from=module)
        place = f"{stem}/"
    else:
        text = source.files[source.entry]
        entry, place = None, f"{stem}.py"
        files = {place: wrapper(original=text) if wrapped else text}
    files[f"{stem}.yaml"] = render_spec(d, name=name, export=export, origin=origin, source=place, entry=entry,
                                        requires=requires, renamed=renamed)
    return files


def validate(files: dict[str, str]) -> None:
    """Generated code must compile and the spec must load: a failure here is a yamlforge bug."""
    from ..modelyaml.load import load_nodes

    for rel, text in files.items():
        if rel.endswith(".py"):
            compile(text, rel, "exec")
        elif rel.endswith(".yaml"):
            load_nodes(text, where=rel, what="generated spec")


def check_output(out_dir: Path, name: str | None) -> None:
    """Refuse, before any probing, a --name Python cannot import and an output folder that is a file."""
    if name is not None and not name.isidentifier():
        raise YamlforgeError(f"--name '{name}' is not a Python identifier", where="--name",
                             hint="letters, digits and underscores, not starting with a digit")
    if out_dir.exists() and not out_dir.is_dir():
        raise YamlforgeError(f"'{out_dir}' is a file, not a folder", where="-o",
                             hint="pass the folder the spec should go into")


def plan_writes(out_dir: Path, files: dict[str, str]) -> tuple[Changeset, dict[Path, str]]:
    """(the changeset writing ``files`` under ``out_dir``, each path's status word: create or identical).

    A file already there with other text is refused: it may be a spec edited by hand.
    """
    root = next(folder for folder in (out_dir, *out_dir.parents) if folder.is_dir()).resolve()
    changeset, statuses = Changeset(root), {}
    for rel, text in files.items():
        relpath = (out_dir.resolve() / rel).relative_to(root).as_posix()
        changeset.set(relpath, text)
        statuses[out_dir / rel] = changeset.changes[relpath].status
        if statuses[out_dir / rel] == "patch":
            raise YamlforgeError(f"'{out_dir / rel}' exists with other content; nothing was written", where="-o",
                                 hint="remove it to adopt again, or pass another -o folder")
    return changeset, statuses
