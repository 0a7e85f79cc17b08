"""Running the CLI in-process in tests."""

from __future__ import annotations

from typer.testing import CliRunner

from yamlforge.cli import app

runner = CliRunner()


def invoke(*args) -> str:
    """``yamlforge ARGS`` (any value str()-ed) that must succeed; its output."""
    result = runner.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"yamlforge {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}"
    return result.output
