"""Runs inside the target's Python: what a target that trains with its own scripts (YOLOv5, YOLOv7, YOLOv9) makes of
a model's head: its task, the script that trains it and the loss that script imports.

Those targets keep no task tables: the head says the task (``Segment`` -> segment) and the training script
(``segment/train.py``), as the facts' ``task_heads`` and ``train_scripts`` list them, and each script's loss is the
class it imports (``script_losses``: ``utils/segment/loss.py``'s ``ComputeLoss`` for YOLOv5's ``segment/train.py``).
"""

from __future__ import annotations

import contextlib
import os
import runpy
import sys
import tempfile
import traceback
from pathlib import Path

if __package__:  # imported as yamlforge.runners.yf_scripts (the tests)
    from . import yf_facts, yf_tasks
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts
    import yf_tasks

MASK_RATIO = 4  # the scripts' default --mask-ratio: their masks are a quarter of the image's side
# What numpy removed (np.int, np.float in 1.24; np.trapz in 2.4) and YOLOv5/v7's training code still calls
NUMPY_ALIASES = (("int", int), ("float", float))


def head_task(facts: dict, cfg_dict: dict) -> str | None:
    """The task the model's head makes it (None: the target names no tasks)."""
    return yf_facts.by_head(facts["task_heads"], cfg_dict) if facts["task_heads"] else None


def describe(facts: dict, cfg_dict: dict, model) -> dict | None:
    """The task, model and training script, in the shape :func:`yf_tasks.describe` reports a wrapper's choice."""
    task = head_task(facts, cfg_dict)
    if task is None:
        return None
    return {"task": task, "model_class": facts["model_class"].rpartition(":")[2], "model": type(model).__name__,
            "trainer": yf_facts.by_head(facts["train_scripts"], cfg_dict), "validator": None, "data": None,
            "metric": None, "tasks": list(dict.fromkeys(task for _, task in facts["task_heads"]))}


def missing_script(facts: dict, cfg_dict: dict, script: str) -> str | None:
    """When the checkout lacks the script the head asks for (yolov9pip ships no ``segment/``): one line naming the
    training scripts it ships."""
    root = Path(facts["root"])
    if (root / script).is_file():
        return None
    shipped = sorted({path for _, path in facts["train_scripts"] if (root / path).is_file()})
    task = head_task(facts, cfg_dict)
    release = " ".join(str(part) for part in (facts["kind"], facts["version"]) if part)
    return (f"the {release} checkout ships no {script}, the script for {task or 'this'} models; its training scripts: "
            f"{', '.join(shipped) or 'none'}")


def targets_loss(spec: str, model, x, shapes: dict, task: str):
    """``Loss(model)(outputs, targets[, masks])``: the box losses (``ComputeLoss``), with the targets in the loaders'
    collate layout (image index, class, normalised xywh) and instance masks where the task has them."""
    import torch

    criterion = yf_facts.load_callable(spec)(model)
    shapes = dict(shapes, overlap_mask=bool(getattr(criterion, "overlap", False)))  # the layout it was built for
    batch = yf_tasks.to_tensors(yf_tasks.task_batch(task, x.shape[0], x.shape[-1], shapes))
    targets = torch.cat([batch["batch_idx"][:, None], batch["cls"], batch["bboxes"]], 1)
    extra = [batch["masks"]] if "masks" in batch else []
    return criterion(model(x), targets, *extra)[0]


def labels_loss(spec: str, model, x, shapes: dict, task: str):
    """``Loss()(outputs, labels)``: classification's cross-entropy on one class index per image."""
    batch = yf_tasks.to_tensors(yf_tasks.task_batch(task, x.shape[0], x.shape[-1], shapes))
    return yf_facts.load_callable(spec)()(model(x), batch["cls"])


# How each task's script calls its loss, keyed by the targets' task names; the others: targets_loss
LOSS_CALLS = {"classify": labels_loss}


