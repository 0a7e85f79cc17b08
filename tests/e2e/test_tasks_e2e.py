"""verify on every task a release ships: BiLevelRoutingAttention inserted by gen-yaml into a segmentation, pose,
rotated-box, classification, semantic and depth model; the backward runs the task's own loss on a batch in its format,
and the report names the task, wrapper, model and trainer the target's own wrapper chose."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from cli_tools import invoke
from typer.testing import CliRunner

from yamlforge.cli import app

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "verify-schema.json").read_text())
MODULE = "BiLevelRoutingAttention"
IMGSZ = 64  # small: what is checked (the loss of each task, finite gradients) does not depend on the size
cli = CliRunner()

# (release, base, task, model, trainer): what the release's YOLO wrapper picks for the generated YAML
CASES = [
    ("8.4.190", "yolov8n", "detect", "DetectionModel", "DetectionTrainer"),
    ("8.4.190", "yolo11n-seg", "segment", "SegmentationModel", "SegmentationTrainer"),
    ("8.4.190", "yolov8n-pose", "pose", "PoseModel", "PoseTrainer"),
    ("8.4.190", "yolo11n-obb", "obb", "OBBModel", "OBBTrainer"),
    ("8.4.190", "yolov8n-cls", "classify", "ClassificationModel", "ClassificationTrainer"),
    ("8.4.190", "yolo26n-sem", "semantic", "SemanticSegmentationModel", "SemanticSegmentationTrainer"),
    ("8.4.190", "yolo26n-depth", "depth", "DepthModel", "DepthTrainer"),
    ("8.0.227", "yolov8n-seg", "segment", "SegmentationModel", "SegmentationTrainer"),
    ("8.0.227", "yolov8n-pose", "pose", "PoseModel", "PoseTrainer"),
    ("8.0.227", "yolov8n-cls", "classify", "ClassificationModel", "ClassificationTrainer"),
]
LOSSES = {"detect": "v8DetectionLoss", "segment": "v8SegmentationLoss", "pose": "v8PoseLoss", "obb": "v8OBBLoss",
          "classify": "v8ClassificationLoss", "semantic": "SemanticSegmentationLoss", "depth": "DepthLoss26"}


@pytest.fixture(scope="module")
def checkout_with_module(checkout_factory):
    """``checkout_with_module(version)``: one checkout of that release for the whole module, MODULE applied."""
    roots: dict[str, Path] = {}

    def get(version: str) -> Path:
        if version not in roots:
            roots[version] = checkout_factory("ultralytics", version)
            invoke("apply", "--repo", roots[version], "--module", MODULE)
        return roots[version]

    return get


def verify_inserted(root: Path, base: str, *options: str) -> tuple[int, dict]:
    """gen-yaml BASE with the module after layer 6 (once per checkout), then `verify --json` of the YAML it wrote."""
    models = root / "ultralytics/cfg/models"
    if not any(models.rglob(f"{base}-{MODULE}.yaml")):
        invoke("gen-yaml", base, "--insert-after", f"6={MODULE}", "--repo", root)
    model = next(models.rglob(f"{base}-{MODULE}.yaml"))
    result = cli.invoke(app, ["verify", str(model), "--repo", str(root), "--imgsz", str(IMGSZ), "--json", *options])
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    return result.exit_code, data


@pytest.mark.parametrize(("version", "base", "task", "model", "trainer"), CASES,
                         ids=[f"{version}-{base}" for version, base, *_ in CASES])
def test_verify_runs_each_tasks_own_loss(checkout_with_module, version, base, task, model, trainer):
    code, data = verify_inserted(checkout_with_module(version), base)
    assert code == 0, data["checks"]
    assert [c["name"] for c in data["checks"]] == ["import", "build", "forward", "flops", "backward"]
    assert data["task"]["task"] == task and data["task"]["model_class"] == "YOLO"
    assert data["task"]["model"] == model and data["task"]["trainer"] == trainer
    assert task in data["task"]["tasks"] and data["task"]["metric"]
    assert ("obb" in data["task"]["tasks"]) == (version != "8.0.227")  # 8.0 ships no OBB
    assert data["gradients"]["finite"] and data["gradients"]["loss"] == f"the target's {task} loss ({LOSSES[task]})"
    assert any(row["module"] == MODULE for row in data["layers"])


@pytest.mark.parametrize(("base", "trainer"), [("yolo11n-seg", "SegmentationTrainer"), ("yolov8n-pose", "PoseTrainer"),
                                             ("yolo11n-obb", "OBBTrainer")])
def test_train_runs_the_tasks_own_trainer_on_its_labels_and_reloads(checkout_with_module, base, trainer):
    """Polygons for segment, keypoints of the YAML's kpt_shape for pose, four corners for OBB."""
    code, data = verify_inserted(checkout_with_module("8.4.190"), base, "--train")
    assert code == 0, data["checks"]
    checks = {c["name"]: c for c in data["checks"]}
    assert checks["train"]["status"] == checks["reload"]["status"] == checks["safe_reload"]["status"] == "pass"
    assert f"with YOLO.train ({trainer})" in checks["train"]["message"]


def test_train_of_a_task_without_a_synthetic_dataset_is_skipped_in_one_line(checkout_with_module):
    code, data = verify_inserted(checkout_with_module("8.4.190"), "yolov8n-cls", "--train")
    assert code == 0, data["checks"]
    train = data["checks"][-1]
    assert (train["name"], train["status"]) == ("train", "skip")
    assert train["message"] == ("not run: yamlforge writes no synthetic classify dataset yet "
                                "(it writes detect, segment, obb, pose datasets)")
