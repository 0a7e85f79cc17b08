"""The ``yamlforge`` command line: parses options, calls one library function, renders the result.

No ``from __future__ import annotations`` here: typer reads every option's annotation on each call, and evaluating
them from strings more than doubled its per-call set-up of the commands.
"""

import functools
import os
import sys
from pathlib import Path
from typing import Annotated, NoReturn

import typer
from typer.exceptions import TyperException

from .errors import InternalError, YamlforgeError

TRACEBACK_ENV = "YAMLFORGE_TRACEBACK"

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Add a paper's module to your Ultralytics / YOLOv9 detector in one reviewed command.",
)


def _stderr(message: str) -> None:
    typer.echo(message, err=True)


def _fail(exc: YamlforgeError) -> NoReturn:
    _stderr(f"error: {exc}")
    if exc.hint:
        _stderr(f"hint: {exc.hint}")
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
            _fail(exc)
        except (typer.Exit, typer.Abort, TyperException):  # typer's own exits and usage errors
            raise
        except Exception as exc:
            if os.environ.get(TRACEBACK_ENV):
                raise
            _fail(_internal_error(exc))

    return wrapper


RepoOption = typer.Option(..., "--repo", help="Root of the Ultralytics or YOLOv9 checkout.")
SpecOption = typer.Option([], "--spec", help="Your own module spec YAML (repeatable).")


# ---------------------------------------------------------------- apply / revert / list / show

STATE_PREFIX = ".yamlforge/"


def _print_diff(text: str) -> None:
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


def _report(plan, *, verb: str, dry_run: bool, target) -> None:
    """copier-style status words on stderr (``patch ultralytics/nn/tasks.py``), then one summary line."""
    from collections import Counter

    counts: Counter[str] = Counter()
    for change in plan.changeset.effective:
        if change.path.startswith(STATE_PREFIX) and not change.path.endswith("manifest.json"):
            continue  # pristine copies are bookkeeping, not news
        word = STATUS_WORDS[verb][change.status]
        counts[word] += 1
        _stderr(f"{'would ' if dry_run else ''}{word:<8} {change.path}")
    for note in plan.notes:
        _stderr(f"note: {note}")
    names = ", ".join(plan.modules) or "nothing"
    if not counts:
        _stderr(f"{names}: already {PAST[verb]}, nothing to do ({target.label})")
        return
    files = ", ".join(f"{n} {PAST[w]}" for w, n in counts.items())
    _stderr(f"{names}: {'would be ' if dry_run else ''}{PAST[verb]} on {target.label} ({files})")


def _code_diff(plan) -> str:
    return "".join(c.diff() for c in plan.changeset.effective if not c.path.startswith(STATE_PREFIX))


# --train and --imgsz of --verify, shared by apply and gen-yaml.
VerifyTrainFlag = Annotated[bool, typer.Option(
    "--train", help="With --verify (implied): also train 1 epoch on a synthetic dataset and reload the checkpoint.")]
VerifyImgszOption = Annotated[int, typer.Option("--imgsz", help="With --verify: image size of the checks.")]
BaseWeightsOption = Annotated[Path | None, typer.Option("--base-weights", help=(
    "The base model's checkpoint: also write OUTPUT.pt, the edited model with every kept layer's trained weights "
    "(yamlforge weights --base)."))]
VerifyLogFlag = Annotated[bool, typer.Option(
    "--log", help="With --train: keep your Ultralytics analytics (sync) and logging integrations (TensorBoard, W&B, "
                  "...) as your settings have them; by default the smoke run turns them off.")]


