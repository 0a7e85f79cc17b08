"""Runs inside the target's Python: imports the checkout, builds/profiles/trains a model YAML, prints one JSON object.

Standalone on purpose: the target interpreter (``--python``) may not have yamlforge, so this file imports
nothing from it, only its sibling ``yf_*.py`` modules (facts and report, build, checks, training, environment traps),
which the other runners import too. ``yamlforge.check.verify`` runs it as
``python verify_runner.py --mode verify --target FACTS ...`` with the working directory in a temporary folder, and
reads the single JSON object it prints on stdout.
Everything the targets print while building or training goes to stderr instead (stdout's file descriptor is
redirected).

``FACTS`` is the JSON of ``yamlforge.targets.Target.runner_facts``: the checkout's root, version, package and
how its own code loads, builds, measures and trains a model. This file knows no target by name: it dispatches
on those facts' values (:data:`LOOKUPS`, :data:`BUILDERS`, :data:`LOSSES`, :data:`TRAINERS`) and refuses, in
one line, facts it does not understand.

``YAMLFORGE_VERIFY_PATH=append`` puts the checkout *last* on ``sys.path`` instead of first. It exists so the
tests can reproduce a checkout shadowed by a pip-installed copy of the same package with the real detection
logic; users never need it.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

if __package__:  # imported as yamlforge.runners.verify_runner (the tests)
    from . import yf_build, yf_checks, yf_facts, yf_tasks, yf_train, yf_traps
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_build
    import yf_checks
    import yf_facts
    import yf_tasks
    import yf_train
    import yf_traps


def read_facts(text: str) -> dict:
    """The ``--target`` JSON, checked: right schema, every key present, every strategy one this file has."""
    try:
        facts = json.loads(text)
    except ValueError as exc:
        raise yf_facts.FactsError(f"--target is not JSON ({exc})") from None
    schema = facts.get("schema") if isinstance(facts, dict) else None
    if schema != yf_facts.FACTS_SCHEMA:
        raise yf_facts.FactsError(f"--target has schema {schema!r}; this runner reads {yf_facts.FACTS_SCHEMA}")
    missing = sorted(yf_facts.FACT_KEYS - set(facts))
    if missing:
        raise yf_facts.FactsError(f"--target lacks {', '.join(missing)}")
    strategies = {"name_lookup": yf_build.LOOKUPS, "build": yf_build.BUILDERS, "loss": yf_checks.LOSSES,
                  "trainer": yf_train.TRAINERS}
    for key, known in strategies.items():
        if facts[key] not in known:
            raise yf_facts.FactsError(
                f"--target {key} {facts[key]!r} is not one this runner knows ({', '.join(known)})")
    return facts


def mode_verify(args, facts: dict) -> dict:
    """The report of ``--yaml``; of several (``--yaml A B ...``): each verified in a folder of its own in this one
    process (torch, the checkout and the trainer are imported once), ``{"reports": [...]}`` in their order."""
    if len(args.yamls) < 2:
        return verify_model(args, facts, args.yaml)
    here, reports = Path.cwd(), []
    for number, yaml in enumerate(args.yamls):
        folder = here / f"model-{number}"
        folder.mkdir()
        os.chdir(folder)
        try:
            reports.append(verify_model(args, facts, yaml))
        finally:
            os.chdir(here)
    return {"schema": yf_facts.VERIFY_SCHEMA, "reports": reports}


def verify_model(args, facts: dict, yaml: str) -> dict:
    """Import, build, forward, GFLOPs and backward of ``yaml`` (with ``--train`` the smoke training and reloads), in
    the working directory."""
    root = Path(facts["root"]).resolve()
    report = yf_facts.Report(target={"kind": facts["kind"], "version": facts["version"], "root": str(root)},
                             yaml=yaml, imgsz=args.imgsz, batch=args.batch, python=sys.executable, imported=None,
                             gradients=None, train=None, settings=None)
    yf_facts.put_checkout_on_path(facts["path_entry"])
    if not yf_facts.import_torch(report):
        return report.data
    imports = yf_facts.check_import(report, facts, root)
    for trap in yf_traps.environment_traps(facts, root, thop=False) if imports else ():  # thop: check_flops's
        report.note(f"{trap['message']}; fix: {trap['fix']}")
    imported = report.data["imported"] is not None
    model, cfg_dict = yf_build.build(report, facts, yaml, root) if imported else (None, None)
    if model is not None and yf_checks.check_forward(report, model, args.imgsz, args.batch):
        yf_checks.check_flops(report, facts, model, args.imgsz)
        yf_checks.check_backward(report, facts, model, args.imgsz, args.batch)
    encoder = yf_tasks.text_encoder(model) if model is not None else None
    if encoder:  # the checks ran on the embeddings the model stores: say what that leaves out
        report.data["text_encoder"] = encoder
        report.note(yf_tasks.open_vocabulary_note(model, encoder, (report.data.get("task") or {}).get("trainer")))
    if args.train:
        yf_train.check_train(report, facts, yaml, cfg_dict, args.imgsz, args.batch, args.pretrained)
    report.data["settings"] = yf_facts.settings_state(facts, report.data.get("settings"))
    report.data["ok"] = not report.failed()
    return report.data


def mode_reload(args, facts: dict) -> dict:
    """For verify's restricted reload (its flag set in this fresh process): the checkpoint loaded and run forward."""
    yf_facts.put_checkout_on_path(facts["path_entry"])
    try:
        return {"output": yf_train.forward_with_wrapper(facts["package"], args.wrapper, Path(args.weights),
                                                        args.imgsz)}
    except Exception as exc:
        return {"error": yf_facts.one_line(exc)}


