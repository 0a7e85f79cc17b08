"""compare on a real checkout: stock RT-DETR-l and the three RT-DETR recipe models, cross-checked with verify."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_scenarios_e2e import RTDETR_FIX, apply_module, gen_yaml
from typer.testing import CliRunner

from yamlforge.cli import app

IMGSZ = 64
RECIPES = [("SHSA", "rtdetr-l-SHSA.yaml", ()), ("token_mixer", "rtdetr-l-token_mixer.yaml", ()),
           ("revcol_tiny", "rtdetr-l-revcol.yaml", ("--backbone", "revcol_tiny"))]  # RevCol at its CI size
cli = CliRunner()


@pytest.fixture(scope="module")
def rtdetr_models(checkout_factory, tmp_path_factory) -> tuple[Path, list[str]]:
    repo = checkout_factory("ultralytics", "8.4.190")
    out = tmp_path_factory.mktemp("compare-models")
    models = ["rtdetr-l.yaml"]
    apply_module(repo, "ResidualWrap")  # the SHSA recipe uses SHSA's residual form
    for module, recipe, extra in RECIPES:
        apply_module(repo, module, *RTDETR_FIX)
        models.append(str(gen_yaml(repo, recipe, out, *extra)[0]))
    return repo, models


def invoke(*args) -> str:
    result = cli.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.stdout


def test_compare_columns_equal_what_verify_reports(rtdetr_models):
    repo, models = rtdetr_models
    data = json.loads(invoke("compare", *models, "--repo", repo, "--imgsz", IMGSZ, "--runs", 1, "--format", "json"))
    rows = data["rows"]
    assert [r["model"] for r in rows] == ["rtdetr-l", "rtdetr-l-residual-SHSA", "rtdetr-l-token_mixer",
                                          "rtdetr-l-revcol_tiny"]
    assert all(r["ok"] and r["latency_runs"] == 1 and r["latency_ms"] > 0 and r["peak_mib"] > 0 for r in rows)
    reports = json.loads(invoke("verify", *models, "--repo", repo, "--imgsz", IMGSZ, "--batch", 1, "--json"))
    for model, row, report in zip(models, rows, reports, strict=True):
        totals = report["totals"]
        assert (row["layers"], row["parameters"], row["gflops"]) == (
            totals["layers"], totals["parameters"], totals["gflops"]), model
    assert rows[1]["difference"]["parameters"] == rows[1]["parameters"] - rows[0]["parameters"]


def test_markdown_table_has_one_row_per_model_in_order(rtdetr_models):
    repo, models = rtdetr_models
    result = cli.invoke(app, ["compare", *models[:2], "--repo", str(repo), "--imgsz", str(IMGSZ), "--runs", "1",
                              "--format", "markdown"])
    assert result.exit_code == 0, result.output
    lines = result.stdout.strip().splitlines()
    assert lines[1] == "| --- | ---: | ---: | ---: | ---: | ---: |"
    assert [line.split(" | ")[0] for line in lines[2:]] == ["| rtdetr-l", "| rtdetr-l-residual-SHSA"]
    assert "(+" in lines[3]  # SHSA adds parameters: the difference to the first model
    assert [line.split(":")[0] for line in result.stderr.splitlines() if line.endswith("MiB")] == [
        f"compare [1/2] {models[0]}", f"compare [2/2] {models[1]}"]  # one progress line per model, on stderr


def test_without_imgsz_a_classifier_is_measured_at_its_trainers_size(rtdetr_models):
    """224, ClassificationTrainer's own default (a detector's, 640, is the default hyperparameters'); the GFLOPs figure
    is verify's at that size. Given --imgsz, every model is measured at it."""
    repo, _ = rtdetr_models
    data = json.loads(invoke("compare", "yolov8n-cls.yaml", "--repo", repo, "--runs", 1, "--format", "json"))
    assert data["imgsz"] is None and [(r["model"], r["imgsz"]) for r in data["rows"]] == [("yolov8n-cls", 224)]
    classify = json.loads(invoke("verify", "yolov8n-cls.yaml", "--repo", repo, "--imgsz", 224, "--batch", 1, "--json"))
    assert data["rows"][0]["gflops"] == classify["totals"]["gflops"]
    table = invoke("compare", "yolov8n-cls.yaml", "--repo", repo, "--imgsz", IMGSZ, "--runs", 1)
    assert "GFLOPs@64" in table.splitlines()[0]
