"""``yamlforge ablate`` on a real 8.4.190 checkout: yolov8n and SHSA at two positions, trained for real on a small
learnable synthetic dataset (3 epochs at 96 px: the base learns, its mAP is above 0), plus a placement gen-yaml
refuses."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from shapes_dataset import shapes_dataset
from study_tools import kill_when, written
from typer.testing import CliRunner

from yamlforge.cli import app

EPOCHS = 3
# What makes 24 images learnable in 3 epochs: an optimizer step per batch of 4 (nbs), no warmup and no mosaic (and
# no trainer plots: time the study does not need)
TRAINING = ["--batch", 4, "--workers", 0, "--seeds", 0, "--set", "nbs=4", "--set", "warmup_epochs=0", "--set",
            "mosaic=0", "--set", "optimizer=AdamW", "--set", "lr0=0.01", "--set", "plots=False"]


def ablate(*args) -> str:
    result = CliRunner().invoke(app, ["ablate", *map(str, args)])
    assert result.exit_code == 0, result.output
    return result.stdout


@pytest.fixture(scope="module")
def checkout(checkout_factory, tmp_path_factory):
    """8.4.190 with SHSA applied, and the synthetic dataset."""
    root = checkout_factory("ultralytics", "8.4.190")
    applied = CliRunner().invoke(app, ["apply", "--repo", str(root), "--module", "SHSA"])
    assert applied.exit_code == 0, applied.output
    return root, shapes_dataset(tmp_path_factory.mktemp("shapes"), count=24, imgsz=96)


def study_command(root: Path, data: Path, out: Path, *, at: str, epochs: int, imgsz: int = 96) -> list:
    return ["yolov8n", "--repo", root, "--data", data, "--module", "SHSA", "--at", at, "--epochs", epochs,
            "--imgsz", imgsz, *TRAINING, "-o", out, "--format", "json"]


@pytest.fixture(scope="module")
def study(checkout, tmp_path_factory):
    out = tmp_path_factory.mktemp("ablate") / "study"
    command = study_command(*checkout, out, at="6,15,40", epochs=EPOCHS)
    return out, command, json.loads(ablate(*command))


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
    assert rows[0]["metric"] > 0 and rows[0]["map50"] > 0  # the base learned something
    for row in rows[1:3]:
        assert row["difference"] == pytest.approx(row["metric"] - rows[0]["metric"])
    assert (out / "models" / "yolov8n-SHSA-at6.yaml").is_file()
    assert 0 < rows[0]["parameters"] < rows[1]["parameters"] and rows[0]["gflops"] > 0  # compare's numbers


def test_the_plots_are_png_files(study):
    from PIL import Image

    out, _, _ = study
    for name in ("metric_vs_gflops.png", "curves.png"):
        with Image.open(out / "plots" / name) as image:
            assert image.format == "PNG" and image.size == (900, 600)


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


def test_a_killed_study_resumes_its_interrupted_trial_from_last_pt(checkout, tmp_path):
    """SIGKILL to the driver and its trainer (the whole session, as a killed job) during the second trial; the rerun
    keeps the first and resumes the second with the trainer's own resume."""
    out, epochs = tmp_path / "study", 4
    command = ["ablate", *map(str, study_command(*checkout, out, at="6", epochs=epochs, imgsz=64))]
    driver = subprocess.Popen([sys.executable, "-m", "yamlforge", *command], start_new_session=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    second = out / "trials" / "SHSA-at6-s0" / "train"
    # killed right after the trainer finished writing a checkpoint: the next one is an epoch away
    kill_when(driver, lambda: written(second / "weights" / "last.pt"), session=True)
    first = out / "trials" / "base-s0" / "train" / "results.csv"
    first_mtime, epoch_one = first.stat().st_mtime_ns, (second / "results.csv").read_text().splitlines()[1]
    rows = json.loads(ablate(*command[1:]))
    assert first.stat().st_mtime_ns == first_mtime
    state = json.loads((out / "trials" / "SHSA-at6-s0" / "trial.json").read_text())
    assert state["status"] == "done" and state["resumed"] is True and state["restarted"] is None
    lines = (second / "results.csv").read_text().splitlines()
    assert lines[1] == epoch_one and len(lines) == 1 + epochs  # the epochs before the kill kept, the rest appended
    assert [(row["variant"], row["status"], row["epochs"]) for row in rows] == [
        ("base", "done", [epochs]), ("SHSA-at6", "done", [epochs])]
