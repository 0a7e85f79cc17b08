"""ablate's plan, noise rule and table, from files the tests write (no torch, no training)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.study.plan import Hyper, Plan, Variant, check_data, read_plan, write_plan
from yamlforge.study.plots import pareto_front
from yamlforge.study.report import StudyRow, render, study_rows, within_noise
from yamlforge.study.trial import Trial, next_step

HEADER = ("                  epoch,         train/box_loss,   metrics/precision(B),      metrics/mAP50(B),"
          "   metrics/mAP50-95(B)")  # 8.0's padded column names


def plan(**changes) -> Plan:
    variants = (Variant("base", (), "models/yolov8n.yaml"),
                Variant("SHSA-at6", ("--insert-after 6=SHSA",), "models/yolov8n-SHSA-at6.yaml"),
                Variant("SHSA-at40", ("--insert-after 40=SHSA",), None, "layer 40 does not exist"))
    made = Plan("yolov8n", "/repo", "/data.yaml", "ultralytics 8.4.190", (0, 1), Hyper(epochs=3, imgsz=64), variants)
    return replace(made, **changes)


def test_same_plan_same_fingerprint_and_it_survives_json():
    assert plan().fingerprint == plan().fingerprint
    assert Plan.from_dict(json.loads(json.dumps(plan().to_dict()))).fingerprint == plan().fingerprint


@pytest.mark.parametrize("changes", [
    {"seeds": (0,)}, {"hyper": Hyper(epochs=4, imgsz=64)}, {"hyper": Hyper(epochs=3, imgsz=64, deterministic=False)},
    {"data": "/other.yaml"}, {"target": "ultralytics 8.3.228"}, {"variants": plan().variants[:2]},
], ids=["seeds", "epochs", "deterministic", "data", "version", "variants"])
def test_a_different_plan_has_a_different_fingerprint(changes):
    assert plan(**changes).fingerprint != plan().fingerprint


def test_write_plan_keeps_the_same_plan_and_refuses_another(tmp_path):
    write_plan(plan(), {"models/yolov8n.yaml": "nc: 2\n"}, tmp_path)
    write_plan(plan(), {}, tmp_path)  # the same command again: carries on
    assert read_plan(tmp_path).fingerprint == plan().fingerprint
    assert (tmp_path / "models/yolov8n.yaml").read_text() == "nc: 2\n"
    with pytest.raises(YamlforgeError, match="holds a different study") as caught:
        write_plan(plan(seeds=(0, 1, 2)), {}, tmp_path)
    assert caught.value.exit_code == 2


@pytest.mark.parametrize(("difference", "spread_a", "spread_b", "expected"), [
    (0.01, 0.02, 0.005, True),   # inside the larger spread
    (0.02, 0.02, 0.005, True),   # on it
    (-0.03, 0.02, 0.01, False),  # beyond it, either sign
    (0.03, 0.01, 0.02, False),
    (0.0, None, 0.02, None),     # one seed: the spread is unknown
])
def test_noise_rule(difference, spread_a, spread_b, expected):
    assert within_noise(difference, spread_a, spread_b) is expected


def write_trial(out: Path, variant: Variant, seed: int, rows: list[tuple], status="done", **details) -> None:
    trial = Trial.of(out, variant, seed)
    trial.results_csv.parent.mkdir(parents=True)
    lines = [HEADER] + [",".join(f"{v:>22}" for v in row) for row in rows]
    trial.results_csv.write_text("\n".join(lines) + "\n")
    trial.record(status, seconds=10.0, **details)


def study(tmp_path: Path) -> Path:
    """Base: two seeds; SHSA-at6: one seed done, one failed; SHSA-at40 refused."""
    made = plan()
    write_plan(made, {}, tmp_path)
    base, shsa, _ = made.variants
    write_trial(tmp_path, base, 0, [(1, 1.5, 0.1, 0.20, 0.10), (2, 1.2, 0.2, 0.40, 0.30), (3, 1.1, 0.2, 0.35, 0.25)])
    write_trial(tmp_path, base, 1, [(1, 1.5, 0.1, 0.30, 0.20), (2, 1.2, 0.2, 0.30, 0.20), (3, 1.1, 0.2, 0.50, 0.40)])
    write_trial(tmp_path, shsa, 0, [(1, 1.5, 0.1, 0.45, 0.36)])
    write_trial(tmp_path, shsa, 1, [(1, 1.5, 0.1, "nan", "nan")], status="failed", reason="the metric is NaN")
    return tmp_path


def test_rows_are_the_trainers_numbers_at_each_trials_best_epoch(tmp_path):
    base, shsa, refused = study_rows(study(tmp_path))
    assert (base.metric, base.map50, base.best_epoch, base.epochs) == (pytest.approx(0.35), pytest.approx(0.45),
                                                                       [2, 3], [3, 3])
    assert base.metric_std == pytest.approx(0.0707107) and base.status == "done" and base.seconds == 20.0
    assert (shsa.metric, shsa.metric_std, shsa.seeds_done) == (0.36, None, 1)
    assert shsa.status == "failed: the metric is NaN"
    assert shsa.difference == pytest.approx(0.01) and shsa.noise is None  # one seed done: no claim
    assert refused.status == "refused: layer 40 does not exist" and refused.metric is None


def test_table_json_and_markdown(tmp_path):
    rows = study_rows(study(tmp_path))
    table = render(rows, "table").splitlines()
    assert table[0].split()[:3] == ["variant", "mAP50-95", "mAP50"]
    assert "0.3500 ± 0.0707" in table[1] and table[1].split()[-1] == "done"
    assert "+0.0100" in table[2] and table[2].split()[-1] == "failed"
    assert table[-1] == "SHSA-at40: refused: layer 40 does not exist"
    assert [row["variant"] for row in json.loads(render(rows, "json"))] == ["base", "SHSA-at6", "SHSA-at40"]
    assert render(rows, "markdown").splitlines()[1].startswith("| --- |")
    assert render(rows, "csv").splitlines()[1].startswith("base,,done,2,2,0.35")


def test_the_noise_rule_marks_a_row_inside_the_seed_spread(tmp_path):
    made = plan(variants=plan().variants[:2])
    write_plan(made, {}, tmp_path)
    base, shsa = made.variants
    for seed, (b, s) in enumerate([(0.30, 0.32), (0.40, 0.41)]):
        write_trial(tmp_path, base, seed, [(1, 1.0, 0.1, 0.5, b)])
        write_trial(tmp_path, shsa, seed, [(1, 1.0, 0.1, 0.5, s)])
    assert study_rows(tmp_path)[1].noise == "within noise"


def test_check_data_wants_a_val_split(tmp_path):
    with pytest.raises(YamlforgeError, match="cannot read"):
        check_data(tmp_path / "missing.yaml")
    (tmp_path / "data.yaml").write_text("train: images\nnc: 2\n")
    with pytest.raises(YamlforgeError, match="no 'val' split"):
        check_data(tmp_path / "data.yaml")


@pytest.mark.parametrize(("args", "says"), [
    (["--data", "missing.yaml"], "cannot read the dataset YAML"),
    (["--data", "noval.yaml"], "no 'val' split"),
    (["--at", "30,40"], "names no layer: the base has layers 0..22"),
    (["--at", "6,x"], "--at takes whole numbers"),
    (["--engine", "slurm"], "--engine slurm is not one of local"),
    (["--base", "yolov99n"], "yolov99n"),
], ids=["no-data", "no-val", "at-no-layer", "at-not-a-number", "engine", "base"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(genyaml_repo, tmp_path, monkeypatch, args, says):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "noval.yaml").write_text("train: images\n")
    (tmp_path / "data.yaml").write_text("train: images\nval: images\n")
    options = {"--base": "yolov8n", "--data": "data.yaml", "--at": "6", "--engine": "local"}
    options.update(zip(args[::2], args[1::2]))
    result = CliRunner().invoke(app, ["ablate", options.pop("--base"), "--repo", str(genyaml_repo), "--module",
                                      "SHSA", "-o", "study", *[x for pair in options.items() for x in pair]])
    assert result.exit_code == 2, result.output
    assert says in result.output and result.output.startswith("error: ")
    assert not (tmp_path / "study").exists()


def test_pareto_front_keeps_the_rows_no_other_beats():
    def row(name, gflops, metric):
        return StudyRow(name, [], "done", 1, 1, metric=metric, gflops=gflops)

    rows = [row("base", 8.1, 0.30), row("cheap-better", 8.0, 0.35), row("dear-better", 9.0, 0.40),
            row("dear-worse", 9.5, 0.20), row("twin", 9.0, 0.40), StudyRow("refused", [], "refused: no", 0, 1)]
    assert pareto_front(rows) == {"cheap-better", "dear-better", "twin"}


@pytest.mark.parametrize(("status", "checkpoint", "retry_failed", "step"), [
    ("done", True, True, "skip"),         # finished: never trained again
    ("failed", True, False, "skip"),      # failed: only with --retry-failed
    ("failed", True, True, "train"),      # ... and then from the start
    ("running", True, False, "resume"),   # interrupted with a last.pt: the trainer's own resume
    ("running", False, False, "train"),   # interrupted before its first checkpoint
    ("pending", False, False, "train"),
])
def test_what_a_rerun_does_with_each_trial(status, checkpoint, retry_failed, step):
    assert next_step({"status": status}, checkpoint, retry_failed=retry_failed) == step
