"""``yamlforge adopt``: probes a paper's module in the target's Python and writes a spec (and an adapter) for it.

The entry points are :func:`adopt` and :func:`survey`. Data flows one way: :func:`adopt_source.load_source` reads the
code (never runs it) → :func:`probing.probe` runs ``adopt_runner.py`` in a subprocess of the target's Python with a
timeout and returns its JSON per class → :func:`decision.decide` turns that into a :class:`Decision` →
:func:`planning.plan_files` renders the spec, the module file(s) and, only where the YAML cannot use the class as it
is, an adapter (:mod:`rendering`, ``templates/adopt/``) → :func:`adopt` validates everything and writes it all or
nothing. User code never runs in this process.
"""

from __future__ import annotations

import ast
import difflib
from dataclasses import dataclass, field, replace
from pathlib import Path

from ..errors import YamlforgeError
from ..patch.writer import write_changeset
from ..target_python import resolve_python
from ..targets import detect_target
from . import gitsource
from . import source as adopt_source
from .decision import Decision, decide, relation
from .planning import Taken, check_output, choose_name, plan_files, plan_writes, validate
from .probing import probe, probe_timeout
from .rendering import summary, yaml_row

__all__ = ["AdoptResult", "ClassReport", "adopt", "split_source", "summary", "survey"]  # what the CLI uses


@dataclass(frozen=True)
class ClassReport:
    """One nn.Module class of the source and what probing found (``error`` when it cannot be adopted)."""

    name: str
    where: str
    decision: Decision | None = None
    error: str | None = None


@dataclass
class AdoptResult:
    """The written spec, the YAML row to use and the apply command; ``files`` maps each written path to its text."""

    name: str
    decision: Decision
    spec_path: Path
    yaml_row: str
    apply_command: str
    files: dict[Path, str] = field(default_factory=dict)
    statuses: dict[Path, str] = field(default_factory=dict)  # create | identical, per written path
    notes: list[str] = field(default_factory=list)
    renamed: str | None = None  # why the spec is not named after the class (a clash with the target's names)


def split_source(text: str) -> tuple[str, str | None]:
    """``blocks.py::Block`` → (``blocks.py``, ``Block``); without ``::`` the class is None (a survey)."""
    path, sep, class_name = text.rpartition("::")
    if not sep:
        return text, None
    if not path or not class_name.isidentifier():
        raise YamlforgeError(f"'{text}' is not SOURCE::CLASS", where="SOURCE", hint="e.g. blocks.py::ChannelGate")
    return path, class_name


def parse_sets(pairs: list[str] | tuple[str, ...]) -> dict:
    """``["fork_feat=True", "widths=[8, 16]"]`` → values as Python literals (YAML's true/false/null too)."""
    values = {}
    for pair in pairs:
        key, sep, text = pair.partition("=")
        key = key.strip()
        if not sep or not key.isidentifier():
            raise YamlforgeError(f"--set '{pair}' is not KEY=VALUE", where="--set", hint="e.g. --set fork_feat=True")
        text = text.strip()
        lowered = {"true": "True", "false": "False", "null": "None", "none": "None"}.get(text.lower(), text)
        try:
            values[key] = ast.literal_eval(lowered)
        except (ValueError, SyntaxError):
            values[key] = text  # a bare word: a string argument such as an activation name
    return values


def _load(source: Path | str) -> adopt_source.Source:
    """The source's files: a path, or ``git+URL@REV#PATH`` checked out into the cache first."""
    return adopt_source.load_source(gitsource.fetch(source) if gitsource.is_git_source(source) else source)


def _find_class(source: adopt_source.Source, class_name: str) -> adopt_source.ClassInfo:
    """The class to adopt: an nn.Module class the AST shows, else any top-level class of that name (the runner
    confirms it is one: ``nn`` may come from a star import)."""
    classes = adopt_source.module_classes(source)
    found = [c for c in classes if c.name == class_name] or \
        [c for c in adopt_source.candidate_classes(source) if c.name == class_name]
    if not classes and not found:
        raise YamlforgeError(f"no torch.nn.Module class in '{source.root / source.entry}'", where="SOURCE",
                             hint="pass the file or folder that defines the module")
    if not found:
        names = [c.name for c in classes]
        close = difflib.get_close_matches(class_name, names, n=3)
        raise YamlforgeError(f"no nn.Module class '{class_name}' in the source"
                             + (f"; did you mean {', '.join(close)}?" if close else ""), where="SOURCE::CLASS",
                             hint="its classes: " + ", ".join(names))
    if len(found) > 1:
        raise YamlforgeError(f"class '{class_name}' is defined in {', '.join(c.file for c in found)}",
                             where="SOURCE::CLASS", hint="pass the file that defines the one you mean")
    return found[0]


