"""``apply`` and ``revert``: the patch engine's commands."""

from pathlib import Path
from typing import Annotated

import typer

from .common import (
    RepoOption,
    SpecOption,
    VerifyImgszOption,
    VerifyLogFlag,
    VerifyTrainFlag,
    handle_errors,
    print_diff,
    report_plan,
    stderr,
    verify_wanted,
    verify_written,
)


@handle_errors
def apply(
    repo: Path = RepoOption,
    module: list[str] = typer.Option([], "--module", "-m", help="Module to apply (repeatable); see `yamlforge list`."),
    spec: list[Path] = SpecOption,
    fix: list[str] = typer.Option([], "--fix", help="Stand-alone fix to apply: flops (GFLOPs for RT-DETR / "
                                                    "backbones)."),
    dry_run: bool = typer.Option(False, "--dry-run", "--diff", help="Print the diff on stdout; write nothing."),
    check: bool = typer.Option(False, "--check", help="Write nothing; exit 1 if changes are needed (--diff shows "
                                                      "them)."),
    fuse: Annotated[list[str], typer.Option(
        "--fuse", help="Also generate <HOST>_<MODULE>: the module inside the target's own HOST block (C2f, C3k2, "
                       "RepC3, HGBlock, RepNCSPELAN4; repeatable; 'all': every host the target has).")] = [],
    fuse_at: Annotated[str | None, typer.Option(
        "--fuse-at", help="Where in the host: inner (default: after each inner block) or output (after the "
                          "aggregation conv).")] = None,
    run_verify: Annotated[bool, typer.Option(
        "--verify", help="Then build, run and backprop a small probe detector using the applied modules "
                         "(yamlforge verify); exit 1 if a check fails.")] = False,
    train: VerifyTrainFlag = False,
    log: VerifyLogFlag = False,
    imgsz: VerifyImgszOption = 640,
    python: str | None = typer.Option(None, "--python", help="Python to probe your --spec modules' channel rule and "
                                                           "to build the --verify probe in (your training venv)."),
):
    """Place module code in the checkout and register it (imports, parse_model), recording it for revert."""
    from ..operations.patching import plan_apply_run

    no_write = "--dry-run" if dry_run else "--check" if check else None
    wanted = verify_wanted(run_verify or train, no_write=no_write, imgsz=imgsz, what="the patched checkout")
    run = plan_apply_run(repo, module, spec, fixes=fix, fuse=fuse, fuse_at=fuse_at, python=python, verify=wanted)
    if dry_run or check:
        diff = run.preview()
        if dry_run:
            print_diff(diff)
        report_plan(run.plan, verb="apply", dry_run=True, target=run.target)
        if check and run.changes_anything:
            raise typer.Exit(1)
        return
    run.write()
    report_plan(run.plan, verb="apply", dry_run=False, target=run.target)
    if run.probe is not None:
        _verify_probe(run, imgsz=imgsz, train=train, log=log)


def _verify_probe(run, *, imgsz: int, train: bool, log: bool) -> None:
    """Verify the small probe detector built from the modules just applied; the undo names exactly them."""
    from ..operations.patching import probe_file

    stderr(run.probe_scope)
    undo = f"yamlforge revert --repo {run.target.root}" + "".join(f" --module {n}" for n in run.modules)
    with probe_file(run.probe) as model:
        verify_written(model, run.target, imgsz=imgsz, train=train, undo=undo,
                       show_on_failure=f"the probe model:\n{run.probe}", python=run.python, log=log)


@handle_errors
def revert(
    repo: Path = RepoOption,
    module: list[str] = typer.Option([], "--module", "-m", help="Revert only these modules (default: everything)."),
    spec: list[Path] = SpecOption,
    dry_run: bool = typer.Option(False, "--dry-run", "--diff", help="Print the diff on stdout; write nothing."),
):
    """Undo yamlforge's edits: byte-identical originals, created files removed, your own edits kept."""
    from ..operations.patching import plan_revert_run

    run = plan_revert_run(repo, spec, module)
    if dry_run:
        print_diff(run.plan.code_diff())
    else:
        run.write()
    report_plan(run.plan, verb="revert", dry_run=dry_run, target=run.target)

