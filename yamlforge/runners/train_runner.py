"""Runs inside the target's Python: one trial of a study, the target's own trainer on the user's dataset.

``yamlforge.study.trial`` runs it as ``python train_runner.py --target FACTS --yaml MODEL --data DATA.yaml
--save-dir FOLDER ...`` with the trial's folder as working directory. The trainer writes everything a study reports
(``results.csv``, ``weights/last.pt``, ``weights/best.pt``) into ``--save-dir``; the one JSON answer only says whether
it finished (``failed``: the trainer's own exception in one line). With ``--resume`` and a ``weights/last.pt`` there,
the trainer continues from that checkpoint with its own resume (``resume=True``, train.py's ``--resume last.pt``), the
hyperparameters it recorded;
a checkpoint that does not load (the trainer was killed writing it) is a fresh start (``restarted``: why).
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import shutil
import sys
from pathlib import Path

if __package__:  # imported as yamlforge.runners.train_runner (the tests)
    from . import verify_runner, yf_build, yf_facts, yf_scripts, yf_train
else:  # a script in the target's Python: its own folder is sys.path[0]
    import verify_runner
    import yf_build
    import yf_facts
    import yf_scripts
    import yf_train

SCHEMA = "yamlforge.train/1"


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", required=True, help="the facts JSON of yamlforge's Target.runner_facts")
    parser.add_argument("--yaml", required=True, help="the model YAML the trial trains")
    parser.add_argument("--data", required=True, help="the dataset YAML")
    parser.add_argument("--save-dir", required=True, help="the trainer's output folder (project/name)")
    parser.add_argument("--epochs", type=int, required=True)
    parser.add_argument("--imgsz", type=int, required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--workers", type=int)
    parser.add_argument("--deterministic", action="store_true")
    parser.add_argument("--options", default="{}", help="JSON: more trainer options (train.py: hyperparameters)")
    parser.add_argument("--resume", action="store_true", help="continue from SAVE_DIR/weights/last.pt if it exists")
    parser.add_argument("--pretrained", help="a checkpoint of this model to start from (the wrapper's .load())")
    return parser.parse_args(argv)


def train(args, facts: dict) -> dict:
    """The target's own trainer (the wrapper's ``.train()``, or its train.py chosen by the head) on the dataset."""
    yf_facts.put_checkout_on_path(facts["path_entry"])
    if yf_train.needs_legacy_load(facts):
        os.environ[yf_facts.LEGACY_LOAD_ENV] = "1"
    yf_train.provide_fonts()
    save_dir = Path(args.save_dir).resolve()
    last = save_dir / "weights" / "last.pt"
    restarted = unloadable(last) if args.resume and last.is_file() else None
    if restarted:  # killed while the trainer wrote it: what it had is lost, the trial starts over
        shutil.rmtree(save_dir)
    resumed = bool(args.resume and last.is_file())
    try:
        failed = TRAINERS[facts["trainer"]](args, facts, save_dir, resumed)
    except Exception as exc:  # the trainer's own failure (out of memory, a crash in the model): the trial's reason
        failed = yf_facts.one_line(exc)
    if failed:
        return {"schema": SCHEMA, "failed": failed, "resumed": resumed, "restarted": restarted}
    return {"schema": SCHEMA, "save_dir": str(save_dir), "resumed": resumed, "restarted": restarted}


def train_with_wrapper(args, facts: dict, save_dir: Path, resumed: bool) -> None:
    """The wrapper's own ``.train()`` (the class verify's smoke training picks by the model's head); with
    ``resumed``, its ``resume=True`` from ``last.pt``. Its exceptions are the trial's reason."""
    wrapper = getattr(importlib.import_module(facts["package"]),
                      yf_facts.by_head(facts["wrappers"], yf_build.load_yaml_dict(facts, args.yaml)))
    options = {"workers": args.workers} if args.workers is not None else {}
    if resumed:
        wrapper(str(save_dir / "weights" / "last.pt")).train(resume=True, **options)
        return None
    model = wrapper(args.yaml)
    if args.pretrained:
        model.load(args.pretrained)
    model.train(data=args.data, epochs=args.epochs, imgsz=args.imgsz, batch=args.batch, seed=args.seed,
                deterministic=args.deterministic, project=str(save_dir.parent), name=save_dir.name,
                exist_ok=True, verbose=False, **options, **json.loads(args.options))
    return None


def train_with_script(args, facts: dict, save_dir: Path, resumed: bool) -> str | None:
    """The checkout's train.py chosen by the head (``segment/train.py`` for a Segment head), run in this process with
    its output on stderr (:func:`yf_scripts.run_script`); with ``resumed``, its own ``--resume last.pt``. Returns why
    it failed in one line."""
    script = Path(facts["root"]) / yf_facts.by_head(facts["train_scripts"], yf_build.load_yaml_dict(facts, args.yaml))
    if resumed:
        options = ["--resume", str(save_dir / "weights" / "last.pt")]
    else:
        options = ["--cfg", str(Path(args.yaml).resolve()), "--data", args.data,
                   "--hyp", str(script_hyp(facts, json.loads(args.options))), "--weights", args.pretrained or "",
                   "--epochs", str(args.epochs), "--batch-size", str(args.batch), "--img", str(args.imgsz),
                   "--seed", str(args.seed), "--project", str(save_dir.parent), "--name", save_dir.name,
                   "--exist-ok", *facts["train_flags"]]
        options += ["--workers", str(args.workers)] if args.workers is not None else []
    return yf_scripts.run_script(facts, script, options)[0]


def script_hyp(facts: dict, options: dict) -> Path:
    """The hyperparameter file a train.py trial reads, in the trial's folder: the target's own (YOLOv7's from
    yamlforge), else the script's default ``data/hyps/hyp.scratch-low.yaml``, else verify's superset; ``options``
    replace its values. A key the file lacks is refused: the script would not read it."""
    import yaml

    default = Path(facts["root"]) / "data" / "hyps" / "hyp.scratch-low.yaml"
    source = facts["train_hyp"] or (str(default) if default.is_file() else None)
    hyp = yaml.safe_load(Path(source).read_text(encoding="utf-8")) if source else dict(yf_train.SCRIPT_HYP)
    unknown = sorted(set(options) - set(hyp))
    if unknown:
        raise ValueError(f"the train.py hyperparameters have no {', '.join(unknown)} (they have {', '.join(hyp)})")
    path = Path.cwd() / "hyp.yaml"
    path.write_text(yaml.safe_dump({**hyp, **options}, sort_keys=False), encoding="utf-8")
    return path


TRAINERS = {"wrapper": train_with_wrapper, "script": train_with_script}


def unloadable(checkpoint: Path) -> str | None:
    """Why ``checkpoint`` cannot be resumed from (a write cut short by a kill), or None when torch loads it."""
    import torch

    try:
        torch.load(checkpoint, map_location="cpu", weights_only=False)
    except Exception as exc:
        return f"{checkpoint.name} did not load ({yf_facts.one_line(exc)})"
    return None


def main(argv=None) -> int:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    return verify_runner.serve(args.target, lambda facts: train(args, facts), SCHEMA)


if __name__ == "__main__":
    sys.exit(main())
