"""verify on the segmentation and classification models of the targets that train with their own scripts: the task
from the head, the backward through the loss the task's script imports, and `--train` with that script (YOLOv5's
segment/train.py on polygon labels, classify/train.py on class folders), or the one-line refusal when the checkout
ships no such script (yolov9pip has no segment/)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import YOLOV5_RELEASE, YOLOV9_RELEASE, make_checkout

GELAN_C = Path(__file__).resolve().parents[2] / "examples" / "models" / "gelan-c.yaml"
MODULES = ("--module", "SHSA", "--module", "ResidualWrap")  # residual:SHSA: SHSA's last BN starts at 0


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def verify_inserted(base: Path | str, repo: Path, edit: str, out: Path) -> tuple[dict, dict]:
    """gen-yaml BASE with ``--insert-after edit``, then verify --train: (the report, its checks by name)."""
    cli("gen-yaml", str(base), "--repo", str(repo), "--insert-after", edit, "-o", str(out))
    result = CliRunner().invoke(app, ["verify", str(out), "--repo", str(repo), "--imgsz", "64", "--batch", "2",
                                      "--train", "--json"])
    report = json.loads(result.stdout)
    return report, {c["name"]: c for c in report["checks"]}


def assert_task_checked(report: dict, by_name: dict, task: str, script: str, loss: str) -> None:
    """The head's task and script reported, and the model built, ran and back-propagated the script's own loss."""
    assert report["task"]["task"] == task and report["task"]["trainer"] == script
    assert [by_name[name]["status"] for name in ("build", "forward", "backward")] == ["pass"] * 3
    assert f"{script}'s loss ({loss})" in by_name["backward"]["message"]


@pytest.fixture(scope="module")
def yolov5(tmp_path_factory):
    """The yolov5 wheel's checkout (its root keeps the package's name) with SHSA and ResidualWrap applied."""
    repo = make_checkout("yolov5", YOLOV5_RELEASE, tmp_path_factory.mktemp("yolov5") / "yolov5")
    cli("apply", "--repo", str(repo), *MODULES)
    return repo


@pytest.fixture(scope="module")
def yolov9(tmp_path_factory):
    repo = make_checkout("yolov9", YOLOV9_RELEASE, tmp_path_factory.mktemp("yolov9") / "yolov9")
    cli("apply", "--repo", str(repo), *MODULES)
    return repo


def test_yolov5s_seg_trains_with_segment_train_py_on_polygons(yolov5, tmp_path):
    report, by_name = verify_inserted("yolov5s-seg", yolov5, "6=residual:SHSA", tmp_path / "yolov5s-seg-SHSA.yaml")
    assert_task_checked(report, by_name, "segment", "segment/train.py", "yolov5.utils.segment.loss.ComputeLoss")
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    assert "with segment/train.py" in by_name["train"]["message"]
    assert by_name["reload"]["status"] == "pass"


def test_yolov9_gelan_c_seg_backward_through_its_segment_loss_and_train_refused_in_one_line(yolov9, tmp_path):
    """yolov9pip ships the Segment head and utils/segment/ but no segment/train.py: the model builds, its segment
    loss is checked, and --train names the scripts the checkout has instead of running the detection train.py."""
    base = tmp_path / "gelan-c-seg.yaml"
    base.write_text(GELAN_C.read_text(encoding="utf-8").replace("DDetect, [nc]]", "Segment, [nc, 32, 256]]"),
                    encoding="utf-8")
    report, by_name = verify_inserted(base, yolov9, "6=residual:SHSA", tmp_path / "gelan-c-seg-SHSA.yaml")
    assert_task_checked(report, by_name, "segment", "segment/train.py", "utils.segment.loss_tal.ComputeLoss")
    assert by_name["train"]["status"] == "fail"
    assert by_name["train"]["message"] == ("the yolov9 checkout ships no segment/train.py, the script for segment "
                                           "models; its training scripts: train.py, train_dual.py")


def yolov5s_cls(repo: Path, path: Path) -> Path:
    """yolov5s-cls as the wheel makes it (classify/train.py's ClassificationModel(model=yolov5s, cutoff=10)): the
    first nine layers of yolov5s.yaml, then common.py's Classify on layer 8's 512 channels."""
    text = (repo / "models" / "yolov5s.yaml").read_text(encoding="utf-8")
    backbone = text[:text.index("# YOLOv5 v6.0 head")].replace("   [-1, 1, SPPF, [1024, 5]],  # 9\n", "")
    path.write_text(backbone + "head:\n  [[-1, 1, Classify, [512, nc]]]  # 9\n", encoding="utf-8")
    return path


def test_yolov5s_cls_backward_through_the_classify_loss_and_trains_with_classify_train_py(yolov5, tmp_path):
    base = yolov5s_cls(yolov5, tmp_path / "yolov5s-cls.yaml")
    report, by_name = verify_inserted(base, yolov5, "4=residual:SHSA", tmp_path / "yolov5s-cls-SHSA.yaml")
    assert_task_checked(report, by_name, "classify", "classify/train.py",
                        "yolov5.utils.torch_utils.smartCrossEntropyLoss")
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    assert "with classify/train.py" in by_name["train"]["message"]
    assert by_name["reload"]["message"].endswith("predicted [1, 2]")
