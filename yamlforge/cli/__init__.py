"""The ``yamlforge`` command line: each command parses options, calls one library function, renders the result.

One module per command family (``patching``: apply, revert; ``catalog``: list, show; ``gen_yaml``; ``checks``:
verify, compare, doctor, graph; ``weights``; ``adopt``; ``demo``; ``ablate``), the pieces they share in ``common``.
The app is built here, from the commands the modules define: no module registers itself.
"""

import typer

from . import ablate, adopt, catalog, checks, demo, gen_yaml, patching, weights

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Add a paper's module to your Ultralytics / YOLOv9 detector in one reviewed command.",
)
app.command()(patching.apply)
app.command()(patching.revert)
app.command("list")(catalog.list_modules)
app.command()(catalog.show)
app.command("gen-yaml")(gen_yaml.gen_yaml)
app.command("verify")(checks.verify_command)
app.command("compare")(checks.compare_command)
app.command("doctor")(checks.doctor_command)
app.command("graph")(checks.graph_command)
app.command("weights")(weights.weights_command)
app.command("adopt")(adopt.adopt_command)
app.command()(demo.demo)
app.command("ablate")(ablate.ablate_command)


def main() -> None:
    app()
