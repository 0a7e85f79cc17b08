"""``yamlforge ablate`` rows beyond one module on a real 8.4.190 checkout with SHSA applied: ``--at auto`` against
SHSA's width checks (planned only), and a ``--variant`` row with ``--base-weights``, trained for real (1 epoch at
64 px on a tiny synthetic dataset)."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_tools import invoke
from conftest import run_in_checkout
from shapes_dataset import shapes_dataset
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.study.plan import AUTO, StudyRequest, make_plan


@pytest.fixture(scope="module")
def checkout(checkout_factory, tmp_path_factory):
    """8.4.190 with SHSA applied, and the synthetic dataset."""
    root = checkout_factory("ultralytics", "8.4.190")
    invoke("apply", "--repo", root, "--module", "SHSA")
    return root, shapes_dataset(tmp_path_factory.mktemp("shapes"), count=16, imgsz=64)


def ablate_rows(*args) -> list[dict]:
    """The rows ``yamlforge ablate ARGS --format json`` prints on stdout (its progress goes to stderr)."""
    result = CliRunner().invoke(app, ["ablate", *map(str, args), "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def training(root: Path, data: Path, out: Path, *rows) -> list:
    return ["yolov8n", "--repo", root, "--data", data, *rows, "--epochs", 1, "--imgsz", 64, "--batch", 8,
            "--workers", 0, "-o", out]


@pytest.fixture(scope="module")
def base_checkpoint(checkout, tmp_path_factory):
    """A checkpoint of yolov8n for the dataset's two classes, saved the way the trainer saves one (its model object,
    built by the checkout's own DetectionModel), without spending a training on it."""
    path = tmp_path_factory.mktemp("base") / "base.pt"
    run_in_checkout(checkout[0], f"""
        import torch
        from ultralytics.nn.tasks import DetectionModel
        torch.save({{"model": DetectionModel("yolov8n.yaml", nc=2, verbose=False), "ema": None}}, {str(path)!r})
    """)
    return path


def test_at_auto_plans_shsa_after_each_stage_output_and_head_level(checkout, tmp_path):
    plan, _ = make_plan(StudyRequest("yolov8n", checkout[0], checkout[1], "SHSA", AUTO, tmp_path / "study"))
    assert [v.name for v in plan.variants] == ["base"] + [f"SHSA-at{n}" for n in (4, 6, 9, 15, 18, 21)]
    assert all(v.refused is None for v in plan.variants)


def test_base_weights_start_each_row_from_the_base_checkpoint(checkout, base_checkpoint, tmp_path):
    checkpoint, out = base_checkpoint, tmp_path / "study"
    rows = ablate_rows(*training(*checkout, out, "--variant", "shsa6: --insert-after 6=SHSA", "--base-weights",
                                 checkpoint))
    assert [(row["variant"], row["status"]) for row in rows] == [("base", "done"), ("shsa6", "done")]
    assert (out / "models" / "yolov8n-shsa6.pt").is_file()  # carried by the plan, beside its YAML
    for trial in ("base-s0", "shsa6-s0"):  # the trainer's own count of what it took from the checkpoint
        moved = re.findall(r"Transferred (\d+)/(\d+) items", (out / "trials" / trial / "train.log").read_text())
        assert moved and moved[-1][0] == moved[-1][1], (trial, moved)
    plan = json.loads((out / "plan.json").read_text())
    assert plan["base_weights"] == str(checkpoint.resolve())
    assert [v["weights"] for v in plan["variants"]] == [str(checkpoint.resolve()), "models/yolov8n-shsa6.pt"]
