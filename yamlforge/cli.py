"""The ``yamlforge`` command line: parses options, calls one library function, renders the result."""

from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import List, Optional

import typer

from .errors import YamlforgeError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Add a paper's module to your Ultralytics / YOLOv9 detector in one reviewed command.",
)


def _stderr(message: str) -> None:
    typer.echo(message, err=True)


def handle_errors(func):
    """Turn a YamlforgeError into ``error: ...`` / ``hint: ...`` on stderr and its exit code."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except YamlforgeError as exc:
            _stderr(f"error: {exc}")
            if exc.hint:
                _stderr(f"hint: {exc.hint}")
            raise typer.Exit(exc.exit_code) from None

    return wrapper


RepoOption = typer.Option(..., "--repo", help="Root of the Ultralytics or YOLOv9 checkout.")
SpecOption = typer.Option([], "--spec", help="Your own module spec YAML (repeatable).")


# ---------------------------------------------------------------- apply / revert / list / show


# ---------------------------------------------------------------- gen-yaml


# ---------------------------------------------------------------- verify / doctor


def main() -> None:
    app()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
