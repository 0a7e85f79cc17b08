"""``list`` and ``show``: the bundled modules (and the timm models usable as backbones)."""

import json
from pathlib import Path
from typing import Annotated

import typer

from .common import SpecOption, handle_errors


@handle_errors
def list_modules(
    spec: list[Path] = SpecOption,
    as_json: bool = typer.Option(False, "--json", help="Print a JSON list instead of a table."),
    timm: str | None = typer.Option(None, "--timm", help="List the timm models matching PATTERN ('*': all) with "
                                                         "their stage widths and strides, and the heads they fit."),
    python: str | None = typer.Option(None, "--python", help="Python whose timm to list (your training venv)."),
):
    """List the bundled modules (and your --spec ones), or with --timm the timm models usable as backbones."""
    from ..catalog import spec_rows
    from ..specs import SpecRegistry

    if timm is not None:
        _list_timm(timm, python, as_json)
        return
    rows = spec_rows(SpecRegistry(spec))
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    from rich.table import Table

    table = Table("name", "role", "channels", "stride", "exports", "summary", box=None, pad_edge=False)
    for row in rows:
        table.add_row(row["name"], row["role"], row["channels"], ",".join(map(str, row["stride"])),
                      ", ".join(row["exports"]), row["summary"])
    _print_fitted(table, give_way=("summary", "stride", "role", "channels"))


def _list_timm(pattern: str, python: str | None, as_json: bool) -> None:
    """``list --timm PATTERN``: a row per timm model, widest fit first; models without features listed last."""
    from rich.table import Table

    from ..modelyaml.timm import survey_timm

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
    _print_fitted(table, give_way=("strides",))  # a model without features has its error there, the one long value


def _print_fitted(table, *, give_way: tuple[str, ...]) -> None:
    from rich.console import Console

    from ..tables import fit_table

    console = Console(soft_wrap=True)
    console.print(fit_table(table, console.width, give_way=give_way))


@handle_errors
def show(
    name: str = typer.Argument(..., help="Module name (or one of its exports)."),
    spec: list[Path] = SpecOption,
    fuse: Annotated[list[str], typer.Option(
        "--fuse", help="Print the generated <HOST>_<NAME> class instead (repeatable, or 'all'); nothing is "
                       "written.")] = [],
    fuse_at: Annotated[str | None, typer.Option("--fuse-at", help="inner (default) or output.")] = None,
    repo: Annotated[Path | None, typer.Option(
        "--repo", help="Checkout whose host classes --fuse subclasses (default: Ultralytics 8.4.190).")] = None,
):
    """Show a module's spec, arguments, the YAML line to use it and the parse_model branch it adds."""
    from ..catalog import describe
    from ..specs import SpecRegistry

    module = SpecRegistry(spec).get(name, option="NAME")
    if not fuse:
        typer.echo(describe(module), nl=False)
        return
    from ..patch.fusion import preview_fusions
    from ..targets import detect_target

    for fusion, code in preview_fusions(module, fuse, fuse_at, detect_target(repo) if repo else None):
        typer.echo(f"# {fusion.file_stem}.py: YAML rows use it as `[-1, n, {fusion.name}, [<{fusion.host} args>]]`")
        typer.echo(code)
