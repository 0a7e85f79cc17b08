"""``yamlforge verify``: runs verify_runner.py in the target's Python and turns its JSON into a report.

The parent process never imports torch or the target: a subprocess with the checkout first on ``sys.path``
(cwd in a temporary folder) does the import, build, forward, GFLOPs, backward and optional smoke training,
and prints one JSON object that :class:`VerifyReport` wraps.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import YamlforgeError
from ..modelyaml.base import has_own_naming
from ..target_python import RUNNERS, resolve_python, run_runner
from ..targets import Target, unscaled_stem

RUNNER = RUNNERS / "verify_runner.py"
SCHEMA_ID = "yamlforge.verify/1"
CHECK_ORDER = ("runner", "import", "build", "forward", "flops", "backward", "train", "reload", "safe_reload")
TIMEOUT = {False: 900, True: 3600}  # seconds; a smoke training on a slow CPU runner can take minutes


@dataclass
class Check:
    """One verification step: ``status`` is pass, fail, skip or warn."""

    name: str
    status: str
    message: str
    hint: str | None = None
    where: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, raw: dict) -> Check:
        known = {k: raw.get(k) for k in ("name", "status", "message", "hint", "where")}
        details = {k: v for k, v in raw.items() if k not in known}
        return cls(details=details, **known)

    def to_dict(self) -> dict:
        return {"name": self.name, "status": self.status, "message": self.message, "hint": self.hint,
                "where": self.where, **self.details}


@dataclass
class VerifyReport:
    """What the runner found; ``ok`` when no check failed."""

    target: dict
    yaml: str
    imgsz: int
    batch: int
    python: str
    checks: list[Check]
    imported: dict | None = None
    builder: str | None = None
    task: dict | None = None  # the task the target's wrapper chose and its task_map's classes; None: not read
    torch: str | None = None
    layers: list[dict] = field(default_factory=list)
    totals: dict = field(default_factory=dict)
    gradients: dict | None = None
    train: dict | None = None
    settings: dict | None = None  # the target's settings and analytics client as the run left them
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failed_checks

    @property
    def failed_checks(self) -> list[str]:
        return [c.name for c in self.checks if c.status == "fail"]

    def check(self, name: str) -> Check | None:
        return next((c for c in self.checks if c.name == name), None)

    def to_dict(self) -> dict:
        return {
            "schema": SCHEMA_ID,
            "ok": self.ok,
            "failed_checks": self.failed_checks,
            "target": self.target,
            "yaml": self.yaml,
            "imgsz": self.imgsz,
            "batch": self.batch,
            "python": self.python,
            "torch": self.torch,
            "imported": self.imported,
            "builder": self.builder,
            "task": self.task,
            "checks": [c.to_dict() for c in self.checks],
            "layers": self.layers,
            "totals": self.totals,
            "gradients": self.gradients,
            "train": self.train,
            "settings": self.settings,
            "notes": self.notes,
        }

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)

    @classmethod
    def from_runner(cls, raw: dict) -> VerifyReport:
        return cls(
            target=raw["target"], yaml=raw["yaml"], imgsz=raw["imgsz"], batch=raw["batch"], python=raw["python"],
            checks=[Check.from_dict(c) for c in raw.get("checks", [])], imported=raw.get("imported"),
            builder=raw.get("builder"), task=raw.get("task"), torch=raw.get("torch"), layers=raw.get("layers") or [],
            totals=raw.get("totals") or {}, gradients=raw.get("gradients"), train=raw.get("train"),
            settings=raw.get("settings"), notes=list(raw.get("notes") or []),
        )


# ------------------------------------------------------------------ running


def resolve_yaml(yaml_path: Path | str, target: Target) -> str:
    """A model YAML file, or a stock name the target resolves itself (Ultralytics: ``yolov8n.yaml``)."""
    path = Path(yaml_path).expanduser()
    if path.is_file():
        return str(path.resolve())
    if target.kind.runtime.stock_names and path.name == str(yaml_path) and path.suffix in (".yaml", ".yml"):
        # the target's own rule: yolov8n.yaml is yolov8.yaml at scale n
        unscaled = unscaled_stem(path.stem) + path.suffix
        models = [target.root / folder for folder in target.kind.model_dirs]
        if any(any(m.rglob(path.name)) or any(m.rglob(unscaled)) for m in models) or has_own_naming(target):
            return path.name  # a fork's own names (its own naming rules) are left to its own loader
    raise YamlforgeError(f"model YAML '{yaml_path}' does not exist", where="MODEL",
                         hint="pass a YAML file (yamlforge gen-yaml writes one) or a stock name like yolov8n.yaml")


def _runner_failure(target: Target, yaml: str, imgsz: int, batch: int, python: str, message: str,
                    tail: str) -> VerifyReport:
    return VerifyReport(
        target={"kind": target.kind.name, "version": target.version, "root": str(target.root)}, yaml=yaml,
        imgsz=imgsz, batch=batch, python=python,
        checks=[Check("runner", "fail", message, hint="this is a yamlforge bug if the output below does not "
                      "explain it; please report it", details={"stderr": tail})],
    )


def check_options(*, imgsz: int, batch: int = 2) -> None:
    """Refuse unusable sizes up front (callers check before they write anything)."""
    if imgsz < 32 or imgsz % 32:
        raise YamlforgeError(f"--imgsz {imgsz} must be a positive multiple of 32", where="--imgsz")
    if batch < 1:
        raise YamlforgeError(f"--batch {batch} must be at least 1", where="--batch")


def check_pretrained(weights: Path | None, train: bool) -> list[str]:
    """The runner's ``--pretrained`` for ``verify --train --weights OUT.pt``; refuses it without --train."""
    if weights is None:
        return []
    if not train:
        raise YamlforgeError("--weights is the checkpoint the smoke training starts from", where="--weights",
                             hint="add --train")
    if not Path(weights).is_file():
        raise YamlforgeError(f"checkpoint '{weights}' does not exist", where="--weights",
                             hint="yamlforge weights MODEL.yaml --base BASE.pt -o OUT.pt writes one")
    return ["--pretrained", str(Path(weights).resolve())]


