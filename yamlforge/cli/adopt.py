"""``adopt``: a paper's nn.Module becomes the spec (and adapter) that ``apply --spec`` takes."""

from pathlib import Path

import typer

from ..errors import YamlforgeError
from .common import handle_errors, stderr


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
    repo: Path | None = typer.Option(None, "--repo", help=(
        "The checkout the spec is for: the default name avoids its files and layers (without it, one-word class "
        "names get the source's name as a prefix).")),
):
    """Probe a paper's nn.Module in a subprocess and write the spec (and adapter) that `apply --spec` takes."""
    from ..adopt.engine import adopt, split_source, survey

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
    result = adopt(path, class_name, name, sets, python, output, repo=repo)
    if result.renamed:
        stderr(f"named     {result.name}, not {class_name}: {result.renamed}")
    for written, status in result.statuses.items():
        stderr(f"{status:<9} {written}")
    for note in result.notes:
        stderr(f"note: {note}")
    typer.echo(f"YAML row: {result.yaml_row}")
    typer.echo(f"next:     {result.apply_command}")


def _render_survey(reports) -> None:
    """One row per class: its name, file:line, and what probing found or why adopt refuses it."""
    from rich.console import Console
    from rich.table import Table

    from ..adopt.engine import summary
    from ..tables import fit_table

    table = Table("class", "where", "probed", box=None, pad_edge=False)
    for report in reports:
        found = f"cannot adopt: {report.error}" if report.error else summary(report.decision)
        table.add_row(report.name, report.where, found)
    console = Console(soft_wrap=True)
    console.print(fit_table(table, console.width, give_way=("probed",), wrap=True))