def task_loss(facts: dict, model, x, hyp: dict):
    """The loss the model's training script imports (built with the hyperparameters ``hyp``), on a batch of its
    task's targets: ``(loss, what)``, or None when the facts name no loss for that script."""
    cfg_dict = getattr(model, "yaml", None)
    if not isinstance(cfg_dict, dict):  # a model built from no YAML has no head row to read
        return None
    script = yf_facts.by_head(facts["train_scripts"], cfg_dict)
    spec = dict(facts["script_losses"]).get(script)
    if spec is None:
        return None
    head, task = model.model[-1], head_task(facts, cfg_dict)
    nc = getattr(head, "nc", None) or cfg_dict["nc"]
    model.hyp, model.nc = hyp, nc  # what the script sets before building its loss
    shapes = {"nc": nc, "kpt_shape": None, "mask_ratio": MASK_RATIO, "overlap_mask": False}
    loss = LOSS_CALLS.get(task, targets_loss)(spec, model, x, shapes, task)
    return loss.sum(), f"{script}'s loss ({spec.replace(':', '.')})"


def start_checkpoint(facts: dict, script: str, cfg: str, path: Path) -> Path | None:
    """For a script that trains from a checkpoint (``--model``, YOLOv5's classify/train.py) rather than a YAML: the
    YAML's layers in the model class it trains (``script_models``), saved as its checkpoints are; None for others.
    YOLOv5's ClassificationModel() is the empty shell its own conversion of a detection model fills the same way."""
    spec = dict(facts["script_models"]).get(script)
    if spec is None:
        return None
    import torch

    built = yf_facts.load_callable(facts["model_class"])(cfg, ch=3)
    model = yf_facts.load_callable(spec)()
    model.model, model.save, model.nc, model.yaml = built.model, built.save, built.yaml["nc"], built.yaml
    torch.save({"model": model, "epoch": -1}, path)
    return path


def run_script(facts: dict, script: Path, args: list[str], *, capture: bool = False) -> tuple[str | None, str]:
    """``python SCRIPT ARGS`` in this process: the checkout's own script run as ``__main__`` (its folder first on
    ``sys.path``, ``sys.argv`` its arguments), where the runner has already imported torch and the checkout's modules:
    a second interpreter would import them all again, half of a smoke training's time. Returns (why it failed, in one
    line, or None; what it printed when ``capture``, else it prints to this process's stderr)."""
    if facts["legacy_numpy"]:  # the training code calls names numpy removed: put them back
        import numpy

        for name, value in NUMPY_ALIASES:
            setattr(numpy, name, getattr(numpy, name, value))
        numpy.trapz = getattr(numpy, "trapz", None) or numpy.trapezoid
    saved = sys.argv, list(sys.path), os.getcwd()
    sys.argv, sys.path[:0] = [str(script), *args], [str(script.parent)]
    with captured_output() if capture else contextlib.nullcontext([""]) as printed:
        try:
            runpy.run_path(str(script), run_name="__main__")
            reason = None
        except SystemExit as exc:  # argparse, or the script's own exit
            reason = f"{script.name} exited with {exc.code}" if exc.code not in (None, 0) else None
        except Exception as exc:  # the script's crash, printed as the interpreter would
            traceback.print_exc()
            reason = yf_facts.one_line(exc)
        finally:
            sys.argv, sys.path[:] = saved[0], saved[1]
            os.chdir(saved[2])
    return reason, printed[0]


@contextlib.contextmanager
def captured_output():
    """Everything written to file descriptors 1 and 2 while inside (Python's streams, the targets' loggers, C code)
    into a temporary file; the list it yields holds that text once outside."""
    printed: list[str] = []
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 1)
        os.dup2(sink.fileno(), 2)
        try:
            yield printed
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            for fd, kept in zip((1, 2), saved):
                os.dup2(kept, fd)
                os.close(kept)
            sink.seek(0)
            printed.append(sink.read().decode(errors="replace"))
