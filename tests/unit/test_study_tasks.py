"""A study's task facts (study/tasks.py): the task of a base, its dataset check, its results.csv columns; no torch."""

from __future__ import annotations

import ast
import json
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.runners.train_runner import script_hyp
from yamlforge.runners.yf_train import SCRIPT_HYP
from yamlforge.scratch import pristine_checkout
from yamlforge.study.plan import Hyper, Plan, Variant, parse_options
from yamlforge.study.report import StudyRow, render, table_cells
from yamlforge.study.tasks import METRIC_COLUMNS, check_data_task, metric_columns, model_task
from yamlforge.study.trial import read_results


def head(module: str) -> str:
    return f"backbone:\n  - [-1, 1, Conv, [16, 3, 2]]\nhead:\n  - [[-1], 1, {module}, [nc]]\n"


@pytest.mark.parametrize(("name", "text", "task"), [
    ("yolov8n-seg", head("Detect"), "segment"),       # the name's suffix first, as gen-yaml resolves it
    ("yolo11n-pose.yaml", head("Pose"), "pose"),
    ("yolov8n", head("Detect"), "detect"),
    ("mine.yaml", head("Segment"), "segment"),         # a file without a suffix: its head
    ("yolov9-c.yaml", head("DualDDetect"), "detect"),  # YOLOv9's heads
    ("gelan-c-seg.yaml", head("DSegment"), "segment"),
    ("yolov8n-cls", head("Classify"), "classify"),
    ("mine.yaml", head("MyHead"), None),               # nothing says: no task check, detection columns
])
def test_the_task_of_a_base(name, text, task):
    assert model_task(name, text) == task


V8 = ["epoch", "metrics/mAP50(B)", "metrics/mAP50-95(B)"]
V8_SEG = [*V8, "metrics/mAP50(M)", "metrics/mAP50-95(M)"]
V5 = ["epoch", "metrics/mAP_0.5", "metrics/mAP_0.5:0.95"]
V5_SEG = ["epoch", "metrics/mAP_0.5(B)", "metrics/mAP_0.5:0.95(B)", "metrics/mAP_0.5(M)", "metrics/mAP_0.5:0.95(M)"]


@pytest.mark.parametrize(("task", "header", "columns"), [
    ("detect", V8, ("metrics/mAP50-95(B)", "metrics/mAP50(B)")),
    (None, V8, ("metrics/mAP50-95(B)", "metrics/mAP50(B)")),
    ("segment", V8_SEG, ("metrics/mAP50-95(M)", "metrics/mAP50(M)")),  # masks, not the boxes beside them
    ("detect", V5, ("metrics/mAP_0.5:0.95", "metrics/mAP_0.5")),
    ("segment", V5_SEG, ("metrics/mAP_0.5:0.95(M)", "metrics/mAP_0.5(M)")),
    ("segment", V8, None),  # a detection file for a segment row: no metric rather than the wrong one
])
def test_the_metric_columns_of_each_trainers_results_csv(task, header, columns):
    assert metric_columns(task, header) == columns


