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


def verify(yaml: Path, repo: Path) -> dict:
    result = CliRunner().invoke(app, ["verify", str(yaml), "--repo", str(repo), "--imgsz", "64", "--batch", "2",
                                      "--train", "--json"])
    return json.loads(result.stdout)


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


def checks(report: dict) -> dict:
    return {c["name"]: c for c in report["checks"]}


def test_yolov5s_seg_trains_with_segment_train_py_on_polygons(yolov5, tmp_path):
    out = tmp_path / "yolov5s-seg-SHSA.yaml"
    cli("gen-yaml", "yolov5s-seg", "--repo", str(yolov5), "--insert-after", "6=residual:SHSA", "-o", str(out))
    report = verify(out, yolov5)
    by_name = checks(report)
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    assert report["task"]["task"] == "segment" and report["task"]["trainer"] == "segment/train.py"
    assert "yolov5.utils.segment.loss.ComputeLoss" in by_name["backward"]["message"]
    assert "with segment/train.py" in by_name["train"]["message"]
    assert by_name["reload"]["status"] == "pass"


def test_yolov9_gelan_c_seg_backward_through_its_segment_loss_and_train_refused_in_one_line(yolov9, tmp_path):
    """yolov9pip ships the Segment head and utils/segment/ but no segment/train.py: the model builds, its segment
    loss is checked, and --train names the scripts the checkout has instead of running the detection train.py."""
    base = tmp_path / "gelan-c-seg.yaml"
    base.write_text(GELAN_C.read_text(encoding="utf-8").replace("DDetect, [nc]]", "Segment, [nc, 32, 256]]"),
                    encoding="utf-8")
    out = tmp_path / "gelan-c-seg-SHSA.yaml"
    cli("gen-yaml", str(base), "--repo", str(yolov9), "--insert-after", "6=residual:SHSA", "-o", str(out))
    report = verify(out, yolov9)
    by_name = checks(report)
    assert report["task"]["task"] == "segment" and report["task"]["trainer"] == "segment/train.py"
    assert [by_name[name]["status"] for name in ("build", "forward", "backward")] == ["pass"] * 3
    assert "utils.segment.loss_tal.ComputeLoss" in by_name["backward"]["message"]
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
    out = tmp_path / "yolov5s-cls-SHSA.yaml"
    cli("gen-yaml", str(base), "--repo", str(yolov5), "--insert-after", "4=residual:SHSA", "-o", str(out))
    report = verify(out, yolov5)
    by_name = checks(report)
    assert report["task"]["task"] == "classify" and report["task"]["trainer"] == "classify/train.py"
    assert [by_name[name]["status"] for name in ("build", "forward", "backward")] == ["pass"] * 3
    assert "yolov5.utils.torch_utils.smartCrossEntropyLoss" in by_name["backward"]["message"]
    if "writes no synthetic classify dataset" in by_name["train"]["message"]:
        pytest.skip("the class-folder dataset comes with the classify datasets of verify --train (helper tasks-train)")
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    assert "with classify/train.py" in by_name["train"]["message"]
    assert by_name["reload"]["message"].endswith("predicted [1, 2]")
