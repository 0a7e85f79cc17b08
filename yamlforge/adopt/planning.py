"""adopt's plan: every file it writes (the module, an adapter where needed, the spec), validated, as a changeset.

Nothing here touches the disk beyond reading: :func:`yamlforge.patch.writer.write_changeset` writes the plan.
"""

from __future__ import annotations

from pathlib import Path

from ..errors import YamlforgeError
from ..patch.changeset import Changeset
from . import source as adopt_source
from .decision import Decision
from .rendering import render_adapter, render_spec

ADAPTER_SUFFIX = "Adapted"


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
               origin: str, requires: list[str]) -> dict[str, str]:
    """Every file adopt writes, relative to the output folder: the module file or package, and the spec."""
    stem = name.lower()
    if source.is_package:
        files = {f"{stem}/{rel}": text for rel, text in {**source.files, **adopt_source.relativize_imports(source)}
                 .items()}
        files.setdefault(f"{stem}/__init__.py", "")
        entry = info.file
        if d.needs_adapter:
            entry = "yamlforge_adapter.py"
            module = "." + info.file.removesuffix(".py").replace("/", ".")
            files[f"{stem}/{entry}"] = render_adapter(d, export, import_from=module)
        place = f"{stem}/"
    else:
        text = source.files[source.entry]
        entry, place = None, f"{stem}.py"
        files = {place: render_adapter(d, export, original=text) if d.needs_adapter else text}
    files[f"{stem}.yaml"] = render_spec(d, name=name, export=export, origin=origin, source=place, entry=entry,
                                        requires=requires)
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
