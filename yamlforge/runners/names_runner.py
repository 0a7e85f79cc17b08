"""Runs inside the target's Python: which model YAML and scale the target's own ``yaml_model_load`` reads for a name.

``yamlforge.modelyaml.base`` runs it (``python names_runner.py --name myolo-n --target FACTS``) only for a name its
own reading of the checkout's rules cannot resolve while the checkout's ``yaml_model_load`` / ``guess_model_scale``
hold rules beyond those (a fork's own names). The target's loader runs on ``NAME.yaml`` as ``yolo train
model=NAME.yaml`` would; the file it reads is the last one its ``check_yaml`` found, the scale is the ``scale`` it
sets. The answer is one JSON line: ``{"file": ..., "scale": ...}`` or ``{"missing": "why"}``.
"""

from __future__ import annotations

import argparse
import importlib
import sys

if __package__:  # imported as yamlforge.runners.names_runner (the tests)
    from . import verify_runner, yf_facts
else:  # a script in the target's Python: its own folder is sys.path[0]
    import verify_runner
    import yf_facts

SCHEMA = "yamlforge.names/1"


def resolve(facts: dict, name: str) -> dict:
    """The file and scale the target's ``yaml_loader`` reads for ``name`` (a stem or a file name)."""
    yf_facts.put_checkout_on_path(facts["path_entry"])
    if not facts["yaml_loader"]:
        return {"schema": SCHEMA, "missing": f"{facts['kind']} resolves no model names"}
    module_name, _, function = facts["yaml_loader"].partition(":")
    module = importlib.import_module(module_name)
    found: list[str] = []
    original = getattr(module, "check_yaml", None)
    if original is not None:
        def recording(*args, **kwargs):
            result = original(*args, **kwargs)
            if result:
                found.append(str(result))
            return result

        module.check_yaml = recording
    file_name = name if name.endswith((".yaml", ".yml")) else f"{name}.yaml"
    try:
        loaded = getattr(module, function)(file_name)
    except Exception as exc:  # the target does not resolve the name either
        return {"schema": SCHEMA, "missing": yf_facts.one_line(exc)}
    finally:
        if original is not None:
            module.check_yaml = original
    if not found:
        return {"schema": SCHEMA, "missing": f"{facts['yaml_loader']} read no file through check_yaml"}
    return {"schema": SCHEMA, "file": found[-1], "scale": (loaded or {}).get("scale") or None}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="the facts JSON of yamlforge's Target.runner_facts")
    parser.add_argument("--name", required=True)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    return verify_runner.serve(args.target, lambda facts: resolve(facts, args.name), SCHEMA)


if __name__ == "__main__":
    sys.exit(main())