def _proposal_text(proposal: adopt_source.Proposal, width: str | None) -> str:
    value = relation(proposal.name, proposal.ratio, width or "width") if proposal.ratio else \
        f"{proposal.name} = {proposal.value!r}"
    return f"{value} ({proposal.where})"


def _refusal(source: adopt_source.Source, python: str, raw: dict) -> str:
    """The runner's one-line error, or the cause behind it: names nothing defines (a class cut out of its file), a
    compiled (CUDA-only) extension this Python does not have."""
    error = raw["error"]
    if raw.get("undefined"):
        return _undefined_refusal(source, raw["undefined"]) or error
    extension = raw.get("extension")
    if extension is None:
        return _deferred_refusal(source, python, raw.get("no_module")) or error
    guarded = [r for r in adopt_source.requirements(source) if r.optional]
    names = [f"{r.import_name} ({r.where})" for r in adopt_source.missing_requirements(python, guarded, every=True)]
    names += [m for m in extension["names"] if m not in {r.import_name for r in guarded}]
    if not names:
        return error
    return (f"it needs the compiled extension {', '.join(names)}, which {python} does not have"
            f"{_built_from(source, extension.get('package'))}: a CUDA-only or unbuilt operator cannot run in a "
            f"detector on every device, so adopt refuses it ({error[:160]})")


def _deferred_refusal(source: adopt_source.Source, python: str, module: str | None) -> str | None:
    """A package imported inside a function that building or running the class calls, and not installed."""
    found = next((r for r in adopt_source.requirements(source) if r.import_name == module and r.deferred), None)
    if found is None:
        return None
    return (f"building or running the class runs the import of {module} ({found.where}, {found.deferred}), which "
            f"{python} cannot import: {adopt_source.install_hint(python, [found])}")


def _built_from(source: adopt_source.Source, package: str | None) -> str:
    """Where a compiled extension comes from: ``(built from the source's ops/ by setup.py)`` or ``(part of the
    installed package mmcv)``."""
    if not package:
        return ""
    folder = source.root / package
    if package.split("/")[0] not in source.own_top_names or not folder.is_dir():
        return f" (part of the installed package {package.replace('/', '.')})"
    setup = next((f for f in (folder / "setup.py", source.root / "setup.py") if f.is_file()), None)
    return f" (built from the source's {package}/" + (f" by {setup.relative_to(source.root)})" if setup else ")")


def _undefined_refusal(source: adopt_source.Source, said: list[str]) -> str | None:
    """``blocks.py uses nn, F without importing them ...``: every name read and never defined in the file (the entry
    first) where a name the runner ``said`` is undefined; None when no file shows one."""
    found = ((rel, adopt_source.undefined_names(source.trees[rel]))
             for rel in sorted(source.trees, key=lambda rel: rel != source.entry))
    entry, names = next(((rel, names) for rel, names in found if set(said) & set(names)), (None, []))
    if entry is None:
        return None
    lines = adopt_source.import_lines(names)
    add = f"; add at its top: {'; '.join(lines)}" if lines else ""
    return (f"{entry} uses {', '.join(names)} without importing or defining {'it' if len(names) == 1 else 'them'} "
            f"(a class cut out of a bigger file?){add}")