def mode_environment(args, facts: dict) -> dict:
    """For doctor: the package this Python imports for the checkout, its environment traps, missing requirements."""
    root = Path(facts["root"]).resolve()
    yf_facts.put_checkout_on_path(facts["path_entry"])
    answer: dict = {"python": sys.executable, "imported": None, "import_error": None, "missing": []}
    try:
        answer["imported"] = yf_facts.imported_package(facts["package"], root)
    except Exception as exc:
        answer["import_error"] = yf_facts.one_line(exc)
        answer["import_fix"] = yf_facts.hint_for(exc, facts["package"])
    if answer["imported"] and answer["imported"]["inside_checkout"]:
        answer["traps"] = yf_traps.environment_traps(facts, root)
    answer["missing"] = yf_traps.missing_requirements(args.requires)
    return answer


MODES = {"verify": mode_verify, "reload": mode_reload, "environment": mode_environment}


def parse_args(argv, modes=MODES):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=tuple(modes), default=next(iter(modes)))
    parser.add_argument("--target", required=True, help="the facts JSON of yamlforge's Target.runner_facts")
    parser.add_argument("--yaml", nargs="+", default=[], help="the model YAML (verify: one or more)")
    parser.add_argument("--imgsz", type=int, default=640)
    parser.add_argument("--batch", type=int, default=2)
    parser.add_argument("--train", action="store_true")
    parser.add_argument("--weights")
    parser.add_argument("--pretrained", help="with --train: the checkpoint the smoke training starts from")
    parser.add_argument("--wrapper", default="YOLO")
    parser.add_argument("--requires", nargs="*", default=[])
    args = parser.parse_args(argv)
    args.yamls, args.yaml = args.yaml, (args.yaml or [None])[0]  # every mode but verify reads one
    return args


def serve(target: str, compute, schema: str) -> int:
    """Every facts-driven runner's main: ``compute(facts)`` printed as the one JSON answer; ``--target`` facts this
    file does not understand are that answer's ``error`` (and one line on stderr), with exit status 2."""
    try:
        facts = read_facts(target)
    except yf_facts.FactsError as exc:  # yamlforge and this file disagree: one line, the same as the JSON answer
        print(f"{Path(sys.argv[0]).stem}: {exc}", file=sys.stderr)
        print(json.dumps({"schema": schema, "error": str(exc)}), flush=True)
        return 2
    yf_facts.print_one_json(lambda: compute(facts), schema)
    return 0


def main(argv=None, modes=MODES) -> int:
    """``modes``: the ``--mode`` values this run offers (verify's own, or those of a runner built on it)."""
    args = parse_args(sys.argv[1:] if argv is None else argv, modes)
    return serve(args.target, lambda facts: modes[args.mode](args, facts), yf_facts.VERIFY_SCHEMA)


if __name__ == "__main__":
    sys.exit(main())
