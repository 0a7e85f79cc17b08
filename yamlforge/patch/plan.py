"""Plans apply and revert: the checkout's desired state, as a changeset, computed without writing anything.

Both directions work the same way: the desired text of every file yamlforge owns is computed from the
*original* files (kept in ``.yamlforge/originals``) with the wanted modules applied, then replayed onto
what is on disk now (:mod:`yamlforge.patch.rebase`), so user edits made in between survive or are reported.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import PurePosixPath

from ..errors import YamlforgeError
from ..resources import render, render_string
from ..specs import ModuleSpec, SpecRegistry, load_spec
from ..targets import Target, parse_python
from ..textfile import TextStyle, decode, read_text
from . import codemods
from .changeset import Changeset, FileChange
from .fusion import Fusion, render_fusion, resolve_fusions
from .lock import CheckoutLock, hold_checkout
from .manifest import (
    APPLIED,
    MANIFEST,
    ORIGINALS,
    STATE_DIR,
    AppliedFusion,
    AppliedModule,
    FileRecord,
    Manifest,
    read_manifest,
    recorded_file,
    recorded_path,
    sha256,
)
from .rebase import rebase_all

FIXES = ("flops",)


@dataclass
class Plan:
    """What a command would do: the changeset plus the names involved and notes for the user."""

    changeset: Changeset
    modules: list[str]
    notes: list[str] = field(default_factory=list)
    lock: CheckoutLock | None = field(default=None, repr=False, compare=False)

    @property
    def news(self) -> list[FileChange]:
        """The changes a user is told about: the code and the manifest, not the pristine copies kept beside it."""
        return [c for c in self.changeset.effective if not c.path.startswith(f"{STATE_DIR}/") or c.path == MANIFEST]

    def code_diff(self) -> str:
        """The diff of the checkout's own files (nothing under the state folder)."""
        return "".join(c.diff() for c in self.changeset.effective if not c.path.startswith(f"{STATE_DIR}/"))


def _under_lock(planner: Callable[..., Plan]) -> Callable[..., Plan]:
    """Plan holding the checkout lock; the plan keeps it until the writer has written it (or the plan is dropped)."""

    @functools.wraps(planner)
    def locked(target: Target, *args, **kwargs) -> Plan:
        lock = hold_checkout(target.root)
        plan = planner(target, *args, **kwargs)
        plan.lock = lock
        return plan

    return locked


# ----------------------------------------------------------------------------- desired state


def registrations(specs: Iterable[ModuleSpec]) -> list[codemods.Registration]:
    regs = []
    for spec in specs:
        for name in spec.exports:
            if spec.role == "backbone":
                regs.append(codemods.backbone_registration(name))
            elif spec.channels == "custom":
                body = render_string(spec.branch, spec=spec, name=name)
                regs.append(codemods.Registration(name, "custom", body=body))
            else:
                regs.append(codemods.Registration(name, spec.channels, repeats=spec.repeats == "fold"))
    return regs


def desired_files(target: Target, original: Callable[[str], str | None], specs: list[ModuleSpec],
                  fixes: Iterable[str], fusions: Iterable[Fusion] = ()) -> dict[str, str | None]:
    """Text of every file yamlforge writes when ``specs``, ``fusions`` and ``fixes`` are applied to the original
    checkout (each fusion's module must be among ``specs``)."""
    kind = target.kind
    files: dict[str, str | None] = {}
    fusions = sorted(fusions, key=lambda f: f.name)
    by_name = {s.name: s for s in specs}
    for spec in specs:
        files.update(placed_files(target, spec))
    for fusion in fusions:
        files[target.module_path(fusion.file_stem)] = render_fusion(target, fusion, by_name[fusion.spec], original)
    if kind.package_init and specs:
        files[kind.package_init] = render("package_init.py.j2", specs=specs, fusions=fusions)

    tasks = original(kind.tasks_file)
    if tasks is None:
        raise YamlforgeError(f"'{kind.tasks_file}' is missing", where=str(target.root))
    edits = _tasks_edits(target, specs, fusions) if specs else []
    files[kind.tasks_file] = codemods.edit_code(tasks, edits, filename=kind.tasks_file) if edits else tasks

    if "flops" in fixes or any(s.role == "backbone" for s in specs):
        flops = original(kind.flops_file)
        if flops is None:
            raise YamlforgeError(f"'{kind.flops_file}' is missing", where=str(target.root))
        files[kind.flops_file] = codemods.fix_get_flops(flops, filename=kind.flops_file)
    return files