def _verify_written(model: Path, target, *, imgsz: int, train: bool, undo: str = "", show_on_failure: str = "",
                    python: str | None = None, log: bool = False, weights: Path | None = None) -> None:
    """Run ``yamlforge verify`` on what a command just wrote (training from ``weights`` if it wrote those too);
    render it; exit 1 (naming any undo) when a check failed."""
    from .check.verify import render_report, verify

    typer.secho(f"\nverify {model}" + (" (with smoke training)" if train else ""), bold=True, err=True)
    report = verify(model, target, imgsz=imgsz, train=train, python=python, log=log,
                    weights=weights if train else None)
    render_report(report)
    if not report.ok:
        if show_on_failure:
            _stderr(show_on_failure)
        if undo:
            _stderr(f"undo: {undo}")
        raise typer.Exit(1)


def _verify_wanted(wanted: bool, *, no_write: str | None, imgsz: int, what: str) -> bool:
    """Whether to verify (--verify, or --train which implies it); refused up front if ``no_write`` (a flag) is set."""
    if not wanted:
        return False
    from .check.verify import check_options

    if no_write:
        raise YamlforgeError(f"--verify builds {what}; {no_write} writes nothing", where="--verify",
                             hint=f"drop {no_write}")
    check_options(imgsz=imgsz)
    return True


def _preview(plan, target, *, diff: bool, check: bool) -> None:
    """A dry run: validate as a write would, print the diff if asked, then the status words; --check exits 1."""
    plan.changeset.validate()
    if diff:
        _print_diff(_code_diff(plan))
    _report(plan, verb="apply", dry_run=True, target=target)
    if check and plan.changeset.effective:
        raise typer.Exit(1)


def _verify_probe(probe: str, target, modules: list[str], *, imgsz: int, train: bool, python: str | None,
                  log: bool = False) -> None:
    """Verify the small probe detector built from the modules just applied; the undo names exactly them."""
    import tempfile

    from .check.probe import write_probe

    undo = f"yamlforge revert --repo {target.root}" + "".join(f" --module {n}" for n in modules)
    with tempfile.TemporaryDirectory(prefix="yamlforge-probe-") as folder:
        _verify_written(write_probe(probe, Path(folder)), target, imgsz=imgsz, train=train, undo=undo,
                        show_on_failure=f"the probe model:\n{probe}", python=python, log=log)


