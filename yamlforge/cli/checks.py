"""``verify``, ``compare``, ``doctor`` and ``graph``: the commands that run a model in the target's Python."""

import json
from pathlib import Path

import typer

from .common import RepoOption, VerifyLogFlag, handle_errors, stderr


@handle_errors
def verify_command(
    models: list[Path] = typer.Argument(..., help="Model YAMLs (or stock names like yolov8n.yaml): each verified, "
                                        "all in one run of the target's Python."),
    repo: Path = RepoOption,
    imgsz: int = typer.Option(640, "--imgsz", help="Image size of the forward pass and GFLOPs."),
    batch: int = typer.Option(2, "--batch", help="Batch of the forward/backward pass and the smoke training."),
    train: bool = typer.Option(False, "--train", help="Also train 1 epoch on a synthetic dataset and reload it."),
    weights: Path | None = typer.Option(None, "--weights", help="With --train: start from this checkpoint (weights "
                                        "--base's OUT.pt) and report what the trainer transferred."),
    log: VerifyLogFlag = False,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (docs/verify-schema.json)."),
    python: str | None = typer.Option(None, "--python", help="Python to run the model in (your training venv)."),
    export: str | None = typer.Option(None, "--export", help="Also export with the target's exporter (onnx) and "
                                      "compare onnxruntime with PyTorch."),
):
    """Build the model in the checkout's own code: imports, layer table, GFLOPs, gradients, optional smoke training.
    With several models, a report for each (``--json``: a list of the objects)."""
    from ..check.export import add_export_check, check_export_format
    from ..check.verify import render_report, verify_many
    from ..targets import detect_target

    check_export_format(export)
    target = detect_target(repo)
    reports = verify_many(models, target, imgsz=imgsz, batch=batch, train=train, python=python, log=log,
                          weights=weights)
    for report in reports if export else ():
        add_export_check(report, target, imgsz=imgsz, log=log)
    if as_json:
        typer.echo(reports[0].to_json() if len(reports) == 1 else
                   json.dumps([report.to_dict() for report in reports], indent=2))
    else:
        for report in reports:
            render_report(report)
    if not all(report.ok for report in reports):
        raise typer.Exit(1)


@handle_errors
def compare_command(
    models: list[Path] = typer.Argument(..., help="Model YAMLs (or stock names), the first is the baseline."),
    repo: Path = RepoOption,
    imgsz: int | None = typer.Option(None, "--imgsz", help="Image size of GFLOPs, latency and memory (default: "
                                     "the size each model's task trains at, 640, classification 224)."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    runs: int = typer.Option(10, "--runs", help="Timed batch-1 forwards per model (after 2 warm-up runs)."),
    python: str | None = typer.Option(None, "--python", help="Python to run the models in (your training venv)."),
):
    """Layers, parameters, GFLOPs, CPU latency and peak memory of each model, and the difference to the first."""
    from ..check.compare import MEMORY_BATCH, check_output_format, compare, render
    from ..targets import detect_target

    check_output_format(fmt)
    rows = compare(models, detect_target(repo), imgsz=imgsz, runs=runs, python=python, progress=stderr)
    typer.echo(render(rows, fmt, imgsz=imgsz, batch=MEMORY_BATCH))
    if not all(row.ok for row in rows):
        raise typer.Exit(1)


@handle_errors
def doctor_command(
    repo: Path = RepoOption,
    python: str | None = typer.Option(None, "--python", help="Python to check (your training venv)."),
):
    """Check the checkout: what Python imports, applied modules and their files, missing requirements."""
    from ..check.doctor import doctor, render_doctor
    from ..targets import detect_target

    report = doctor(detect_target(repo), python=python)
    render_doctor(report)
    if not report.ok:
        raise typer.Exit(1)


@handle_errors
def graph_command(
    model: Path = typer.Argument(..., help="Model YAML (gen-yaml writes one)."),
    repo: Path = RepoOption,
    base: str | None = typer.Option(None, "--base", help="Highlight the rows that differ from this model (a path or "
                                                          "a name like rtdetr-l; default: what gen-yaml recorded)."),
    output: Path | None = typer.Option(None, "-o", "--output", help=".svg, .png, .pdf or .dot (default: MODEL.svg)."),
    python: str | None = typer.Option(None, "--python", help="Python to build the model in (your training venv)."),
):
    """Draw the model: a node per row with the channels and stride of a real build, edited rows highlighted."""
    from ..check.draw import draw
    from ..targets import detect_target

    drawn = draw(model, detect_target(repo), output or model.with_suffix(".svg"), base=base, python=python)
    stderr(f"create   {drawn}")
