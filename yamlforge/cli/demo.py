"""``demo``: the SHViT recipe end to end, as the library calls behind apply, gen-yaml and verify."""

import time
from pathlib import Path

import typer

from .common import handle_errors, print_diff, report_plan, stderr, verify_written
from .gen_yaml import report_yaml

DEMO_VERSION = "8.4.190"
DEMO_STEPS = 4


@handle_errors
def demo(
    workdir: Path = typer.Option(Path("yamlforge-demo"), "--dir", help="Folder for the scratch checkout."),
    version: str = typer.Option(DEMO_VERSION, "--ultralytics", help="Ultralytics release the checkout is made from."),
    imgsz: int = typer.Option(640, "--imgsz", help="Image size for verify."),
    train: bool = typer.Option(False, "--train", help="Also run verify's 1-epoch smoke training."),
):
    """The SHViT recipe end to end: scratch checkout from PyPI, apply SHSA, gen-yaml rtdetr-l, verify."""
    from ..check.verify import check_options
    from ..scratch import make_checkout

    start = time.perf_counter()
    check_options(imgsz=imgsz)
    repo = workdir.resolve() / f"ultralytics-{version}"
    model = repo / "ultralytics/cfg/models/rt-detr/rtdetr-l-SHSA.yaml"
    _step(1, f"scratch checkout of ultralytics=={version} (the PyPI wheel, unpacked) in {repo}")
    make_checkout("ultralytics", version, repo)
    try:
        _apply_gen_verify(repo, model, imgsz=imgsz, train=train)
    finally:
        stderr(f"\ncheckout: {repo}\nmodel:    {model}\nundo:     yamlforge revert --repo {repo}")
        stderr(f"demo finished in {time.perf_counter() - start:.0f} s")


def _step(n: int, text: str) -> None:
    typer.secho(f"\n[{n}/{DEMO_STEPS}] {text}", bold=True, err=True)


def _apply_gen_verify(repo: Path, model: Path, *, imgsz: int, train: bool) -> None:
    """The library calls of apply, gen-yaml and verify, rendered as those commands would render them."""
    from ..modelyaml.compile import GenRequest, compile_yaml, write_result
    from ..modelyaml.edits import parse_edit
    from ..operations.patching import plan_apply_run

    _step(2, f"yamlforge apply --repo {repo} --module SHSA  (its diff, then the files written)")
    run = plan_apply_run(repo, ["SHSA"], [])
    print_diff(run.plan.code_diff())
    run.write()
    report_plan(run.plan, verb="apply", dry_run=False, target=run.target)
    _step(3, f"yamlforge gen-yaml rtdetr-l --insert-after 3=SHSA --repo {repo}")
    result = compile_yaml(GenRequest("rtdetr-l", [parse_edit("insert-after", "3=SHSA")], repo=repo, output=model))
    write_result(result)
    report_yaml(result, dry_run=False)
    typer.echo(model.read_text())
    _step(4, f"yamlforge verify {model} --repo {repo} --imgsz {imgsz}" + (" --train" if train else ""))
    verify_written(model, run.target, imgsz=imgsz, train=train)
