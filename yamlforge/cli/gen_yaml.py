"""``gen-yaml``: the model-YAML compiler's command, with --verify, --graph and --base-weights on what it wrote."""

from pathlib import Path
from typing import Annotated

import typer

from ..errors import YamlforgeError
from ..weights.into_yaml import check_base_weights
from . import common
from .common import handle_errors, print_diff, stderr, verify_wanted, verify_written

TimmSetOption = Annotated[list[str], typer.Option(
    "--set", help="KEY=VALUE: a timm.create_model option of a timm:NAME backbone (drop_path_rate=0.1, pretrained=true, "
                  "pretrained_file=PATH).")]
TargetPythonOption = Annotated[str | None, typer.Option(
    "--python", help="Python to run the target's code in (your training venv): timm:NAME's stages, --verify, --graph "
    "and --base-weights.")]
BaseWeightsOption = Annotated[Path | None, typer.Option("--base-weights", help=(
    "The base model's checkpoint: also write OUTPUT.pt, the edited model with every kept layer's trained weights "
    "(yamlforge weights --base)."))]
EDIT_HELP = ("N=MODULE, N=MODULE(a, b) or N=MODULE(a)*3 (3 repeats); N is the BASE file's layer number (layerN too). "
             "N=residual:MODULE is x + MODULE(x), for a module that keeps its width (apply ResidualWrap too).")