def verify(yaml_path: Path, target: Target, *, imgsz=640, batch=2, train=False, python: str | None = None,
           log: bool = False, weights: Path | None = None) -> VerifyReport:
    """Build (with ``train``: smoke-train, from the checkpoint ``weights`` if given) ``yaml_path`` in ``target`` in a
    subprocess; a failed check never raises.

    ``log``: the smoke run keeps the user's analytics and logging settings (else they are off for it).

    Raises YamlforgeError for bad input: missing YAML or checkpoint, unusable --imgsz/--batch, unknown --python.
    """
    return verify_many([yaml_path], target, imgsz=imgsz, batch=batch, train=train, python=python, log=log,
                       weights=weights)[0]


def verify_many(yaml_paths: list[Path], target: Target, *, imgsz=640, batch=2, train=False, python: str | None = None,
                log: bool = False, weights: Path | None = None) -> list[VerifyReport]:
    """:func:`verify` of each model, in one subprocess (torch, the checkout and its trainer imported once); their
    reports in order. Several models with ``weights`` (one model's checkpoint) are refused."""
    check_options(imgsz=imgsz, batch=batch)
    if weights is not None and len(yaml_paths) > 1:
        raise YamlforgeError("--weights is one model's checkpoint", where="--weights",
                             hint="verify the model it was written for alone")
    yamls = [resolve_yaml(path, target) for path in yaml_paths]
    python = resolve_python(python)
    args = ["--mode", "verify", "--yaml", *yamls,
            "--imgsz", str(imgsz), "--batch", str(batch), *check_pretrained(weights, train)]
    if train:
        args.append("--train")
    answer = run_runner(RUNNER, args, python=python, timeout=TIMEOUT[bool(train)] * len(yamls), target=target,
                        log=log)
    if not answer.ok:  # no answer, a crash (with its traceback), or target facts the runner does not understand
        return [_runner_failure(target, yaml, imgsz, batch, python, answer.failure("verify"), answer.diagnostic(15))
                for yaml in yamls]
    return [VerifyReport.from_runner(raw) for raw in answer.data.get("reports", [answer.data])]


# ------------------------------------------------------------------ rendering


