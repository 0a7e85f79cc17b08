"""Runs inside the target's Python: which import names and pip requirements it lacks, importing none of them.

``yamlforge.adopt.source`` runs it as ``python requirements_runner.py --imports '["einops", ...]'`` (what a paper's
module imports) and reads one JSON object from its last stdout line: ``{"missing_imports": [...], "missing": [...]}``.
``--requires`` checks pip requirements with versions the way verify does (:func:`yf_traps.missing_requirements`).
Like its siblings, this file imports nothing from yamlforge.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import sys

if __package__:  # imported as yamlforge.runners.requirements_runner (the tests)
    from . import yf_traps
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_traps


def missing_import(name: str) -> bool:
    """True when ``import name`` would fail to find the module (find_spec imports nothing)."""
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):
        return True


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--imports", default="[]", help="JSON list of top-level import names")
    parser.add_argument("--requires", default="[]", help="JSON list of pip requirements (name and specifier)")
    args = parser.parse_args(argv)
    answer = {"missing_imports": [name for name in json.loads(args.imports) if missing_import(name)],
              "missing": yf_traps.missing_requirements(json.loads(args.requires))}
    sys.stdout.write("\n" + json.dumps(answer) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