def _requirements(source: adopt_source.Source, python: str) -> tuple[list[str], list[str]]:
    """The pip names the spec requires, and notes on the imports importing the module never runs that ``python``
    lacks; an import it runs that is missing from ``python`` is an error with the pip command."""
    reqs = adopt_source.requirements(source)
    missing = adopt_source.missing_requirements(python, [r for r in reqs if r.needed or r.deferred], every=True)
    needed = [r for r in missing if r.needed]
    if needed:
        raise YamlforgeError(f"the source imports {', '.join(r.import_name for r in needed)}, which {python} "
                             "cannot import", where=needed[0].where, hint=adopt_source.install_hint(python, needed))
    notes = [f"{r.import_name} is not installed, but its import ({r.where}) is {r.deferred}, which importing, "
             f"building and running the class does not reach; {adopt_source.install_hint(python, [r])} if you use "
             "that code" for r in missing]
    return list(dict.fromkeys(r.pip_name for r in reqs if r.needed and not r.provided)), notes


def adopt(source: Path | str, class_name: str, name: str | None = None, sets: list[str] | tuple[str, ...] = (),
          python: str | None = None, out_dir: Path | str = ".", *, timeout: float | None = None,
          write: bool = True, repo: Path | str | None = None) -> AdoptResult:
    """Probe ``class_name`` of ``source`` in ``python`` and write its spec (and adapter) into ``out_dir``; the spec's
    name is one ``repo`` (the checkout it is for) has no file or layer of.

    Raises YamlforgeError, with nothing written, for bad input and for classes adopt refuses.
    """
    out = Path(out_dir)
    check_output(out, name)
    values = parse_sets(sets)
    python = resolve_python(python)
    src = _load(source)
    info = _find_class(src, class_name)
    if src.is_package:
        src = adopt_source.narrow(src, info.file)
    requires, import_notes = _requirements(src, python)
    found = {p.name: p for p in adopt_source.proposals(src, info) if p.name not in values}
    literals = {name: p.value for name, p in found.items() if p.ratio is None}
    raw = probe(src, [info], {**values, **literals}, python, timeout=timeout or probe_timeout(),
                derived={name: p.ratio for name, p in found.items() if p.ratio})[info.name]
    if not raw["ok"]:
        raise YamlforgeError(_refusal(src, python, raw), where=f"{info.file}:{info.line}")
    decision = replace(decide(raw, {**values, **literals}, {name: found[name].where for name in literals}),
                       proposed=tuple(_proposal_text(p, raw["in_arg"]) for p in found.values()))
    naming = choose_name(src.name, decision, name, Taken.of(detect_target(repo) if repo is not None else None))
    spec_name, export = naming.name, naming.export
    origin = f"{source}::{class_name}"
    files = plan_files(src, info, decision, name=spec_name, export=export, origin=origin, requires=requires,
                       renamed=naming.renamed)
    validate(files)
    changeset, statuses = plan_writes(out, files)
    if write:
        write_changeset(changeset)
    spec_path = out / f"{spec_name.lower()}.yaml"
    return AdoptResult(name=spec_name, decision=decision, spec_path=spec_path, yaml_row=yaml_row(decision, export),
                       apply_command=f"yamlforge apply --repo REPO --spec {spec_path}",
                       files={out / rel: text for rel, text in files.items()}, statuses=statuses,
                       renamed=naming.renamed, notes=[*decision.adapter_reasons, *import_notes,
                              *(f"proposed from the source: {p}" for p in decision.proposed)])


def survey(source: Path | str, python: str | None = None, *, timeout: float | None = None) -> list[ClassReport]:
    """Every nn.Module class of ``source`` with what probing found (no --set values); writes nothing."""
    python = resolve_python(python)
    src = _load(source)
    classes = adopt_source.module_classes(src)
    candidates = adopt_source.candidate_classes(src)  # the runner keeps those that are nn.Modules
    if not classes and not candidates:
        raise YamlforgeError(f"no torch.nn.Module class in '{source}'", where="SOURCE",
                             hint="pass the file or folder that defines the module")
    _requirements(src, python)
    found = probe(src, classes + candidates, {}, python, timeout=timeout or probe_timeout())
    reports = []
    for info in classes + [c for c in candidates if not found[c.name].get("not_a_module")]:
        raw = found[info.name]
        where = f"{info.file}:{info.line}"
        reports.append(ClassReport(info.name, where, decision=decide(raw, {})) if raw["ok"]
                       else ClassReport(info.name, where, error=_refusal(src, python, raw)))
    return reports