def placed_files(target: Target, spec: ModuleSpec) -> dict[str, str]:
    """A spec's implementation in the target: its module file, or its package folder with every file of the package
    and an ``__init__.py`` in each folder (the root one also names the package's classes for checkpoints)."""
    if not spec.is_package:
        return {target.module_path(spec.file_stem): render("module_file.py.j2", spec=spec, source=spec.source_text())}
    files = spec.package_files()
    for rel in list(files):
        for parent in PurePosixPath(rel).parents:
            files.setdefault((parent / "__init__.py").as_posix(), "")
    entry = "." + spec.import_stem.partition(".")[2]
    placed = {rel: render("module_file.py.j2", spec=spec, source=text) for rel, text in files.items()}
    placed["__init__.py"] = render("package_root_init.py.j2", spec=spec, source=files["__init__.py"], entry=entry)
    folder = _package_folder(target, spec)
    return {f"{folder}/{rel}": text for rel, text in sorted(placed.items())}


def _package_folder(target: Target, spec: ModuleSpec) -> str:
    return f"{target.kind.modules_dir}/{spec.file_stem}"


def _tasks_edits(target: Target, specs: list[ModuleSpec], fusions: list[Fusion]) -> list[codemods.Edit]:
    """The edits of the tasks file, applied on one parse (parsing dominates apply's time)."""
    edits = list(codemods.MULTI_OUTPUT_EDITS) if any(s.role == "backbone" for s in specs) else []
    regs = registrations(specs) + [codemods.Registration(f.name, "host", host=f.host) for f in fusions]
    imports = [(target.import_module(s.import_stem), name) for s in specs for name in s.exports]
    imports += [(target.import_module(f.file_stem), f.name) for f in fusions]
    return edits + codemods.registration_edits(regs) + codemods.import_edits(imports)


# ----------------------------------------------------------------------------- checks


def _class_node(tree: ast.Module, name: str) -> ast.ClassDef | None:
    return next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == name), None)


def _resolve_class(target: Target, module: str, name: str, depth: int = 0) -> ast.ClassDef | None:
    """Find ``class name`` behind ``from module import name`` inside the checkout (following re-exports)."""
    if depth > 4:
        return None
    base = target.root / module.replace(".", "/")
    path = base / "__init__.py" if base.is_dir() else base.with_suffix(".py")
    if not path.is_file():
        return None
    tree = ast.parse(read_text(path))
    found = _class_node(tree, name)
    if found:
        return found
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and any(a.name in (name, "*") for a in node.names):
            parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
            src = f"{parent}.{node.module}" if node.level else node.module
            src = src.rstrip(".") if src else parent
            found = _resolve_class(target, src, name, depth + 1)
            if found:
                return found
    return None


def _bound_names(tree: ast.Module) -> dict[str, tuple[str, int]]:
    """Top-level names of the tasks file: ``name -> (module it is imported from, or "" for a class, line)``."""
    bound: dict[str, tuple[str, int]] = {}
    for node in tree.body:
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                bound[alias.asname or alias.name] = (node.module, node.lineno)
        elif isinstance(node, ast.ClassDef):
            bound[node.name] = ("", node.lineno)
    return bound


