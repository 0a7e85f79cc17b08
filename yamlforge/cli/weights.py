"""``weights``: official checkpoints (--load) and the base model's (--base) loaded into a model's layers."""

from pathlib import Path

import typer

from .common import RepoOption, SpecOption, handle_errors


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
    from ..specs import SpecRegistry
    from ..targets import detect_target
    from ..weights.load import load_weights, parse_load, render_weights

    target, registry = detect_target(repo), SpecRegistry(spec)
    result = load_weights(model, target, [parse_load(text, registry) for text in load], output, base=base,
                          python=python)
    if as_json:
        typer.echo(result.to_json())
    else:
        render_weights(result, output)
    if not result.ok:
        raise typer.Exit(1)
