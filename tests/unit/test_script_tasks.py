"""The task, training script and loss of the targets that train with their own scripts, read from the head."""

from __future__ import annotations

import pytest

from yamlforge.runners import yf_facts, yf_scripts
from yamlforge.scratch import YOLOV5_RELEASE, YOLOV7_RELEASE, pristine_checkout
from yamlforge.targets import YOLOV9, detect_target


def head(module: str) -> dict:
    return {"head": [[[15, 18, 21], 1, module, ["nc"]]]}


@pytest.mark.parametrize(("module", "task", "script"), [
    ("Segment", "segment", "segment/train.py"), ("DSegment", "segment", "segment/train.py"),
    ("DualDSegment", "segment", "segment/train_dual.py"), ("Panoptic", "panoptic", "panoptic/train.py"),
    ("DualDDetect", "detect", "train_dual.py"),
    ("DDetect", "detect", "train.py"),
])
def test_yolov9_head_picks_task_and_script(module, task, script):
    facts = {"task_heads": YOLOV9.runtime.task_heads, "train_scripts": YOLOV9.runtime.train_scripts}
    assert (yf_scripts.head_task(facts, head(module)), yf_facts.by_head(facts["train_scripts"], head(module))) == \
        (task, script)


def test_yolov5_wheel_names_its_task_losses_and_models_as_its_code_imports_them():
    facts = detect_target(pristine_checkout("yolov5", YOLOV5_RELEASE)).runner_facts()
    assert yf_scripts.head_task(facts, head("Segment")) == "segment"
    assert yf_scripts.head_task(facts, head("Classify")) == "classify"
    assert yf_scripts.head_task(facts, head("Detect")) == "detect"
    assert yf_facts.by_head(facts["train_scripts"], head("Classify")) == "classify/train.py"
    assert dict(facts["script_losses"]) == {"segment/train.py": "yolov5.utils.segment.loss:ComputeLoss",
                                            "classify/train.py": "yolov5.utils.torch_utils:smartCrossEntropyLoss"}
    assert dict(facts["script_models"]) == {"classify/train.py": "yolov5.models.yolo:ClassificationModel"}


def test_yolov7_names_no_task():
    facts = detect_target(pristine_checkout("yolov7", YOLOV7_RELEASE)).runner_facts()
    assert yf_scripts.head_task(facts, head("IDetect")) is None


def test_a_missing_script_is_refused_naming_those_the_checkout_ships(tmp_path):
    for script in ("train.py", "train_dual.py"):
        (tmp_path / script).write_text("")
    facts = {"root": str(tmp_path), "kind": "yolov9", "version": None, "task_heads": YOLOV9.runtime.task_heads,
             "train_scripts": YOLOV9.runtime.train_scripts}
    assert yf_scripts.missing_script(facts, head("Segment"), "segment/train.py") == (
        "the yolov9 checkout ships no segment/train.py, the script for segment models; its training scripts: "
        "train.py, train_dual.py")
    assert yf_scripts.missing_script(facts, head("DDetect"), "train.py") is None