def _check_name_clashes(target: Target, tree: ast.Module, specs: list[ModuleSpec]) -> list[str]:
    """Refuse names the target already has with other code; return notes for names a user hand-patched in."""
    bound = _bound_names(tree)
    notes = []
    for spec in specs:
        for name in spec.exports:
            if name not in bound:
                continue
            module, line = bound[name]
            theirs = _resolve_class(target, module, name) if module else _class_node(tree, name)
            mine = _class_node(ast.parse(spec.source_text()), name)
            if theirs is not None and mine is not None and ast.dump(theirs) == ast.dump(mine):
                notes.append(f"{name} is already imported in {target.kind.tasks_file}:{line} (hand-patched); kept")
                continue
            raise YamlforgeError(
                f"'{name}' already exists in the target with different code; refusing to shadow it",
                where=f"{target.kind.tasks_file}:{line}",
                hint=f"rename the class in your spec (--spec) or remove the existing '{name}' from the checkout",
            )
    return notes


def _check_placement(target: Target, specs: list[ModuleSpec]) -> None:
    """Refuse a spec whose file or package folder would replace or shadow one of the target's own modules
    (an adopted ``Conv`` becomes ``conv.py``); a file already holding exactly what would be placed is accepted."""
    for spec in specs:
        folder = target.root / _package_folder(target, spec)
        rival = folder.with_suffix(".py") if spec.is_package else folder  # a package shadows the module, and back
        if rival.exists():
            raise _placement_error(target, spec, rival.relative_to(target.root).as_posix(), "shadow")
        for rel, text in placed_files(target, spec).items():
            path = target.root / rel
            if path.exists() and (not path.is_file() or read_text(path) != text):
                raise _placement_error(target, spec, rel, "replace")


def _placement_error(target: Target, spec: ModuleSpec, rel: str, verb: str) -> YamlforgeError:
    what = "package" if spec.is_package else "module file"
    return YamlforgeError(f"{spec.name}'s {what} would {verb} '{rel}', which already exists in {target.label}; "
                          "nothing was changed", where=str(target.root / rel),
                          hint=f"move it away, or place {spec.name} under another name than '{spec.file_stem}' "
                               f"(yamlforge adopt ... --name My{spec.name})")


# ----------------------------------------------------------------------------- planning


def _spec_for(target: Target, name: str, record: AppliedModule, registry: SpecRegistry) -> ModuleSpec:
    if record.spec_path:
        return load_spec(recorded_file(record.spec_path, target.root))
    spec = registry.find(name)
    if spec is None:
        raise YamlforgeError(f"module '{name}' is recorded in the manifest but no spec for it exists any more",
                             where=MANIFEST, hint="pass its spec again with --spec, or revert it first")
    return spec


def _plan(target: Target, manifest: Manifest | None, specs: list[ModuleSpec], fixes: list[str],
          fusions: list[Fusion] = ()) -> Changeset:
    """Changeset turning the checkout into ``original + specs + fusions + fixes``, rebased onto what is on disk."""
    root = target.root
    cs = Changeset.styled_like(root, target.tasks_path)  # created files take the tasks file's line ending
    recorded = manifest.files if manifest else {}
    styles: dict[str, TextStyle] = {}  # how each original was written, to write it back byte for byte

    @functools.cache
    def original(rel: str) -> str | None:
        if rel in recorded and recorded[rel].before is None:
            return None
        path = root / ORIGINALS / rel if rel in recorded else root / rel
        if not path.is_file():
            return None
        text, styles[rel] = decode(path.read_bytes())
        return text

    desired = desired_files(target, original, specs, fixes, fusions)
    for rel in recorded:  # files yamlforge touched that are no longer wanted go back to their original
        desired.setdefault(rel, original(rel))

    rebases: dict[str, tuple[str, str, str]] = {}
    for rel, want in sorted(desired.items()):
        current = cs.read(rel)
        if rel not in recorded:
            if current is not None and want != current and target.module_path(_stem(rel)) == rel:
                raise YamlforgeError(f"'{rel}' already exists with different code; refusing to overwrite it",
                                     where=str(root / rel), hint="move it away, or name your module file differently")
            cs.set(rel, want)
            continue
        rec = recorded[rel]
        if sha256(current.encode() if current is not None else None) == rec.after:
            cs.set(rel, want, style=styles.get(rel) if want == original(rel) else None)  # a revert: the old bytes
        elif current is None or want is None or rec.before is None:
            raise YamlforgeError(f"'{rel}' was changed by hand since yamlforge wrote it; nothing was changed",
                                 where=str(root / rel), hint="restore it (git checkout), or delete it and run again")
        else:
            applied = read_text(root / APPLIED / rel)
            rebases[rel] = (applied, current, want)
    for rel, text in rebase_all(rebases).items():
        cs.set(rel, text)

    _record(target, cs, manifest, specs, fixes, original, desired, fusions, styles)
    return cs


