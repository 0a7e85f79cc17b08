"""``ablate``: train a base model and its variants the same way and print the comparison table."""

from pathlib import Path
from typing import Annotated

import typer

from ..errors import YamlforgeError
from .common import handle_errors, stderr

ModuleOption = Annotated[list[str], typer.Option(
    "--module", help="A module to insert after each --at layer (an applied module, MODULE(args) too); repeat it "
                     "to compare several modules at the same places.")]
AtOption = Annotated[str | None, typer.Option(
    "--at", help="Layer numbers of BASE to insert after, one variant each: 4,6,9; 'auto': each backbone stage "
                 "output and each level the head reads, where gen-yaml accepts the module.")]
ResidualOption = Annotated[bool, typer.Option(
    "--residual", help="Insert the --module rows as x + MODULE(x) (apply ResidualWrap too).")]
VariantOption = Annotated[list[str], typer.Option(
    "--variant", help='A row of any gen-yaml edits, "NAME: EDITS": "c3: --replace 6=C3", '
                      '"res6: --insert-after 6=residual:SHSA". Repeatable.')]
VariantsFileOption = Annotated[Path | None, typer.Option(
    "--variants", help="A YAML file of rows: 'variants:' mapping each NAME to its gen-yaml edits.")]
BaseWeightsOption = Annotated[Path | None, typer.Option(
    "--base-weights", help="The base's trained checkpoint: every row starts from it, each variant from the "
                           "base's weights carried into it (yamlforge weights --base): a fine-tuning comparison.")
]
SetOption = Annotated[list[str] | None, typer.Option(
    "--set", help="KEY=VALUE: a trainer option of every trial (repeatable): nbs=8, lr0=0.01.")]
EngineOption = Annotated[str, typer.Option(
    "--engine", help="Where trials run: local (this machine) or ray (a Ray cluster; yamlforge's ray extra).")
]
DevicesOption = Annotated[str | None, typer.Option(
    "--devices", help="local: CUDA devices, one trial on each at once: 0,1.")]
AddressOption = Annotated[str | None, typer.Option(
    "--address", help="ray: the cluster (auto, HOST:PORT; default RAY_ADDRESS, else a local one).")]
GpusPerTrialOption = Annotated[float, typer.Option(
    "--gpus-per-trial", help="ray: GPUs of each trial, fractions allowed: 0.5.")]


@handle_errors
def ablate_command(
    base: str = typer.Argument(..., help="Model name (yolov8n) or model YAML; with --report, the study's DIR."),
    repo: Annotated[Path | None, typer.Option("--repo", help="Checkout root (default: the one holding BASE).")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="The dataset YAML (with a 'val' split).")] = None,
    module: ModuleOption = [],
    at: AtOption = None,
    residual: ResidualOption = False,
    variant: VariantOption = [],
    variants_file: VariantsFileOption = None,
    base_weights: BaseWeightsOption = None,
    epochs: Annotated[int, typer.Option("--epochs", help="Epochs of every trial.")] = 100,
    imgsz: Annotated[int, typer.Option("--imgsz", help="Training image size.")] = 640,
    batch: Annotated[int, typer.Option("--batch", help="Batch size.")] = 16,
    workers: Annotated[int | None, typer.Option("--workers", help="Dataloader workers.")] = None,
    seeds: Annotated[str, typer.Option("--seeds", help="Seeds, each a repeat of every row: 0,1,2.")] = "0",
    options: SetOption = None,
    output: Annotated[Path | None, typer.Option("-o", "--output", help="The study's folder (plan, trials).")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table, markdown, csv or json (rows as a list).")] = "table",
    report: Annotated[bool, typer.Option("--report", help="Print the table of the study in DIR only.")] = False,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Train failed trials again.")] = False,
    engine: EngineOption = "local",
    devices: DevicesOption = None,
    address: AddressOption = None,
    cpus_per_trial: Annotated[float, typer.Option("--cpus-per-trial", help="ray: CPUs of each trial.")] = 1.0,
    gpus_per_trial: GpusPerTrialOption = 0.0,
    python: Annotated[str | None, typer.Option("--python", help="Python to train in (your training venv).")] = None,
):
    """Train BASE and its variants (MODULE after each --at layer, --variant rows) on DATA the same way; compare them.

    The base is always the first row. Rerunning the command skips finished trials and resumes an interrupted one
    from its last checkpoint.
    """
    from ..check.compare import check_output_format
    from ..study.engine import Engine, run_study
    from ..study.plan import AUTO, Hyper, StudyRequest, parse_numbers, parse_options
    from ..study.report import render, study_rows
    from ..study.variants import parse_variant, read_variants_file

    check_output_format(fmt)
    if report:
        rows = study_rows(Path(base))
    else:
        missing = [name for name, value in (("--data", data), ("-o", output)) if value is None]
        if missing:
            raise YamlforgeError(f"{', '.join(missing)} missing: a study needs a dataset and a folder",
                                 where=missing[0], hint="or ablate DIR --report for a study's table")
        rows_asked = [parse_variant(text) for text in variant]
        rows_asked += read_variants_file(variants_file) if variants_file is not None else []
        request = StudyRequest(base, repo, data, tuple(module), at if at == AUTO else parse_numbers(at or "", "--at"),
                               output, parse_numbers(seeds, "--seeds"),
                               Hyper(epochs=epochs, imgsz=imgsz, batch=batch, workers=workers,
                                     options=parse_options(options or [])),
                               variants=tuple(rows_asked), residual=residual, base_weights=base_weights)
        where = Engine(engine, tuple(d.strip() for d in (devices or "").split(",") if d.strip()), address,
                       cpus_per_trial, gpus_per_trial)
        rows = run_study(request, engine=where, retry_failed=retry_failed, python=python, progress=stderr)
    typer.echo(render(rows, fmt))

