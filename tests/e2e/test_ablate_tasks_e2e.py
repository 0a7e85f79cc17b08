"""``yamlforge ablate`` beyond detection on Ultralytics: a segmentation study on 8.4.190 (its rows are mask mAP), the
same study on YOLOv5 with its own train.py, and a variant whose block turns the loss into NaN (a failed row, the base
still done). Each is a base and one variant, trained for real for one or two epochs at 64 px."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from shapes_dataset import shapes_dataset
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import YOLOV5_RELEASE, make_checkout

# A block that passes its input through for a few training steps, then returns NaN: the loss diverges
NAN_AFTER_PY = '''\
"""Passes its input through for a few training steps, then returns NaN (a diverging study trial)."""
import torch
from torch import nn


class NaNAfter(nn.Module):
    steps = 3  # training forward passes before the NaN

    def __init__(self, c1):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.calls += 1
        return x * float("nan") if self.calls > self.steps else x
'''
NAN_AFTER_SPEC = """\
name: NaNAfter
summary: Passes its input through for a few training steps, then returns NaN.
paper: "none"
source: nan_after.py
exports: [NaNAfter]
role: layer
channels: keep
stride: 1
args: []
requires: []
"""
TRAINING = ["--imgsz", 64, "--batch", 4, "--workers", 0, "--seeds", 0, "--set", "nbs=4", "--set", "warmup_epochs=0",
            "--set", "mosaic=0", "--set", "optimizer=AdamW", "--set", "lr0=0.01", "--set", "plots=False"]


def invoke(*args) -> list[dict]:
    result = CliRunner().invoke(app, ["ablate", *map(str, args), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def applied(root: Path, *options) -> Path:
    result = CliRunner().invoke(app, ["apply", "--repo", str(root), *options])
    assert result.exit_code == 0, result.output
    return root


def results_csv(out: Path, trial: str) -> list[dict[str, str]]:
    with (out / "trials" / trial / "train" / "results.csv").open() as f:
        return [{k.strip(): v.strip() for k, v in row.items()} for row in csv.DictReader(f)]


@pytest.fixture(scope="module")
def ultralytics(checkout_factory, tmp_path_factory):
    """8.4.190 with SHSA and the NaN block applied."""
    folder = tmp_path_factory.mktemp("nan-block")
    (folder / "nan_after.py").write_text(NAN_AFTER_PY)
    (folder / "nan_after.yaml").write_text(NAN_AFTER_SPEC)
    return applied(applied(checkout_factory("ultralytics", "8.4.190"), "--module", "SHSA"),
                   "--spec", folder / "nan_after.yaml")


def test_a_segmentation_study_reports_mask_map(ultralytics, tmp_path):
    data = shapes_dataset(tmp_path / "shapes", count=8, imgsz=64, task="segment")
    out = tmp_path / "study"
    rows = invoke("yolov8n-seg", "--repo", ultralytics, "--data", data, "--module", "SHSA", "--at", 6, "--epochs", 2,
                  *TRAINING, "-o", out)
    assert [(row["variant"], row["status"]) for row in rows] == [("base", "done"), ("SHSA-at6", "done")]
    for row in rows:
        epochs = results_csv(out, f"{row['variant']}-s0")
        best = max(epochs, key=lambda epoch: float(epoch["metrics/mAP50-95(M)"]))
        assert (row["metric"], row["map50"]) == (float(best["metrics/mAP50-95(M)"]), float(best["metrics/mAP50(M)"]))
    assert json.loads((out / "plan.json").read_text())["task"] == "segment" == rows[0]["task"]


def test_a_diverging_variant_is_a_failed_row_and_the_base_finishes(ultralytics, tmp_path):
    data = shapes_dataset(tmp_path / "shapes", count=8, imgsz=64)
    rows = invoke("yolov8n", "--repo", ultralytics, "--data", data, "--module", "NaNAfter", "--at", 6, "--epochs", 2,
                  *TRAINING, "-o", tmp_path / "study")
    base, diverged = rows
    assert base["status"] == "done" and base["metric"] is not None
    assert diverged["status"].startswith("failed: ") and "NaN" in diverged["status"], diverged


def test_a_yolov5_study_trains_with_its_train_py(tmp_path):
    root = applied(make_checkout("yolov5", YOLOV5_RELEASE, tmp_path / "yolov5"), "--module", "SHSA")  # its own name
    data = shapes_dataset(tmp_path / "shapes", count=8, imgsz=64)
    out = tmp_path / "study"
    rows = invoke("yolov5n", "--repo", root, "--data", data, "--module", "SHSA", "--at", 6, "--epochs", 1,
                  "--imgsz", 64, "--batch", 8, "--workers", 0, "-o", out)
    assert [(row["variant"], row["status"]) for row in rows] == [("base", "done"), ("SHSA-at6", "done")]
    for row in rows:
        (epoch,) = results_csv(out, f"{row['variant']}-s0")  # the script's padded names, stripped
        assert (row["metric"], row["map50"]) == (float(epoch["metrics/mAP_0.5:0.95"]),
                                                 float(epoch["metrics/mAP_0.5"]))
        assert (out / "trials" / f"{row['variant']}-s0" / "train" / "weights" / "last.pt").is_file()
