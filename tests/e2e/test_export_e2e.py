"""verify --export onnx on real checkouts: every recipe model exports and matches PyTorch; a block that cannot
export is named by its YAML row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_scenarios_e2e import apply_module, gen_yaml
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import YOLOV9_RELEASE

IMGSZ = 64  # export and onnxruntime do not care about the size; RT-DETR on 8.4 clamps its queries to the anchors
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "export"
# (module, recipe, extra gen-yaml options): the four Ultralytics recipes (RevCol at its CI size, as the scenarios)
RECIPES = [
    ("SHSA", "rtdetr-l-SHSA.yaml", ()),
    ("token_mixer", "rtdetr-l-token_mixer.yaml", ()),
    ("revcol_tiny", "rtdetr-l-revcol.yaml", ("--backbone", "revcol_tiny")),
    ("BiLevelRoutingAttention", "yolov8n-BiLevelRoutingAttention.yaml", ()),
]
cli = CliRunner()


@pytest.fixture(scope="module")
def ultralytics_repo(checkout_factory) -> Path:
    repo = checkout_factory("ultralytics", "8.4.190")
    apply_module(repo, "ResidualWrap")  # the SHSA recipe uses SHSA's residual form
    return repo


def verify_export(model: Path, repo: Path) -> dict:
    result = cli.invoke(app, ["verify", str(model), "--repo", str(repo), "--imgsz", str(IMGSZ), "--batch", "1",
                              "--export", "onnx", "--json"])
    assert result.exit_code in (0, 1), result.output
    return json.loads(result.stdout)


def export_check(report: dict) -> dict:
    return next(c for c in report["checks"] if c["name"] == "export")


@pytest.mark.parametrize(("module", "recipe", "extra"), RECIPES, ids=[r[0] for r in RECIPES])
def test_recipe_model_exports_and_matches_torch_on_8_4_190(ultralytics_repo, tmp_path, module, recipe, extra):
    apply_module(ultralytics_repo, module)
    path, _ = gen_yaml(ultralytics_repo, recipe, tmp_path, *extra)
    report = verify_export(path, ultralytics_repo)
    check = export_check(report)
    assert report["ok"], json.dumps(report["checks"], indent=1)
    assert check["exporter"] == "wrapper" and check["onnx_shape"] == check["torch_shape"]
    assert 0 <= check["max_abs_diff"] <= check["tolerance"]


def test_gelan_c_riformer_exports_with_yolov9s_export_script(checkout_factory, tmp_path):
    repo = checkout_factory("yolov9", YOLOV9_RELEASE)
    apply_module(repo, "RIFormerBlock")
    path, _ = gen_yaml(repo, "gelan-c-RIFormerBlock.yaml", tmp_path)
    report = verify_export(path, repo)
    check = export_check(report)
    assert report["ok"], json.dumps(report["checks"], indent=1)
    assert check["exporter"] == "script" and check["max_abs_diff"] <= check["tolerance"]
    assert any("V6Detect" in note for note in report["notes"])  # yolov9pip 0.0.4's export.py bug, worked around


def test_a_block_without_onnx_symbolic_is_named_by_its_row(ultralytics_repo, tmp_path):
    result = cli.invoke(app, ["apply", "--repo", str(ultralytics_repo), "--spec", str(FIXTURES / "svd_gate.yaml")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "yolov8n-SvdGate.yaml"
    result = cli.invoke(app, ["gen-yaml", "yolov8n", "--insert-after", "15=SvdGate", "--repo", str(ultralytics_repo),
                              "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = verify_export(out, ultralytics_repo)
    check = export_check(report)
    assert report["failed_checks"] == ["export"]  # it builds, runs and trains: only the export fails
    assert check["layer"] == {"index": 16, "module": "SvdGate"}
    assert check["opset"] == 18  # the exporter's own choice (best_onnx_opset under torch 2.14), the search's too
    assert check["message"].startswith("layer 16 (SvdGate) does not export to ONNX: ")
    assert "linalg_svdvals" in check["message"]
    file, line = check["where"].rsplit(":", 1)  # where the op is to be replaced: the class in the checkout
    assert Path(file) == ultralytics_repo / "ultralytics/nn/modules/svd_gate.py"
    assert Path(file).read_text().splitlines()[int(line) - 1].startswith("class SvdGate(")



def test_segmentation_export_compares_boxes_and_mask_prototypes(ultralytics_repo, tmp_path):
    """yolo11n-seg's ONNX file has two outputs, boxes with mask coefficients and the mask prototypes: both are
    compared, each with the PyTorch output of its shape."""
    apply_module(ultralytics_repo, "BiLevelRoutingAttention")
    out = tmp_path / "yolo11n-seg-BiLevelRoutingAttention.yaml"
    result = cli.invoke(app, ["gen-yaml", "yolo11n-seg", "--insert-after", "6=BiLevelRoutingAttention", "--repo",
                              str(ultralytics_repo), "-o", str(out)])
    assert result.exit_code == 0, result.output
    report = verify_export(out, ultralytics_repo)
    check = export_check(report)
    assert report["ok"], json.dumps(report["checks"], indent=1)
    anchors = sum((IMGSZ // stride) ** 2 for stride in (8, 16, 32))
    boxes, prototypes = [1, 4 + 80 + 32, anchors], [1, 32, IMGSZ // 4, IMGSZ // 4]
    assert [(o["onnx_shape"], o["torch_shape"]) for o in check["outputs"]] == [(boxes, boxes), (prototypes, prototypes)]
    assert all(0 <= o["max_abs_diff"] <= o["tolerance"] for o in check["outputs"])
    assert "all 2 outputs, worst " in check["message"]
