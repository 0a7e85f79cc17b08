"""``yamlforge ablate`` on a real 8.4.190 checkout: yolov8n and SHSA at two positions, trained for real (2 epochs at
64 px on a tiny synthetic dataset), plus a placement gen-yaml refuses."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from shapes_dataset import shapes_dataset
from typer.testing import CliRunner

from yamlforge.cli import app

EPOCHS = 2


def ablate(*args) -> str:
    result = CliRunner().invoke(app, ["ablate", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def study(checkout_factory, tmp_path_factory):
    root = checkout_factory("ultralytics", "8.4.190")
    applied = CliRunner().invoke(app, ["apply", "--repo", str(root), "--module", "SHSA"])
    assert applied.exit_code == 0, applied.output
    folder = tmp_path_factory.mktemp("ablate")
    data = shapes_dataset(folder / "shapes", count=24, imgsz=64)
    command = ["yolov8n", "--repo", root, "--data", data, "--module", "SHSA", "--at", "6,15,40", "--epochs", EPOCHS,
               "--imgsz", 64, "--batch", 8, "--workers", 0, "--seeds", 0, "-o", folder / "study", "--format", "json"]
    rows = json.loads(ablate(*command))
    return folder / "study", command, rows


def trainer_row(out: Path, trial: str) -> tuple[float, float, int]:
    """The trainer's own best epoch of ``trial`` (by mAP50-95), read independently of yamlforge's reader."""
    with (out / "trials" / trial / "train" / "results.csv").open() as f:
        rows = [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]
    assert len(rows) == EPOCHS
    best = max(rows, key=lambda row: float(row["metrics/mAP50-95(B)"]))
    return float(best["metrics/mAP50-95(B)"]), float(best["metrics/mAP50(B)"]), int(float(best["epoch"]))


def test_the_tables_numbers_are_each_trials_results_csv(study):
    out, _, rows = study
    assert [row["variant"] for row in rows] == ["base", "SHSA-at6", "SHSA-at15", "SHSA-at40"]
    for row in rows[:3]:
        assert row["status"] == "done", row
        metric, map50, best = trainer_row(out, f"{row['variant']}-s0")
        assert (row["metric"], row["map50"], row["best_epoch"], row["epochs"]) == (metric, map50, [best], [EPOCHS])
    for row in rows[1:3]:
        assert row["difference"] == pytest.approx(row["metric"] - rows[0]["metric"])
    assert (out / "models" / "yolov8n-SHSA-at6.yaml").is_file()


def test_a_refused_placement_is_a_row_with_gen_yamls_reason(study):
    out, _, rows = study
    assert rows[3]["status"].startswith("refused: layer 40 does not exist")
    assert not (out / "trials" / "SHSA-at40-s0").exists()


def test_rerunning_trains_nothing_and_report_prints_the_same_table(study):
    out, command, rows = study
    csvs = sorted(out.glob("trials/*/train/results.csv"))
    before = {path: path.stat().st_mtime_ns for path in csvs}
    assert len(before) == 3
    assert json.loads(ablate(*command)) == rows
    assert {path: path.stat().st_mtime_ns for path in csvs} == before
    assert json.loads(ablate(out, "--report", "--format", "json")) == rows
    table = ablate(out, "--report").splitlines()
    assert table[0].split()[0] == "variant" and len(table) == 1 + len(rows) + 1  # header, rows, the refusal's reason
