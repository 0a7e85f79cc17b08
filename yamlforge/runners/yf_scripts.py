"""Runs inside the target's Python: what a target that trains with its own scripts (YOLOv5, YOLOv7, YOLOv9) makes of
a model's head: its task, the script that trains it and the loss that script imports.

Those targets keep no task tables: the head says the task (``Segment`` -> segment) and the training script
(``segment/train.py``), as the facts' ``task_heads`` and ``train_scripts`` list them, and each script's loss is the
class it imports (``script_losses``: ``utils/segment/loss.py``'s ``ComputeLoss`` for YOLOv5's ``segment/train.py``).
"""

from __future__ import annotations

from pathlib import Path

if __package__:  # imported as yamlforge.runners.yf_scripts (the tests)
    from . import yf_facts, yf_tasks
else:  # a script in the target's Python: its own folder is sys.path[0]
    import yf_facts
    import yf_tasks

MASK_RATIO = 4  # the scripts' default --mask-ratio: their masks are a quarter of the image's side


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


def task_loss(facts: dict, model, x, hyp: dict):
    """The loss the model's training script imports (built with the hyperparameters ``hyp``), on a batch of its
    task's targets: ``(loss, what)``, or None when the facts name no loss for that script."""
    import torch

    script = yf_facts.by_head(facts["train_scripts"], model.yaml)
    spec = dict(facts["script_losses"]).get(script)
    if spec is None:
        return None
    head = model.model[-1]
    model.hyp, model.nc = hyp, head.nc  # what the script sets before building its loss
    criterion = yf_facts.load_callable(spec)(model)
    shapes = {"nc": head.nc, "kpt_shape": None, "mask_ratio": MASK_RATIO,
              "overlap_mask": bool(getattr(criterion, "overlap", False))}
    batch = yf_tasks.to_tensors(yf_tasks.task_batch(head_task(facts, model.yaml), x.shape[0], x.shape[-1], shapes))
    targets = torch.cat([batch["batch_idx"][:, None], batch["cls"], batch["bboxes"]], 1)  # the loaders' collate
    extra = [batch["masks"]] if "masks" in batch else []
    loss = criterion(model(x), targets, *extra)[0]
    return loss.sum(), f"{script}'s loss ({spec.rpartition(':')[0]}.{spec.rpartition(':')[2]})"