def test_the_ultralytics_columns_are_its_task2metric():
    source = (pristine_checkout("ultralytics", "8.4.190") / "ultralytics/cfg/__init__.py").read_text()
    task2metric = next(ast.literal_eval(node.value) for node in ast.parse(source).body
                       if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", None) == "TASK2METRIC")
    assert {task: pairs[0][0] for task, pairs in METRIC_COLUMNS.items()} == {
        task: task2metric[task] for task in METRIC_COLUMNS}


def test_a_yolov5_results_csv_is_read_with_its_padding(tmp_path):
    path = tmp_path / "results.csv"
    path.write_text(",".join(f"{name:>22}" for name in V5_SEG) + "\n"
                    + "\n".join(",".join(f"{v:>22}" for v in row) for row in [(0, 0.2, 0.1, 0.3, 0.15),
                                                                             (1, 0.4, 0.2, 0.5, 0.25)]) + "\n")
    result = read_results(path, "segment")
    assert (result.metric, result.map50, result.best_epoch, result.epochs) == (0.25, 0.5, 1, 2)
    assert read_results(tmp_path / "missing.csv", "segment") is None


def dataset(folder: Path, labels: list[str], **keys) -> tuple[Path, dict]:
    for n, text in enumerate(labels):
        (folder / "val" / "images").mkdir(parents=True, exist_ok=True)
        (folder / "val" / "labels").mkdir(parents=True, exist_ok=True)
        (folder / "val" / "images" / f"im{n}.png").write_bytes(b"")
        (folder / "val" / "labels" / f"im{n}.txt").write_text(text)
    raw = {"path": str(folder), "val": "val/images", "nc": 2, **keys}
    return folder / "data.yaml", raw


BOXES = "0 0.5 0.5 0.2 0.2\n1 0.3 0.3 0.1 0.1\n"
OUTLINE = "0 0.1 0.1 0.3 0.1 0.3 0.3 0.1 0.3\n"


@pytest.mark.parametrize(("task", "labels", "keys", "says"), [
    ("segment", [BOXES, BOXES], {}, "labels are boxes"),
    ("segment", [BOXES, OUTLINE], {}, None),  # one outline: a segmentation dataset with some boxes
    ("segment", [], {}, None),                # no labels found: the trainer's to report
    ("detect", [OUTLINE], {}, None),          # the trainers make boxes of outlines
    (None, [BOXES], {}, None),
    ("pose", [BOXES], {}, "no 'kpt_shape'"),
    ("pose", [BOXES], {"kpt_shape": [17, 3]}, None),
], ids=["seg-on-boxes", "seg-on-some-outlines", "seg-no-labels", "detect-on-outlines", "no-task", "pose-no-kpt",
        "pose"])
def test_a_dataset_of_another_task_is_refused(tmp_path, task, labels, keys, says):
    data, raw = dataset(tmp_path, labels, **keys)
    if says is None:
        check_data_task(task, data, raw)
        return
    with pytest.raises(YamlforgeError, match=says) as caught:
        check_data_task(task, data, raw)
    assert caught.value.exit_code == 2


def test_a_detection_dataset_for_a_seg_base_is_one_line_exit_2_and_nothing_written(genyaml_repo, tmp_path,
                                                                                     monkeypatch):
    monkeypatch.chdir(tmp_path)
    data, raw = dataset(tmp_path / "shapes", [BOXES])
    data.write_text(f"path: {raw['path']}\nval: val/images\ntrain: val/images\nnc: 2\n")
    result = CliRunner().invoke(app, ["ablate", "yolov8n-seg", "--repo", str(genyaml_repo), "--data", str(data),
                                      "--module", "SHSA", "--at", "6", "-o", "study"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith("error: the dataset's labels are boxes") and "segment base" in result.output
    assert not (tmp_path / "study").exists()


@pytest.mark.parametrize(("pairs", "options"), [
    (["nbs=8", "optimizer=SGD", "lr0=0.01", "mosaic=0.0"], {"nbs": 8, "optimizer": "SGD", "lr0": 0.01, "mosaic": 0.0}),
    (["cos_lr=true", "name=a=b"], {"cos_lr": True, "name": "a=b"}),
    ([], {}),
])
def test_set_options_are_yaml_scalars(pairs, options):
    assert parse_options(pairs) == options


def test_set_without_a_value_is_refused():
    with pytest.raises(YamlforgeError, match="--set takes KEY=VALUE"):
        parse_options(["nbs"])


def test_the_plans_task_and_trainer_options_survive_json_and_change_its_fingerprint():
    made = Plan("yolov8n-seg", "/repo", "/data.yaml", "ultralytics 8.4.190", (0,),
                Hyper(epochs=2, imgsz=64, options={"nbs": 4}), (Variant("base", (), "models/yolov8n-seg.yaml"),),
                "segment")
    again = Plan.from_dict(json.loads(json.dumps(made.to_dict())))
    assert (again.task, again.hyper.options, again.fingerprint) == ("segment", {"nbs": 4}, made.fingerprint)
    assert replace(made, hyper=Hyper(epochs=2, imgsz=64)).fingerprint != made.fingerprint


@pytest.mark.parametrize(("train_hyp", "default", "options", "written"), [
    (None, False, {"lr0": 0.02}, {**SCRIPT_HYP, "lr0": 0.02}),  # no file of the target's: verify's superset
    (None, True, {"mosaic": 0}, {"lr0": 0.01, "mosaic": 0}),     # the script's own default file
    ("hyp.mine.yaml", True, {}, {"lr0": 0.1, "mosaic": 1.0}),     # the target's own file (YOLOv7's, from yamlforge)
])
def test_a_train_py_trial_reads_its_options_as_hyperparameters(tmp_path, monkeypatch, train_hyp, default, options,
                                                               written):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "hyp.mine.yaml").write_text("lr0: 0.1\nmosaic: 1.0\n")
    if default:
        (tmp_path / "data" / "hyps").mkdir(parents=True)
        (tmp_path / "data" / "hyps" / "hyp.scratch-low.yaml").write_text("lr0: 0.01\nmosaic: 1.0\n")
    facts = {"root": str(tmp_path), "train_hyp": train_hyp and str(tmp_path / train_hyp)}
    assert yaml.safe_load(script_hyp(facts, options).read_text()) == written


def test_a_train_py_trial_refuses_an_option_its_hyperparameters_lack(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match="have no nbs"):
        script_hyp({"root": str(tmp_path), "train_hyp": None}, {"nbs": 4})


@pytest.mark.parametrize(("task", "labels"), [("segment", ["mask mAP50-95", "mask mAP50"]),
                                              ("classify", ["top-1", "top-5"]), (None, ["mAP50-95", "mAP50"])])
def test_the_table_names_the_figures_of_the_studys_task(task, labels):
    row = StudyRow("base", [], "done", 1, 1, metric=0.5, map50=0.7, task=task)
    header, body = table_cells([row])
    assert header[1:3] == labels and body[0][1:3] == ["0.5000", "0.7000"]
    assert render([row], "markdown").splitlines()[0].startswith(f"| variant | {labels[0]} | {labels[1]} |")