@handle_errors
def gen_yaml(
    base: str | None = typer.Argument(None, help="Model name (rtdetr-l, yolov8n, gelan-c) or path to a model YAML."),
    replace: list[str] = typer.Option([], "--replace", help=f"Swap a layer's module. {EDIT_HELP}"),
    insert_after: list[str] = typer.Option([], "--insert-after", help=f"New layer reading N; N's readers read it. "
                                                                       f"{EDIT_HELP}"),
    insert_before: list[str] = typer.Option([], "--insert-before", help=f"New layer between N and its input. "
                                                                         f"{EDIT_HELP}"),
    remove: list[str] = typer.Option([], "--remove", help="Drop layer N (one input); its readers read that input."),
    replace_all: Annotated[list[str], typer.Option(
        "--replace-all", help="OLD=NEW: every layer running OLD runs NEW with the same args and repeats, e.g. "
                              "HGBlock=HGBlock_SHSA (a fusion from `apply --fuse`).")] = [],
    replace_in: Annotated[str | None, typer.Option(
        "--in", help="Limit --replace-all to the backbone or the head section.")] = None,
    backbone: Annotated[str | None, typer.Option(
        "--backbone", help="Replace the whole backbone section by MODULE or MODULE(args), a backbone module such as "
                           "revcol_tiny; the head reads its outputs at the same strides (P3/8, P4/16, P5/32). "
                           "Other edits then name head layers of BASE; timm:NAME takes any timm model.")] = None,
    sets: TimmSetOption = [],
    python: TargetPythonOption = None,
    recipe: Path | None = typer.Option(None, "--recipe", help="YAML file with base and edits (see examples/)."),
    repo: Path | None = typer.Option(None, "--repo", help="Checkout root (default: the one holding BASE, or .)."),
    output: Path | None = typer.Option(None, "-o", "--output", help="Output file (default: next to the base)."),
    scale: str | None = typer.Option(None, "--scale", help="Scale to build (n, s, m, l, x) of a multi-scale base."),
    nc: int | None = typer.Option(None, "--nc", help="Number of classes."),
    spec: list[Path] = common.SpecOption,
    allow_stride_change: bool = typer.Option(False, "--allow-stride-change", help="Allow edits that change strides."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    dry_run: bool = typer.Option(False, "--dry-run", "--diff",
                                 help="Print the diff against the base on stdout; write nothing."),
    run_verify: Annotated[bool, typer.Option(
        "--verify", help="Then run yamlforge verify on the written YAML; exit 1 if a check fails.")] = False,
    train: common.VerifyTrainFlag = False,
    log: common.VerifyLogFlag = False,
    imgsz: common.VerifyImgszOption = 640,
    graph: Annotated[Path | None, typer.Option(
        "--graph", help="Then draw the written YAML (yamlforge graph) to this .svg/.png/.pdf/.dot file.")] = None,
    base_weights: BaseWeightsOption = None,
):
    """Compile a base model YAML plus layer edits into a ready-to-train YAML, every `from` index renumbered."""
    from ..modelyaml.compile import GenRequest, compile_yaml, write_result

    run_verify = verify_wanted(run_verify or train, no_write="--dry-run" if dry_run else None, imgsz=imgsz,
                               what="the written YAML")
    if graph is not None and dry_run:
        raise YamlforgeError("--graph draws the written YAML, so it needs the file written", where="--graph",
                             hint="drop --dry-run")
    edits = _layer_edits(replace=replace, remove=remove, insert_before=insert_before, insert_after=insert_after)
    result = compile_yaml(GenRequest(base, edits, backbone=_backbone_edit(backbone, sets),
                                     replace_all=_replace_all_swaps(replace_all, replace_in), repo=repo,
                                     output=output, scale=scale, nc=nc, recipe=recipe, spec_paths=tuple(spec),
                                     allow_stride_change=allow_stride_change, force=force, dry_run=dry_run,
                                     python=python))
    check_base_weights(base_weights, result.output_path, dry_run=dry_run, force=force)
    if dry_run:
        print_diff(result.diff())
    else:
        write_result(result)
    report_yaml(result, dry_run=dry_run)
    _after_writing(result, graph=graph, run_verify=run_verify, imgsz=imgsz, train=train, log=log, python=python,
                   weights=_write_base_weights(result, base_weights, python=python))


def _write_base_weights(result, base_weights: Path | None, *, python: str | None) -> Path | None:
    """``--base-weights``: the checkpoint loaded into the YAML just written, rendered; its path (or None)."""
    if base_weights is None:
        return None
    from ..weights.into_yaml import base_weights_output, load_base_weights
    from ..weights.load import render_weights

    output = base_weights_output(result.output_path)
    render_weights(load_base_weights(result.output_path, result.root, base_weights, python=python), output)
    return output


def _layer_edits(**values: list[str]) -> list:
    """The layer edits of gen-yaml's options (``insert_after=["3=SHSA"]``), in the order compile_yaml takes them."""
    from ..modelyaml.edits import parse_edit

    return [parse_edit(op.replace("_", "-"), value) for op, given in values.items() for value in given]


def _backbone_edit(backbone: str | None, sets: list[str]):
    """``--backbone`` with its ``--set`` options; ``--set`` alone is a usage error."""
    from ..modelyaml.edits import parse_backbone

    if sets and backbone is None:
        raise YamlforgeError("--set gives the options of a timm backbone", where="--set",
                             hint="--backbone timm:NAME --set KEY=VALUE")
    return None if backbone is None else parse_backbone(backbone, sets=sets)


def _replace_all_swaps(values: list[str], section: str | None) -> list:
    """``--replace-all OLD=NEW`` values, limited to ``--in SECTION``."""
    from ..modelyaml.edits import parse_replace_all

    if section is not None and not values:
        raise YamlforgeError("--in limits --replace-all; give --replace-all OLD=NEW", where="--in")
    return [parse_replace_all(value, section) for value in values]


def _after_writing(result, *, graph: Path | None, run_verify: bool, imgsz: int, train: bool, log: bool = False,
                   python: str | None = None, weights: Path | None = None) -> None:
    """gen-yaml's ``--graph`` and ``--verify`` on the YAML it wrote (the smoke training from the ``weights`` it
    wrote with ``--base-weights``), built in ``python`` (``--python``)."""
    from ..targets import detect_target

    if graph is not None:
        from ..check.draw import draw

        stderr(f"create   {draw(result.output_path, detect_target(result.root), graph, python=python)}")
    if run_verify:
        verify_written(result.output_path, detect_target(result.root), imgsz=imgsz, train=train, log=log,
                       python=python, weights=weights)


def report_yaml(result, *, dry_run: bool) -> None:
    """What gen-yaml did, on stderr: the status word and file, the changed rows, one summary line."""
    from ..modelyaml.compile import render_rows

    word = ("would " if dry_run else "") + ("overwrite" if result.exists else "create")
    stderr(f"{word} {result.display(result.output_path)}")
    if result.rows:
        stderr(render_rows(result))
    stderr(f"{len(result.rows)} row(s) changed from {result.display(result.base_path)}")