def _stem(rel: str) -> str:
    return rel.rsplit("/", 1)[-1].removesuffix(".py")


def _record(target, cs: Changeset, manifest, specs, fixes, original, desired, fusions, styles) -> None:
    """Add the manifest and the original/applied copies to the changeset (or remove them all on a full revert)."""
    old_files = manifest.files if manifest else {}
    state_files = {p for p in _state_paths(old_files)}
    if not specs and not fixes:
        for rel in state_files | {MANIFEST}:
            if cs.read(rel) is not None:
                cs.set(rel, None)
        return
    new = Manifest(target=target.label, fixes=sorted(set(fixes)))
    for spec in specs:
        new.modules[spec.name] = AppliedModule(
            spec_digest=spec.digest(), exports=list(spec.exports), role=spec.role, channels=spec.channels,
            file=_package_folder(target, spec) + "/" if spec.is_package else target.module_path(spec.file_stem),
            spec_path=None if spec.bundled else recorded_path(spec.spec_path, target.root.resolve()),
            requires=list(spec.requires),
        )
    for fusion in fusions:
        new.fusions[fusion.name] = AppliedFusion(host=fusion.host, module=fusion.module, spec=fusion.spec,
                                                 at=fusion.at, file=target.module_path(fusion.file_stem))
    keep_state: set[str] = set()
    for rel, want in sorted(desired.items()):
        before = original(rel)
        if want == before:
            continue  # back to (or still) original: nothing to record
        new.files[rel] = FileRecord(before=sha256(before.encode()) if before is not None else None,
                                    after=sha256(want.encode()))
        if before is not None:  # the pristine copy is the original's bytes; the applied one, what rel gets
            copies = ((ORIGINALS, before, styles.get(rel)), (APPLIED, cs.read(rel), cs.style_of(rel)))
            for folder, text, style in copies:
                keep_state.add(f"{folder}/{rel}")
                cs.set(f"{folder}/{rel}", text, style=style)
    for rel in state_files - keep_state:
        cs.set(rel, None)
    cs.set(MANIFEST, new.to_text())


def _state_paths(files: dict[str, FileRecord]) -> list[str]:
    return [f"{folder}/{rel}" for rel, rec in files.items() if rec.before is not None
            for folder in (ORIGINALS, APPLIED)]


@_under_lock
def plan_apply(target: Target, specs: list[ModuleSpec], registry: SpecRegistry, *, fixes: Iterable[str] = (),
               fuse: Iterable[str] = (), fuse_at: str | None = None) -> Plan:
    """Apply ``specs`` (and ``fixes``) on top of whatever the manifest says is applied already.

    ``fuse`` names host blocks (or ``all``) to generate fusion variants of every spec in: ``RepC3_SHSA`` ...,
    at placement ``fuse_at`` (each host's default when None); see :mod:`yamlforge.patch.fusion`.
    """
    fixes = list(fixes)
    for fix in fixes:
        if fix not in FIXES:
            raise YamlforgeError(f"unknown fix '{fix}' (known: {', '.join(FIXES)})", where="--fix")
    manifest = read_manifest(target.root)
    wanted: dict[str, ModuleSpec] = {}
    if manifest:
        for name, record in manifest.modules.items():
            wanted[name] = _spec_for(target, name, record, registry)
    for spec in specs:
        wanted[spec.name] = spec
    all_specs = sorted(wanted.values(), key=lambda s: s.name)
    tree = parse_python(_original_text(target, manifest, target.kind.tasks_file), target.kind.tasks_file)
    new_specs = [s for s in specs if not manifest or s.name not in manifest.modules]
    _check_placement(target, new_specs)
    notes = _check_name_clashes(target, tree, new_specs)
    new_fusions = resolve_fusions(target, specs, fuse, fuse_at, _original_reader(target, manifest))
    fusions = {name: _fusion(record) for name, record in (manifest.fusions if manifest else {}).items()}
    _check_fusion_clashes(target, tree, [f for f in new_fusions if f.name not in fusions])
    fusions.update((f.name, f) for f in new_fusions)
    all_fixes = sorted(set(fixes) | set(manifest.fixes if manifest else ()))
    cs = _plan(target, manifest, all_specs, all_fixes, list(fusions.values()))
    return Plan(cs, [s.name for s in specs] + [f.name for f in new_fusions] + fixes, notes)


