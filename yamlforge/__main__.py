"""``python -m yamlforge``: the same as the ``yamlforge`` command."""

from .cli import main

main()
