"""A task the target does not ship is refused in one line naming those it ships: 8.0.227 has no OBB."""

from __future__ import annotations

import json
import shutil

from typer.testing import CliRunner

from yamlforge.cli import app

cli = CliRunner()


def test_verify_of_an_obb_model_on_a_release_without_obb_names_its_tasks(pristine, tmp_path):
    model = tmp_path / "yolov8n-obb.yaml"
    shutil.copy(pristine("ultralytics", "8.4.190") / "ultralytics/cfg/models/v8/yolov8-obb.yaml", model)
    result = cli.invoke(app, ["verify", str(model), "--repo", str(pristine("ultralytics", "8.0.227")), "--imgsz", "64",
                              "--json"])
    build = {c["name"]: c for c in json.loads(result.stdout)["checks"]}["build"]
    assert result.exit_code == 1 and build["status"] == "fail"
    assert build["message"] == ("the head OBB makes it a model of the obb task, and ultralytics 8.0.227 has no obb "
                                "task: it ships detect, segment, classify, pose")


def test_gen_yaml_of_an_obb_name_on_a_release_without_obb_names_its_tasks(pristine):
    result = cli.invoke(app, ["gen-yaml", "yolo11n-obb", "--repo", str(pristine("ultralytics", "8.0.227")),
                              "--dry-run"])
    assert result.exit_code != 0
    assert "ultralytics 8.0.227 has no obb task, so no model 'yolo11n-obb': it ships detect, segment, classify, " \
           "pose" in result.output