def _fusion(record: AppliedFusion) -> Fusion:
    return Fusion(host=record.host, module=record.module, spec=record.spec, at=record.at)


def _check_fusion_clashes(target: Target, tree: ast.Module, fusions: list[Fusion]) -> None:
    """Refuse a fusion class name the target's tasks file already binds (import or class)."""
    bound = _bound_names(tree)
    for fusion in fusions:
        if fusion.name in bound:
            raise YamlforgeError(f"'{fusion.name}' already exists in the target; refusing to shadow it",
                                 where=f"{target.kind.tasks_file}:{bound[fusion.name][1]}",
                                 hint=f"remove the existing '{fusion.name}' from the checkout first")


def _original_reader(target: Target, manifest: Manifest | None) -> Callable[[str], str | None]:
    """Read a checkout file as it was before yamlforge (None when missing)."""

    def read(rel: str) -> str | None:
        if manifest and rel in manifest.files and manifest.files[rel].before is not None:
            return read_text(target.root / ORIGINALS / rel)
        path = target.root / rel
        return read_text(path) if path.is_file() else None

    return read


@_under_lock
def plan_revert(target: Target, registry: SpecRegistry, names: list[str] | None = None) -> Plan:
    """Remove the named modules (all of yamlforge's edits when ``names`` is None)."""
    manifest = read_manifest(target.root)
    if manifest is None:
        if names:
            raise YamlforgeError(f"nothing is applied to {target.root}, so '{names[0]}' cannot be reverted",
                                 where="--module")
        return Plan(Changeset(target.root), [], ["nothing to revert: no yamlforge manifest in this checkout"])
    if names is None:
        applied = sorted(manifest.modules) + sorted(manifest.fusions) + manifest.fixes
        return Plan(_plan(target, manifest, [], []), applied)
    unknown = [n for n in names if n not in manifest.modules and n not in manifest.fusions]
    if unknown:
        applied = ", ".join(sorted(manifest.modules) + sorted(manifest.fusions)) or "none"
        raise YamlforgeError(f"module '{unknown[0]}' is not applied (applied: {applied})", where="--module")
    keep = [_spec_for(target, n, r, registry) for n, r in sorted(manifest.modules.items()) if n not in names]
    kept = {s.name for s in keep}
    fusions = [_fusion(r) for n, r in sorted(manifest.fusions.items()) if n not in names]
    dropped = [f.name for f in fusions if f.spec not in kept]  # a fusion goes with the module it embeds
    fusions = [f for f in fusions if f.spec in kept]
    notes = [f"{name} is reverted too: it embeds a reverted module" for name in dropped]
    return Plan(_plan(target, manifest, keep, manifest.fixes, fusions), names + dropped, notes)


def _original_text(target: Target, manifest: Manifest | None, rel: str) -> str:
    if manifest and rel in manifest.files and manifest.files[rel].before is not None:
        return read_text(target.root / ORIGINALS / rel)
    return read_text(target.root / rel)


__all__ = ["FIXES", "Plan", "desired_files", "plan_apply", "plan_revert"]
