"""``yamlforge doctor``: what the checkout is, what Python imports for it (and for multi-GPU workers), whether
yamlforge's edits still hold, and which environment traps (another package's ``thop``) are set."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from ..patch.lock import recover_interrupted
from ..patch.manifest import MANIFEST, file_digest, read_manifest
from ..target_python import resolve_python, run_runner
from ..targets import Target
from .verify import RUNNER

TIMEOUT = 300  # seconds; importing the target package is all the subprocess does


@dataclass
class Problem:
    """Something wrong, and the command (or edit) that fixes it."""

    message: str
    fix: str


@dataclass
class DoctorReport:
    target: Target
    python: str
    recovered: str | None = None  # what was done about a run killed half-way, before anything was read
    imported: dict | None = None
    import_error: str | None = None
    modules: dict[str, list[str]] = field(default_factory=dict)  # applied module -> exports
    files: dict[str, str] = field(default_factory=dict)  # relpath -> ok | modified | missing
    missing_requirements: list[dict] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def file_status(root: Path, relpath: str, after: str | None) -> str:
    path = root / relpath
    if not path.is_file():
        return "missing" if after is not None else "ok"
    return "ok" if file_digest(path) == after else "modified"


def doctor(target: Target, *, python: str | None = None) -> DoctorReport:
    """Inspect ``target`` (and the package ``python`` imports for it); every problem comes with its fix."""
    python = resolve_python(python)
    report = DoctorReport(target=target, python=python, recovered=recover_interrupted(target.root))
    manifest = read_manifest(target.root)
    requires: list[str] = []
    if manifest is not None:
        report.modules = {name: list(m.exports) for name, m in manifest.modules.items()}
        requires = sorted({r for m in manifest.modules.values() for r in m.requires})
        _check_files(report, manifest)
    args = ["--mode", "environment"]
    if requires:
        args += ["--requires", *requires]
    answer = run_runner(RUNNER, args, python=python, timeout=TIMEOUT, target=target)
    if not answer.ok:
        report.problems.append(Problem(f"{python} cannot run yamlforge's probe: {answer.reason(1)}",
                                       f"check that {python} is the Python you train with"))
        return report
    _check_environment(report, answer.data)
    return report


def _check_files(report: DoctorReport, manifest) -> None:
    """Each file yamlforge wrote, against the hash the manifest recorded."""
    root = report.target.root
    for relpath, record in sorted(manifest.files.items()):
        status = file_status(root, relpath, record.after)
        report.files[relpath] = status
        if status != "ok":
            names = " ".join(f"--module {n}" for n in manifest.modules) or ""
            report.problems.append(Problem(
                f"{relpath} is {status} since yamlforge applied {', '.join(manifest.modules) or 'its fixes'}",
                f"yamlforge apply --repo {root} {names}".rstrip() + "  # re-applies onto your edits"))


def _check_environment(report: DoctorReport, raw: dict) -> None:
    """What the runner's environment mode found: the imported package and the missing requirements."""
    python, root, package = report.python, report.target.root, report.target.package
    report.imported = raw.get("imported")
    report.import_error = raw.get("import_error")
    if report.import_error:
        report.problems.append(Problem(f"importing {package} from the checkout fails: {report.import_error}",
                                       raw.get("import_fix")
                                       or f"{python} -c 'import {package}'  # in {root}, to see the traceback"))
    elif report.imported and not report.imported["inside_checkout"]:
        report.problems.append(Problem(
            f"Python imports {package} from {report.imported['file']}, not from {root}: edits to the checkout "
            "are invisible to it",
            f"{python} -m pip uninstall {package}  (or `pip install -e {root}`, or PYTHONPATH={root})"))
    for trap in raw.get("traps") or []:
        report.problems.append(Problem(trap["message"], trap["fix"]))
    report.missing_requirements = list(raw.get("missing") or [])
    for item in report.missing_requirements:
        have = f" (installed: {item['installed']})" if item.get("installed") else ""
        report.problems.append(Problem(f"requirement {item['requirement']} of an applied module is missing{have}",
                                       f"{python} -m pip install '{item['requirement']}'"))


def render_doctor(report: DoctorReport, console=None) -> None:
    from rich.console import Console
    from rich.markup import escape

    console = console or Console(soft_wrap=True, highlight=False)
    target = report.target
    console.print(f"target: {target.label} at {escape(str(target.root))}")
    console.print(f"python: {escape(report.python)}")
    if report.recovered:
        console.print(f"recovered: {escape(report.recovered)}")
    if report.imported:
        where = "the checkout" if report.imported["inside_checkout"] else "[red]outside the checkout[/]"
        console.print(f"imports: {report.imported['package']} {report.imported.get('version') or ''} from "
                      f"{escape(report.imported['file'])} ({where})")
    if report.modules:
        for name, exports in report.modules.items():
            console.print(f"applied: {name} ({', '.join(exports)})")
    else:
        console.print(f"applied: nothing ({MANIFEST} not found)" if not report.files else "applied: fixes only")
    for relpath, status in report.files.items():
        colour = "green" if status == "ok" else "red"
        console.print(f"  [{colour}]{status:<8}[/] {escape(relpath)}")
    for problem in report.problems:
        console.print(f"[bold red]problem:[/] {escape(problem.message)}")
        console.print(f"  [bold]fix:[/] {escape(problem.fix)}")
    summary = "doctor: ok" if report.ok else f"doctor: {len(report.problems)} problem(s)"
    console.print(f"[bold {'green' if report.ok else 'red'}]{summary}[/]")