@app.command()
@handle_errors
def apply(
    repo: Path = RepoOption,
    module: list[str] = typer.Option([], "--module", "-m", help="Module to apply (repeatable); see `yamlforge list`."),
    spec: list[Path] = SpecOption,
    fix: list[str] = typer.Option([], "--fix", help="Stand-alone fix to apply: flops (GFLOPs for RT-DETR / backbones)."),
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
    from .adopt.rulecheck import check_channel_rules
    from .patch.plan import plan_apply
    from .patch.writer import write_changeset
    from .specs import SpecRegistry, load_spec
    from .targets import detect_target

    target = detect_target(repo)
    registry = SpecRegistry(spec)
    names = list(module) or [load_spec(p).name for p in spec]
    if not names and not fix:
        raise YamlforgeError("nothing to apply", where="--module", hint="yamlforge apply --repo PATH --module SHSA")
    specs = [registry.get(n) for n in names]
    probe_notes = check_channel_rules(specs, python)  # before the lock: probing takes seconds
    plan = plan_apply(target, specs, registry, fixes=fix, fuse=fuse, fuse_at=fuse_at)
    plan.notes += probe_notes
    probe = None
    no_write = "--dry-run" if dry_run else "--check" if check else None
    if _verify_wanted(run_verify or train, no_write=no_write, imgsz=imgsz, what="the patched checkout"):
        from .check.probe import probe_names, probe_yaml
        from .target_python import resolve_python

        probe = probe_yaml(target, probe_names(names, registry))  # before writing: a bad probe changes nothing
        python = resolve_python(python)  # so does an unknown --python
    if dry_run or check:
        _preview(plan, target, diff=dry_run, check=check)
        return
    write_changeset(plan.changeset)
    _report(plan, verb="apply", dry_run=False, target=target)
    if probe is not None:
        _verify_probe(probe, target, list(dict.fromkeys(s.name for s in specs)), imgsz=imgsz, train=train,
                      python=python, log=log)


@app.command()
@handle_errors
def revert(
    repo: Path = RepoOption,
    module: list[str] = typer.Option([], "--module", "-m", help="Revert only these modules (default: everything)."),
    spec: list[Path] = SpecOption,
    dry_run: bool = typer.Option(False, "--dry-run", "--diff", help="Print the diff on stdout; write nothing."),
):
    """Undo yamlforge's edits: byte-identical originals, created files removed, your own edits kept."""
    from .patch.plan import plan_revert
    from .patch.writer import write_changeset
    from .specs import SpecRegistry
    from .targets import detect_target

    target = detect_target(repo)
    plan = plan_revert(target, SpecRegistry(spec), list(module) or None)
    if dry_run:
        _print_diff(_code_diff(plan))
    else:
        write_changeset(plan.changeset)
    _report(plan, verb="revert", dry_run=dry_run, target=target)


@app.command("list")
@handle_errors
def list_modules(
    spec: list[Path] = SpecOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    timm: str | None = typer.Option(None, "--timm", help="List the timm models matching PATTERN ('*': all) with "
                                                         "their stage widths and strides, and the heads they fit."),
    python: str | None = typer.Option(None, "--python", help="Python whose timm to list (your training venv)."),
):
    """List the bundled modules (and your --spec ones), or with --timm the timm models usable as backbones."""
    from .catalog import spec_rows
    from .specs import SpecRegistry

    if timm is not None:
        _list_timm(timm, python, as_json)
        return
    rows = spec_rows(SpecRegistry(spec))
    if as_json:
        import json

        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.console import Console
    from rich.table import Table

    table = Table("name", "role", "channels", "stride", "exports", "summary", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row["name"], row["role"], row["channels"], ",".join(map(str, row["stride"])),
                      ", ".join(row["exports"]), row["summary"])
    Console(soft_wrap=True).print(table)


@app.command()
@handle_errors
def show(
    name: str = typer.Argument(..., help="Module name (or one of its exports)."),
    spec: list[Path] = SpecOption,
    fuse: Annotated[list[str], typer.Option(
        "--fuse", help="Print the generated <HOST>_<NAME> class instead (repeatable, or 'all'); nothing is written.")] = [],
    fuse_at: Annotated[str | None, typer.Option("--fuse-at", help="inner (default) or output.")] = None,
    repo: Annotated[Path | None, typer.Option(
        "--repo", help="Checkout whose host classes --fuse subclasses (default: Ultralytics 8.4.190).")] = None,
):
    """Show a module's spec, arguments, the YAML line to use it and the parse_model branch it adds."""
    from .catalog import describe
    from .specs import SpecRegistry

    module = SpecRegistry(spec).get(name, option="NAME")
    if not fuse:
        typer.echo(describe(module), nl=False)
        return
    from .patch.fusion import preview_fusions
    from .targets import detect_target

    for fusion, code in preview_fusions(module, fuse, fuse_at, detect_target(repo) if repo else None):
        typer.echo(f"# {fusion.file_stem}.py: YAML rows use it as `[-1, n, {fusion.name}, [<{fusion.host} args>]]`")
        typer.echo(code)


def _list_timm(pattern: str, python: str | None, as_json: bool) -> None:
    """``list --timm PATTERN``: a row per timm model, widest fit first; models without features listed last."""
    import json

    from rich.console import Console
    from rich.table import Table

    from .modelyaml.timm import survey_timm

    version, rows = survey_timm(pattern, python)
    if as_json:
        typer.echo(json.dumps({"timm": version, "models": rows}, indent=2))
        return
    table = Table("timm:NAME", "fits", "widths", "strides", "size", "pretrained", box=None, pad_edge=False,
                  title=f"timm {version}: {sum(bool(r['fits']) for r in rows)} of {len(rows)} fit a detection head")
    for row in sorted(rows, key=lambda r: (not r["fits"], "error" in r, r["name"])):
        size = "fixed" if row["fixed_input_size"] else "any"  # gen-yaml makes a fixed one dynamic, or refuses it
        table.add_row(row["name"], ", ".join(row["fits"]) or "-", ",".join(map(str, row.get("channels", ()))),
                      ",".join(map(str, row.get("reductions", ()))) or row.get("error", ""), size,
                      "yes" if row["pretrained"] else "no")
    Console(soft_wrap=True).print(table)


# ---------------------------------------------------------------- gen-yaml

TimmSetOption = Annotated[list[str], typer.Option(
    "--set", help="KEY=VALUE: a timm.create_model option of a timm:NAME backbone (drop_path_rate=0.1, pretrained=true, "
                  "pretrained_file=PATH).")]
TargetPythonOption = Annotated[str | None, typer.Option(
    "--python", help="Python to run the target's code in (your training venv): timm:NAME's stages, --verify, --graph "
    "and --base-weights.")]
EDIT_HELP = "N=MODULE, N=MODULE(a, b) or N=MODULE(a)*3 (3 repeats); N is the BASE file's layer number (layerN too)."


@app.command("gen-yaml")
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
    spec: list[Path] = SpecOption,
    allow_stride_change: bool = typer.Option(False, "--allow-stride-change", help="Allow edits that change strides."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file."),
    dry_run: bool = typer.Option(False, "--dry-run", "--diff",
                                 help="Print the diff against the base on stdout; write nothing."),
    run_verify: Annotated[bool, typer.Option(
        "--verify", help="Then run yamlforge verify on the written YAML; exit 1 if a check fails.")] = False,
    train: VerifyTrainFlag = False,
    log: VerifyLogFlag = False,
    imgsz: VerifyImgszOption = 640,
    graph: Annotated[Path | None, typer.Option(
        "--graph", help="Then draw the written YAML (yamlforge graph) to this .svg/.png/.pdf/.dot file.")] = None,
    base_weights: BaseWeightsOption = None,
):
    """Compile a base model YAML plus layer edits into a ready-to-train YAML, every `from` index renumbered."""
    from .modelyaml.compile import GenRequest, compile_yaml, write_result

    run_verify = _verify_wanted(run_verify or train, no_write="--dry-run" if dry_run else None, imgsz=imgsz,
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
    _check_base_weights(base_weights, result.output_path.with_suffix(".pt"), dry_run=dry_run, force=force)
    if dry_run:
        _print_diff(result.diff())
    else:
        write_result(result)
    _report_yaml(result, dry_run=dry_run)
    _after_writing(result, graph=graph, run_verify=run_verify, imgsz=imgsz, train=train, log=log, python=python,
                   weights=_write_base_weights(result, base_weights, python=python))


def _check_base_weights(base_weights: Path | None, output: Path, *, dry_run: bool, force: bool) -> None:
    """``--base-weights`` before anything is written: a file, a run that writes the YAML, no checkpoint overwritten."""
    if base_weights is None:
        return
    if dry_run or not base_weights.is_file():
        raise YamlforgeError("--base-weights loads into the written YAML, so it needs the file written" if dry_run
                             else f"checkpoint '{base_weights}' does not exist", where="--base-weights")
    if output.exists() and not force:
        raise YamlforgeError(f"'{output}' exists; nothing was written", where="--base-weights",
                             hint="pass --force to overwrite it")


def _write_base_weights(result, base_weights: Path | None, *, python: str | None) -> Path | None:
    """gen-yaml's ``--base-weights``: ``yamlforge weights --base`` into the YAML it wrote; OUT (next to it) or None."""
    from .targets import detect_target

    if base_weights is None:
        return None
    from .weights.load import load_weights, render_weights

    output = result.output_path.with_suffix(".pt")
    render_weights(load_weights(result.output_path, detect_target(result.root), [], output, base=base_weights,
                                python=python), output)
    return output


def _layer_edits(**values: list[str]) -> list:
    """The layer edits of gen-yaml's options (``insert_after=["3=SHSA"]``), in the order compile_yaml takes them."""
    from .modelyaml.compile import parse_edit

    return [parse_edit(op.replace("_", "-"), value) for op, given in values.items() for value in given]


def _backbone_edit(backbone: str | None, sets: list[str]):
    """``--backbone`` with its ``--set`` options; ``--set`` alone is a usage error."""
    from .modelyaml.compile import parse_backbone

    if sets and backbone is None:
        raise YamlforgeError("--set gives the options of a timm backbone", where="--set",
                             hint="--backbone timm:NAME --set KEY=VALUE")
    return None if backbone is None else parse_backbone(backbone, sets=sets)


def _after_writing(result, *, graph: Path | None, run_verify: bool, imgsz: int, train: bool, log: bool = False,
                   python: str | None = None, weights: Path | None = None) -> None:
    """gen-yaml's ``--graph`` and ``--verify`` on the YAML it wrote (the smoke training from the ``weights`` it
    wrote with ``--base-weights``), built in ``python`` (``--python``)."""
    from .targets import detect_target

    if graph is not None:
        from .check.draw import draw

        _stderr(f"create   {draw(result.output_path, detect_target(result.root), graph, python=python)}")
    if run_verify:
        _verify_written(result.output_path, detect_target(result.root), imgsz=imgsz, train=train, log=log,
                        python=python, weights=weights)


def _replace_all_swaps(values: list[str], section: str | None) -> list:
    """``--replace-all OLD=NEW`` values, limited to ``--in SECTION``."""
    from .modelyaml.compile import parse_replace_all

    if section is not None and not values:
        raise YamlforgeError("--in limits --replace-all; give --replace-all OLD=NEW", where="--in")
    return [parse_replace_all(value, section) for value in values]


def _report_yaml(result, *, dry_run: bool) -> None:
    """What gen-yaml did, on stderr: the status word and file, the changed rows, one summary line."""
    word = ("would " if dry_run else "") + ("overwrite" if result.exists else "create")
    _stderr(f"{word} {result.display(result.output_path)}")
    if result.rows:
        _stderr(result.table())
    _stderr(f"{len(result.rows)} row(s) changed from {result.display(result.base_path)}")


# ---------------------------------------------------------------- verify / doctor


@app.command("verify")
@handle_errors
def verify_command(
    model: Path = typer.Argument(..., help="Model YAML (or a stock name like yolov8n.yaml)."),
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
    """Build the model in the checkout's own code: imports, layer table, GFLOPs, gradients, optional smoke training."""
    from .check.export import add_export_check, check_export_format
    from .check.verify import render_report, verify
    from .targets import detect_target

    check_export_format(export)
    target = detect_target(repo)
    report = verify(model, target, imgsz=imgsz, batch=batch, train=train, python=python, log=log, weights=weights)
    if export:
        add_export_check(report, target, imgsz=imgsz, log=log)
    if as_json:
        typer.echo(report.to_json())
    else:
        render_report(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("compare")
@handle_errors
def compare_command(
    models: list[Path] = typer.Argument(..., help="Model YAMLs (or stock names), the first is the baseline."),
    repo: Path = RepoOption,
    imgsz: int = typer.Option(640, "--imgsz", help="Image size of GFLOPs, latency and memory."),
    fmt: str = typer.Option("table", "--format", help="table, markdown, csv or json."),
    runs: int = typer.Option(10, "--runs", help="Timed batch-1 forwards per model (after 2 warm-up runs)."),
    python: str | None = typer.Option(None, "--python", help="Python to run the models in (your training venv)."),
):
    """Layers, parameters, GFLOPs, CPU latency and peak memory of each model, and the difference to the first."""
    from .check.compare import MEMORY_BATCH, check_output_format, compare, render
    from .targets import detect_target

    check_output_format(fmt)
    rows = compare(models, detect_target(repo), imgsz=imgsz, runs=runs, python=python, progress=_stderr)
    typer.echo(render(rows, fmt, imgsz=imgsz, batch=MEMORY_BATCH))
    if not all(row.ok for row in rows):
        raise typer.Exit(1)


@app.command("doctor")
@handle_errors
def doctor_command(
    repo: Path = RepoOption,
    python: str | None = typer.Option(None, "--python", help="Python to check (your training venv)."),
):
    """Check the checkout: what Python imports, applied modules and their files, missing requirements."""
    from .check.doctor import doctor, render_doctor
    from .targets import detect_target

    report = doctor(detect_target(repo), python=python)
    render_doctor(report)
    if not report.ok:
        raise typer.Exit(1)


@app.command("graph")
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
    from .check.draw import draw
    from .targets import detect_target

    drawn = draw(model, detect_target(repo), output or model.with_suffix(".svg"), base=base, python=python)
    _stderr(f"create   {drawn}")


@app.command("weights")
@handle_errors
def weights_command(
    model: Path = typer.Argument(..., help="Model YAML whose layers use the module(s)."),
    repo: Path = RepoOption,
    load: list[str] = typer.Option([], "--load", help="NAME=CHECKPOINT: module NAME's official checkpoint "
                                                      "(repeatable); every layer of NAME gets its weights."),
    base: Path | None = typer.Option(None, "--base", help="The base model's checkpoint (its trainer's .pt): every "
                                                          "layer the edit kept gets its trained weights."),
    output: Path = typer.Option(..., "-o", "--output", help="Checkpoint to write (train(pretrained=...) / "
                                                            "--weights start from it)."),
    spec: list[Path] = SpecOption,
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object with every layer's key report."),
    python: str | None = typer.Option(None, "--python", help="Python to build the model in (your training venv)."),
):
    """Load the base model's trained weights (--base) and the paper's official weights (--load) into the model's
    layers; exit 1 (writing nothing) unless every --load layer is filled, 2 when nothing of --base fits."""
    from .specs import SpecRegistry
    from .targets import detect_target
    from .weights.load import load_weights, parse_load, render_weights

    target, registry = detect_target(repo), SpecRegistry(spec)
    result = load_weights(model, target, [parse_load(text, registry) for text in load], output, base=base,
                          python=python)
    if as_json:
        typer.echo(result.to_json())
    else:
        render_weights(result, output)
    if not result.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------- adopt


@app.command("adopt")
@handle_errors
def adopt_command(
    source: str | None = typer.Argument(None, metavar="SOURCE[::CLASS]", show_default=False, help=(
        "The paper's module: a .py file, a file without extension or a folder. SOURCE::CLASS adopts CLASS; "
        "SOURCE alone lists every nn.Module class with what probing found and writes nothing.")),
    name: str | None = typer.Option(None, "--name", help="Spec name (default: the class's, or CLASSAdapted when "
                                                         "an adapter is needed)."),
    sets: list[str] = typer.Option([], "--set", help="KEY=VALUE: a constructor argument's value (repeatable)."),
    python: str | None = typer.Option(None, "--python", help="Python to probe the module in (your training venv)."),
    output: Path = typer.Option(Path("."), "-o", "--output", help="Folder for the spec and the module's code."),
):
    """Probe a paper's nn.Module in a subprocess and write the spec (and adapter) that `apply --spec` takes."""
    from .adopt.engine import adopt, split_source, survey

    if source is None:
        raise YamlforgeError("missing SOURCE: the module's file or folder", where="SOURCE",
                             hint="yamlforge adopt blocks.py  (lists its classes), then blocks.py::Block")
    path, class_name = split_source(source)
    if class_name is None:
        if name or sets:
            raise YamlforgeError("--name and --set need SOURCE::CLASS", where="--name" if name else "--set",
                                 hint=f"yamlforge adopt {source}::CLASS ...")
        _render_survey(survey(path, python))
        return
    result = adopt(path, class_name, name, sets, python, output)
    for written, status in result.statuses.items():
        _stderr(f"{status:<9} {written}")
    typer.echo(f"YAML row: {result.yaml_row}")
    typer.echo(f"next:     {result.apply_command}")


def _render_survey(reports) -> None:
    """One row per class: its name, file:line, and what probing found or why adopt refuses it."""
    from rich.console import Console
    from rich.table import Table

    from .adopt.engine import summary

    table = Table("class", "where", "probed", box=None, pad_edge=False)
    for report in reports:
        found = f"cannot adopt: {report.error}" if report.error else summary(report.decision)
        table.add_row(report.name, report.where, found)
    Console(soft_wrap=True).print(table)


# ---------------------------------------------------------------- demo

DEMO_VERSION = "8.4.190"
DEMO_STEPS = 4


@app.command()
@handle_errors
def demo(
    workdir: Path = typer.Option(Path("yamlforge-demo"), "--dir", help="Folder for the scratch checkout."),
    version: str = typer.Option(DEMO_VERSION, "--ultralytics", help="Ultralytics release the checkout is made from."),
    imgsz: int = typer.Option(640, "--imgsz", help="Image size for verify."),
    train: bool = typer.Option(False, "--train", help="Also run verify's 1-epoch smoke training."),
):
    """The SHViT recipe end to end: scratch checkout from PyPI, apply SHSA, gen-yaml rtdetr-l, verify."""
    import time

    from .check.verify import check_options
    from .scratch import make_checkout

    start = time.perf_counter()
    check_options(imgsz=imgsz)
    repo = workdir.resolve() / f"ultralytics-{version}"
    model = repo / "ultralytics/cfg/models/rt-detr/rtdetr-l-SHSA.yaml"
    _demo_step(1, f"scratch checkout of ultralytics=={version} (the PyPI wheel, unpacked) in {repo}")
    make_checkout("ultralytics", version, repo)
    try:
        _demo_apply_gen_verify(repo, model, imgsz=imgsz, train=train)
    finally:
        _stderr(f"\ncheckout: {repo}\nmodel:    {model}\nundo:     yamlforge revert --repo {repo}")
        _stderr(f"demo finished in {time.perf_counter() - start:.0f} s")


def _demo_step(n: int, text: str) -> None:
    typer.secho(f"\n[{n}/{DEMO_STEPS}] {text}", bold=True, err=True)


def _demo_apply_gen_verify(repo: Path, model: Path, *, imgsz: int, train: bool) -> None:
    """The demo's library calls, rendered as the commands they stand for would render them."""
    from .modelyaml.compile import GenRequest, compile_yaml, parse_edit, write_result
    from .patch.plan import plan_apply
    from .patch.writer import write_changeset
    from .specs import SpecRegistry
    from .targets import detect_target

    target, registry = detect_target(repo), SpecRegistry()
    _demo_step(2, f"yamlforge apply --repo {repo} --module SHSA  (its diff, then the files written)")
    plan = plan_apply(target, [registry.get("SHSA")], registry)
    _print_diff(_code_diff(plan))
    write_changeset(plan.changeset)
    _report(plan, verb="apply", dry_run=False, target=target)
    _demo_step(3, f"yamlforge gen-yaml rtdetr-l --insert-after 3=SHSA --repo {repo}")
    result = compile_yaml(GenRequest("rtdetr-l", [parse_edit("insert-after", "3=SHSA")], repo=repo, output=model))
    write_result(result)
    _report_yaml(result, dry_run=False)
    typer.echo(model.read_text())
    _demo_step(4, f"yamlforge verify {model} --repo {repo} --imgsz {imgsz}" + (" --train" if train else ""))
    _verify_written(model, target, imgsz=imgsz, train=train)


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
