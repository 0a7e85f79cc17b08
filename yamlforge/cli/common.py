"""What every command shares: error rendering, the shared options, status words and diffs, verifying what was written.

No ``from __future__ import annotations`` in the CLI: typer reads every option's annotation on each call, and
evaluating them from strings more than doubled its per-call set-up of the commands.
"""

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer.exceptions import TyperException

from ..errors import InternalError, YamlforgeError

TRACEBACK_ENV = "YAMLFORGE_TRACEBACK"


def stderr(message: str) -> None:
    typer.echo(message, err=True)


def fail(exc: YamlforgeError) -> NoReturn:
    stderr(f"error: {exc}")
    if exc.hint:
        stderr(f"hint: {exc.hint}")
    raise typer.Exit(exc.exit_code) from None


def _internal_error(exc: Exception) -> InternalError:
    """A bug surfacing as an exception: one line naming the innermost frame, and how to see the traceback."""
    import traceback

    frame = traceback.extract_tb(exc.__traceback__)[-1]
    return InternalError(f"{type(exc).__name__}: {exc}", where=f"{Path(frame.filename).name}:{frame.lineno}",
                         hint=f"please report this bug; {TRACEBACK_ENV}=1 shows the traceback")


def handle_errors(func):
    """Render errors as ``error: ...`` / ``hint: ...`` on stderr: exit 2 for bad input, 3 for yamlforge's bugs."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except YamlforgeError as exc:
            fail(exc)
        except (typer.Exit, typer.Abort, TyperException):  # typer's own exits and usage errors
            raise
        except Exception as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            fail(_internal_error(exc))

    return wrapper


RepoOption = typer.Option(..., "--repo", help="Root of the Ultralytics or YOLOv9 checkout.")
SpecOption = typer.Option([], "--spec", help="Your own module spec YAML (repeatable).")
# --train, --log and --imgsz of --verify, shared by apply and gen-yaml (--log by verify too).
VerifyTrainFlag = Annotated[bool, typer.Option(
    "--train", help="With --verify (implied): also train 1 epoch on a synthetic dataset and reload the checkpoint.")]
VerifyImgszOption = Annotated[int, typer.Option("--imgsz", help="With --verify: image size of the checks.")]
VerifyLogFlag = Annotated[bool, typer.Option(
    "--log", help="With --train: keep your Ultralytics analytics (sync) and logging integrations (TensorBoard, W&B, "
                  "...) as your settings have them; by default the smoke run turns them off.")]


def print_diff(text: str) -> None:
    """Diff on stdout, coloured only on a terminal."""
    if not text:
        return
    if not sys.stdout.isatty():
        sys.stdout.write(text)
        return
    colours = {"+": "green", "-": "red", "@": "cyan"}
    for line in text.splitlines(keepends=True):
        colour = None if line.startswith(("+++", "---")) else colours.get(line[:1])
        typer.secho(line, fg=colour, nl=False, bold=line.startswith(("+++", "---")))


STATUS_WORDS = {
    "apply": {"create": "create", "patch": "patch", "delete": "remove"},
    "revert": {"create": "restore", "patch": "revert", "delete": "remove"},
}
PAST = {"create": "created", "patch": "patched", "remove": "removed", "restore": "restored", "revert": "reverted",
        "apply": "applied"}


def report_plan(plan, *, verb: str, dry_run: bool, target) -> None:
    """copier-style status words on stderr (``patch ultralytics/nn/tasks.py``), then one summary line."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for change in plan.news:
        word = STATUS_WORDS[verb][change.status]
        counts[word] += 1
        stderr(f"{'would ' if dry_run else ''}{word:<8} {change.path}")
    for note in plan.notes:
        stderr(f"note: {note}")
    names = ", ".join(plan.modules) or "nothing"
    if not counts:
        stderr(f"{names}: already {PAST[verb]}, nothing to do ({target.label})")
        return
    files = ", ".join(f"{n} {PAST[w]}" for w, n in counts.items())
    stderr(f"{names}: {'would be ' if dry_run else ''}{PAST[verb]} on {target.label} ({files})")


def verify_wanted(wanted: bool, *, no_write: str | None, imgsz: int, what: str) -> bool:
    """Whether to verify (--verify, or --train which implies it); refused up front if ``no_write`` (a flag) is set."""
    if not wanted:
        return False
    from ..check.verify import check_options

    if no_write:
        raise YamlforgeError(f"--verify builds {what}; {no_write} writes nothing", where="--verify",
                             hint=f"drop {no_write}")
    check_options(imgsz=imgsz)
    return True


def verify_written(model: Path, target, *, imgsz: int, train: bool, undo: str = "", show_on_failure: str = "",
                   python: str | None = None, log: bool = False, weights: Path | None = None) -> None:
    """Run ``yamlforge verify`` on what a command just wrote (training from ``weights`` if it wrote those too);
    render it; exit 1 (naming any undo) when a check failed."""
    from ..check.verify import render_report, verify

    typer.secho(f"\nverify {model}" + (" (with smoke training)" if train else ""), bold=True, err=True)
    report = verify(model, target, imgsz=imgsz, train=train, python=python, log=log,
                    weights=weights if train else None)
    render_report(report)
    if not report.ok:
        if show_on_failure:
            stderr(show_on_failure)
        if undo:
            stderr(f"undo: {undo}")
        raise typer.Exit(1)
