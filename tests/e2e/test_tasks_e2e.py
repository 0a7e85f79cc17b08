"""verify on every task a release ships: BiLevelRoutingAttention inserted by gen-yaml into a segmentation, pose,
rotated-box, classification, semantic and depth model; the backward runs the task's own loss on a batch in its format,
and the report names the task, wrapper, model and trainer the target's own wrapper chose."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from typer.testing import CliRunner

from yamlforge.cli import app

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "verify-schema.json").read_text())
MODULE = "BiLevelRoutingAttention"
IMGSZ = 64  # small: what is checked (the loss of each task, finite gradients) does not depend on the size
cli = CliRunner()

# (base, task, model, trainer): what the release's YOLO wrapper picks for the generated YAML
TASKS_84 = [
    ("yolov8n", "detect", "DetectionModel", "DetectionTrainer"),
    ("yolo11n-seg", "segment", "SegmentationModel", "SegmentationTrainer"),
    ("yolov8n-pose", "pose", "PoseModel", "PoseTrainer"),
    ("yolo11n-obb", "obb", "OBBModel", "OBBTrainer"),
    ("yolov8n-cls", "classify", "ClassificationModel", "ClassificationTrainer"),
    ("yolo26n-sem", "semantic", "SemanticSegmentationModel", "SemanticSegmentationTrainer"),
    ("yolo26n-depth", "depth", "DepthModel", "DepthTrainer"),
]
TASKS_80 = [
    ("yolov8n-seg", "segment", "SegmentationModel", "SegmentationTrainer"),
    ("yolov8n-pose", "pose", "PoseModel", "PoseTrainer"),
    ("yolov8n-cls", "classify", "ClassificationModel", "ClassificationTrainer"),
]
LOSSES = {"detect": "v8DetectionLoss", "segment": "v8SegmentationLoss", "pose": "v8PoseLoss", "obb": "v8OBBLoss",
          "classify": "v8ClassificationLoss", "semantic": "SemanticSegmentationLoss", "depth": "DepthLoss26"}


def invoke(*args) -> str:
    result = cli.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def with_module(root: Path) -> Path:
    invoke("apply", "--repo", root, "--module", MODULE)
    return root


@pytest.fixture(scope="module")
def u84(checkout_factory):
    return with_module(checkout_factory("ultralytics", "8.4.190"))


@pytest.fixture(scope="module")
def u80(checkout_factory):
    return with_module(checkout_factory("ultralytics", "8.0.227"))


def verify_inserted(root: Path, base: str) -> tuple[int, dict]:
    """gen-yaml BASE with the module after layer 6, then `verify --json` of the YAML it wrote."""
    invoke("gen-yaml", base, "--insert-after", f"6={MODULE}", "--repo", root)
    model = next((root / "ultralytics/cfg/models").rglob(f"{base}-{MODULE}.yaml"))
    result = cli.invoke(app, ["verify", str(model), "--repo", str(root), "--imgsz", str(IMGSZ), "--json"])
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    return result.exit_code, data


def assert_task_verified(code: int, data: dict, task: str, model: str, trainer: str) -> None:
    assert code == 0, data["checks"]
    assert [c["name"] for c in data["checks"]] == ["import", "build", "forward", "flops", "backward"]
    assert data["task"]["task"] == task and data["task"]["model_class"] == "YOLO"
    assert data["task"]["model"] == model and data["task"]["trainer"] == trainer
    assert task in data["task"]["tasks"] and data["task"]["metric"]
    assert data["gradients"]["finite"] and data["gradients"]["loss"] == f"the target's {task} loss ({LOSSES[task]})"
    assert any(row["module"] == MODULE for row in data["layers"])


@pytest.mark.parametrize(("base", "task", "model", "trainer"), TASKS_84, ids=[row[0] for row in TASKS_84])
def test_verify_runs_each_tasks_own_loss_on_8_4_190(u84, base, task, model, trainer):
    assert_task_verified(*verify_inserted(u84, base), task, model, trainer)


@pytest.mark.parametrize(("base", "task", "model", "trainer"), TASKS_80, ids=[row[0] for row in TASKS_80])
def test_verify_runs_each_tasks_own_loss_on_8_0_227(u80, base, task, model, trainer):
    code, data = verify_inserted(u80, base)
    assert_task_verified(code, data, task, model, trainer)
    assert "obb" not in data["task"]["tasks"]

