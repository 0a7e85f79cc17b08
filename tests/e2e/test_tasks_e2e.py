"""verify on every task a release ships: SHSA or BiLevelRoutingAttention (alternating, so each task base carries one
and both modules are covered) inserted by gen-yaml into a segmentation, pose, rotated-box, classification, semantic and
depth model; the backward runs the task's own loss on a batch in its format, `--train` one epoch with the task's own
trainer on a synthetic dataset in its layout, and the checkpoint reloads (with safe load on 8.4). The report names the
task, wrapper, model and trainer the target's own wrapper chose. Open-vocabulary models pass with a note."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
from cli_tools import invoke
from typer.testing import CliRunner

from yamlforge.cli import app

SCHEMA = json.loads((Path(__file__).resolve().parents[2] / "docs" / "verify-schema.json").read_text())
MODULES = ("SHSA", "BiLevelRoutingAttention")
IMGSZ = 64  # small: what is checked (the loss of each task, finite gradients, one epoch) does not depend on the size
# SHSA's last BatchNorm starts at 0 (it is a residual branch): as a plain layer it is a dead start, a warning
BACKWARD = {"SHSA": "warn", "BiLevelRoutingAttention": "pass"}
cli = CliRunner()

# (release, base, module, task, model, trainer): what the release's YOLO wrapper picks for the generated YAML
CASES = [
    ("8.4.190", "yolov8n", "SHSA", "detect", "DetectionModel", "DetectionTrainer"),
    ("8.4.190", "yolo11n-seg", "BiLevelRoutingAttention", "segment", "SegmentationModel", "SegmentationTrainer"),
    ("8.4.190", "yolov8n-pose", "SHSA", "pose", "PoseModel", "PoseTrainer"),
    ("8.4.190", "yolo11n-obb", "BiLevelRoutingAttention", "obb", "OBBModel", "OBBTrainer"),
    ("8.4.190", "yolov8n-cls", "SHSA", "classify", "ClassificationModel", "ClassificationTrainer"),
    ("8.4.190", "yolo26n-sem", "BiLevelRoutingAttention", "semantic", "SemanticSegmentationModel",
     "SemanticSegmentationTrainer"),
    ("8.4.190", "yolo26n-depth", "SHSA", "depth", "DepthModel", "DepthTrainer"),
    ("8.0.227", "yolov8n-seg", "SHSA", "segment", "SegmentationModel", "SegmentationTrainer"),
    ("8.0.227", "yolov8n-pose", "BiLevelRoutingAttention", "pose", "PoseModel", "PoseTrainer"),
    ("8.0.227", "yolov8n-cls", "SHSA", "classify", "ClassificationModel", "ClassificationTrainer"),
]
TRAINED = {"detect": False}  # detection's smoke training is the rest of the suite's; every other task trains here
LOSSES = {"detect": "v8DetectionLoss", "segment": "v8SegmentationLoss", "pose": "v8PoseLoss", "obb": "v8OBBLoss",
          "classify": "v8ClassificationLoss", "semantic": "SemanticSegmentationLoss", "depth": "DepthLoss26"}


@pytest.fixture(scope="module")
def checkout_with_modules(checkout_factory):
    """``checkout_with_modules(version)``: one checkout of that release for the whole module, MODULES applied."""
    roots: dict[str, Path] = {}

    def get(version: str) -> Path:
        if version not in roots:
            roots[version] = checkout_factory("ultralytics", version)
            invoke("apply", "--repo", roots[version], *(arg for m in MODULES for arg in ("--module", m)))
        return roots[version]

    return get


def verify_inserted(root: Path, base: str, module: str, *options: str) -> tuple[int, dict]:
    """gen-yaml BASE with ``module`` after layer 6, then `verify --json` of the YAML it wrote."""
    invoke("gen-yaml", base, "--insert-after", f"6={module}", "--repo", root)
    model = next((root / "ultralytics/cfg/models").rglob(f"{base}-{module}.yaml"))
    result = cli.invoke(app, ["verify", str(model), "--repo", str(root), "--imgsz", str(IMGSZ), "--json", *options])
    data = json.loads(result.stdout)
    jsonschema.validate(data, SCHEMA)
    return result.exit_code, data


@pytest.mark.parametrize(("version", "base", "module", "task", "model", "trainer"), CASES,
                         ids=[f"{version}-{base}-{module}" for version, base, module, *_ in CASES])
def test_verify_trains_each_task_with_its_own_loss_trainer_and_dataset(checkout_with_modules, version, base, module,
                                                                       task, model, trainer):
    trained = TRAINED.get(task, True)
    code, data = verify_inserted(checkout_with_modules(version), base, module, *(["--train"] if trained else []))
    assert code == 0, data["checks"]
    checks = {c["name"]: c["status"] for c in data["checks"]}
    reloads = ["train", "reload"] + (["safe_reload"] if version == "8.4.190" else []) if trained else []
    assert list(checks) == ["import", "build", "forward", "flops", "backward", *reloads]
    assert checks["backward"] == BACKWARD[module] and all(checks[name] == "pass" for name in reloads)
    assert data["task"]["task"] == task and data["task"]["model_class"] == "YOLO"
    assert data["task"]["model"] == model and data["task"]["trainer"] == trainer
    assert task in data["task"]["tasks"] and data["task"]["metric"]
    assert ("obb" in data["task"]["tasks"]) == (version != "8.0.227")  # 8.0 ships no OBB
    assert data["gradients"]["finite"] and data["gradients"]["loss"] == f"the target's {task} loss ({LOSSES[task]})"
    assert any(row["module"] == module for row in data["layers"])
    if trained:
        train = next(c for c in data["checks"] if c["name"] == "train")
        assert f"with YOLO.train ({trainer})" in train["message"]


@pytest.mark.parametrize(("base", "module", "model", "encoder"), [
    ("yolov8s-world", "BiLevelRoutingAttention", "WorldModel", "clip:ViT-B/32"),
    ("yoloe-11s-seg", "SHSA", "YOLOESegModel", "mobileclip:blt"),
])
def test_open_vocabulary_models_pass_on_their_stored_embeddings_and_name_what_was_not_checked(
        checkout_with_modules, base, module, model, encoder):
    code, data = verify_inserted(checkout_with_modules("8.4.190"), base, module, "--train")
    assert code == 0, data["checks"]
    checks = {c["name"]: c["status"] for c in data["checks"]}
    assert checks == {"import": "pass", "build": "pass", "forward": "pass", "flops": "pass",
                      "backward": BACKWARD[module], "train": "skip"}
    assert data["task"]["model"] == model and data["gradients"]["finite"]
    [note] = [n for n in data["notes"] if n.startswith("open vocabulary")]
    assert f"({model}): forward and backward ran on the class embeddings the model stores" in note
    assert f"not checked: its text encoder {encoder}" in note
