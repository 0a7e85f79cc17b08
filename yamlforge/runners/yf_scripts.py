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

# Hyperparameters for trainer "script": a superset of the keys the YOLOv5-style scripts and their losses read.
SCRIPT_HYP = {
    "lr0": 0.01, "lrf": 0.01, "momentum": 0.937, "weight_decay": 0.0005, "warmup_epochs": 0.0,
    "warmup_momentum": 0.8, "warmup_bias_lr": 0.1, "box": 7.5, "cls": 0.5, "cls_pw": 1.0, "obj": 0.7,
    "obj_pw": 1.0, "dfl": 1.5, "iou_t": 0.2, "anchor_t": 5.0, "fl_gamma": 0.0, "hsv_h": 0.015, "hsv_s": 0.7,
    "hsv_v": 0.4, "degrees": 0.0, "translate": 0.1, "scale": 0.5, "shear": 0.0, "perspective": 0.0,
    "flipud": 0.0, "fliplr": 0.5, "mosaic": 1.0, "mixup": 0.0, "copy_paste": 0.0,
}
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


def hyperparameters(facts: dict) -> dict:
    """What the scripts pass as ``--hyp`` (the target's own file where the facts name one) and set as ``model.hyp``."""
    if facts["train_hyp"]:
        import yaml

        return yaml.safe_load(Path(facts["train_hyp"]).read_text(encoding="utf-8"))
    return dict(SCRIPT_HYP)


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


def task_loss(facts: dict, model, x):
    """The loss the model's training script imports, on a batch of its task's targets: ``(loss, what)``, or None
    when the facts name no loss for that script."""
    import torch

    script = yf_facts.by_head(facts["train_scripts"], model.yaml)
    spec = dict(facts["script_losses"]).get(script)
    if spec is None:
        return None
    head = model.model[-1]
    model.hyp, model.nc = hyperparameters(facts), head.nc  # what the script sets before building its loss
    criterion = yf_facts.load_callable(spec)(model)
    shapes = {"nc": head.nc, "kpt_shape": None, "mask_ratio": MASK_RATIO,
              "overlap_mask": bool(getattr(criterion, "overlap", False))}
    batch = yf_tasks.to_tensors(yf_tasks.task_batch(head_task(facts, model.yaml), x.shape[0], x.shape[-1], shapes))
    targets = torch.cat([batch["batch_idx"][:, None], batch["cls"], batch["bboxes"]], 1)  # the loaders' collate
    extra = [batch["masks"]] if "masks" in batch else []
    loss = criterion(model(x), targets, *extra)[0]
    return loss.sum(), f"{script}'s loss ({spec.rpartition(':')[0]}.{spec.rpartition(':')[2]})"