def format_shape(shape) -> str:
    if shape is None:
        return ""
    if all(isinstance(d, int) for d in shape):
        return "×".join(map(str, shape))
    parts = [format_shape(s) for s in shape]
    text = ", ".join(p for p in parts if p)
    return f"({text})" if len(text) <= 60 else f"({text[:57]}...)"


def format_params(n: int | None) -> str:
    return "" if n is None else f"{n:,}"


MARK = {"pass": "[green]✓[/]", "fail": "[red]✗[/]", "skip": "[yellow]-[/]", "warn": "[yellow]![/]"}


def render_report(report: VerifyReport, console=None) -> None:
    """The failing checks first, then the layer table, totals and every check with its verdict."""
    from rich.console import Console
    from rich.markup import escape

    from ..tables import fit_table

    console = console or Console(soft_wrap=True, highlight=False)
    target = report.target
    label = f"{target['kind']} {target.get('version') or ''}".strip()
    _render_failures(report, console)
    if report.layers:
        console.print(fit_table(_layer_table(report, label), console.width))  # module names never cut
    if report.totals:
        console.print(_totals_line(report))
    if report.imported:
        console.print(f"imported {report.imported['package']} from {escape(report.imported['file'])}")
    if report.task:
        console.print(escape(task_line(report.task)))
    for check in report.checks:
        console.print(f"{MARK.get(check.status, '?')} {check.name:<12} {escape(check.message)}")
    names = (report.gradients or {}).get("no_grad")
    if names:
        shown = ", ".join(names[:8]) + (f", ... ({len(names)} in all)" if len(names) > 8 else "")
        console.print(f"[yellow]no gradient:[/] {escape(shown)}")
    for note in report.notes:
        console.print(f"note: {escape(note)}")
    if report.ok:
        console.print(f"[bold green]verify: ok[/] ({len(report.checks)} checks, {label})")
    else:
        console.print(f"[bold red]verify: failed[/] ({', '.join(report.failed_checks)}; {label})")


def task_line(task: dict) -> str:
    """``task segment: YOLO built SegmentationModel; trainer SegmentationTrainer, ...`` (what the target chose)."""
    chosen = [f"{role} {task[role]}" for role in ("trainer", "validator") if task.get(role)]
    chosen += [f"{role} {task[key]}" for role, key in (("dataset", "data"), ("metric", "metric")) if task.get(key)]
    return (f"task {task.get('task') or '?'}: {task['model_class']} built {task['model']}"
            + (f"; {', '.join(chosen)}" if chosen else ""))


def _render_failures(report: VerifyReport, console) -> None:
    from rich.markup import escape

    for check in report.checks:
        if check.status != "fail":
            continue
        console.print(f"[bold red]FAILED {check.name}[/]: {escape(check.message)}")
        if check.where:
            console.print(f"  at {escape(check.where)}")
        if check.hint:
            console.print(f"  [bold]fix:[/] {escape(check.hint)}")
        if check.details.get("stderr"):
            console.print(escape(check.details["stderr"]))


def _layer_table(report: VerifyReport, label: str):
    from rich.markup import escape
    from rich.table import Table

    table = Table("#", "from", "module", "params", "output shape", "stride", box=None, pad_edge=False,
                  title=f"{escape(Path(report.yaml).name)} on {label} ({report.builder or 'build'})")
    for row in report.layers:
        stride = row.get("stride")
        table.add_row(str(row["index"]), str(row["from"]), escape(row["module"]), format_params(row["params"]),
                      format_shape(row.get("shape")), "" if stride is None else str(stride))
    return table


def _totals_line(report: VerifyReport) -> str:
    totals = report.totals
    gflops = totals.get("gflops")
    own = totals.get("target_gflops")
    return (
        f"{totals.get('layers', '?')} layers, {format_params(totals.get('parameters'))} parameters, "
        f"{'?' if gflops is None else f'{gflops:.2f}'} GFLOPs at {report.imgsz}"
        + (f" (target reports {own:.2f})" if own is not None else "")
        + (f", forward {totals['forward_ms']:.0f} ms (batch {report.batch}, CPU)" if "forward_ms" in totals else "")
    )
