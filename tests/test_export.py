"""verify --export without torch: the export check as the report carries it, the runner's missing-package line."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import jsonschema
import pytest
from test_verify import SCHEMA, runner_output
from typer.testing import CliRunner

from yamlforge.check.export import RUNNER, add_export_check, check_format
from yamlforge.check.verify import VerifyReport
from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.targets import ULTRALYTICS, YOLOV9, Target

FACTS_84 = Target(root=Path("/r"), kind=ULTRALYTICS, version="8.4.190")


def load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_runner = importlib.import_module("yamlforge.runners.export_runner")  # the package spelling: siblings resolve


def export_answer(**check) -> dict:
    """What export_runner prints: import and build passed, then the export check."""
    raw = runner_output()
    raw["checks"] = raw["checks"][:2] + [{"name": "export", "hint": None, **check}]
    raw["notes"] = ["export.py:518 uses V6Detect, which this checkout does not define"]
    return raw


PASSED = {"status": "pass", "message": "m.onnx (wrapper exporter): max |diff| 3.05e-05 (within 4.80e-02)",
          "exporter": "wrapper", "onnx_file": "m.onnx", "torch_shape": [1, 84, 84], "onnx_shape": [1, 84, 84],
          "max_abs_diff": 3.05e-05, "tolerance": 0.048}
NOT_EXPORTABLE = {"status": "fail", "message": "layer 16 (SvdGate) does not export to ONNX: UnsupportedOperatorError",
                  "where": "/r/ultralytics/nn/modules/svd_gate.py:7", "layer": {"index": 16, "module": "SvdGate"}}


def export_report(monkeypatch, answer, stderr="") -> tuple[VerifyReport, list]:
    calls = []

    def fake_run(python, args, **kwargs):
        calls.append((args, kwargs))
        return answer, stderr

    monkeypatch.setattr("yamlforge.check.export.run_runner", fake_run)
    report = VerifyReport.from_runner(runner_output())
    add_export_check(report, FACTS_84, imgsz=64)
    return report, calls


def test_passing_export_is_carried_by_json_and_matches_schema(monkeypatch):
    report, calls = export_report(monkeypatch, export_answer(**PASSED))
    (args, kwargs), = calls
    assert kwargs["script"] == RUNNER and args[:2] == ["--mode", "export"] and args[-2:] == ["--imgsz", "64"]
    data = json.loads(report.to_json())
    jsonschema.validate(data, SCHEMA)
    assert data["ok"] and data["checks"][-1]["max_abs_diff"] == 3.05e-05 and data["checks"][-1]["tolerance"] == 0.048
    assert data["notes"] == ["export.py:518 uses V6Detect, which this checkout does not define"]


def test_failed_export_names_the_layer(monkeypatch):
    report, _ = export_report(monkeypatch, export_answer(**NOT_EXPORTABLE))
    assert report.failed_checks == ["export"]
    assert report.check("export").details["layer"] == {"index": 16, "module": "SvdGate"}
    jsonschema.validate(json.loads(report.to_json()), SCHEMA)


def test_build_failure_in_the_export_runner_becomes_the_export_check(monkeypatch):
    raw = runner_output()
    raw["checks"] = [raw["checks"][0], {"name": "build", "status": "fail", "message": "layer 3: boom", "hint": "h"}]
    report, _ = export_report(monkeypatch, raw)
    check = report.check("export")
    assert (check.status, check.message, check.hint) == ("fail", "build: layer 3: boom", "h")


@pytest.mark.parametrize(("answer", "message"), [
    (None, "the export subprocess printed no result"),
    ({"error": "ValueError: x", "internal_error": "tb"}, "the export subprocess crashed: ValueError: x"),
], ids=["silent", "crash"])
def test_runner_without_an_answer_fails_the_export_check(monkeypatch, answer, message):
    report, _ = export_report(monkeypatch, answer, stderr="line 1\nKilled")
    check = report.check("export")
    assert (check.status, check.message) == ("fail", message)
    assert check.details["stderr"].endswith("Killed")


def test_export_is_skipped_after_a_failed_check(monkeypatch):
    calls = []
    monkeypatch.setattr("yamlforge.check.export.run_runner", lambda *a, **k: calls.append(a))
    raw = runner_output()
    raw["checks"][2]["status"] = "fail"
    report = VerifyReport.from_runner(raw)
    add_export_check(report, FACTS_84, imgsz=64)
    assert report.check("export").status == "skip" and calls == []


def test_unknown_export_format_is_bad_input():
    check_format("onnx")
    check_format(None)
    with pytest.raises(YamlforgeError, match="--export tflite is not a format"):
        check_format("tflite")
    result = CliRunner().invoke(app, ["verify", "m.yaml", "--repo", ".", "--export", "tflite"])
    assert result.exit_code == 2 and "--export tflite" in result.output


# ------------------------------------------------------------------ runner pieces that need no torch


def test_missing_onnx_packages_are_one_line_with_the_pip_command(monkeypatch):
    present = {"onnxruntime"}
    monkeypatch.setattr(export_runner.importlib.util, "find_spec", lambda name: object() if name in present else None)
    report = export_runner.vr.Report()
    assert not export_runner.check_export(report, {}, "m.yaml", {}, model=None, imgsz=64)
    check, = report.data["checks"]
    assert check["message"] == f"onnx, onnxslim not installed in {sys.executable}"
    assert check["hint"] == f"{sys.executable} -m pip install onnx onnxslim"


def test_exporter_is_a_target_fact():
    assert export_runner.exporter_of(FACTS_84.runner_facts()) == "wrapper"
    yolov9 = Target(root=Path("/r9"), kind=YOLOV9, version=None).runner_facts()
    assert yolov9["export_script"] == "export.py" and export_runner.exporter_of(yolov9) == "script"
    assert set(export_runner.EXPORTERS) == {"wrapper", "script"}


def test_unordered_difference_matches_rows_regardless_of_order():
    import numpy as np

    queries = np.array([[[0.1, 0.2, 0.9, 1.0], [0.3, 0.4, 0.9, 2.0], [0.5, 0.5, 0.1, 0.0]]])
    assert export_runner.unordered_diff(queries[:, ::-1], queries) == 0.0
    moved = queries.copy()
    moved[0, 2, 0] += 0.25
    assert export_runner.unordered_diff(moved[:, ::-1], queries) == pytest.approx(0.25)  # its own row, moved


def test_fresh_copies_list_arguments_only():
    tensors = [1, 2]
    args = export_runner.fresh((tensors, "x"))
    assert args == ([1, 2], "x") and args[0] is not tensors


def test_a_missing_name_in_the_export_script_is_filled_once_with_a_note(tmp_path):
    script = tmp_path / "export.py"
    script.write_text("def run(**kwargs):\n    return isinstance(kwargs['m'], (int, V6Detect))\n")
    module = load_script(script, "export_script_under_test")
    report = export_runner.vr.Report()
    assert export_runner.run_filling_missing_names(report, module, m="not an int") is False
    note = ("export.py:2 uses V6Detect, which this checkout does not define (a bug in its export script); it ran "
            "with an empty class of that name")
    assert report.data["notes"] == [note]


def test_a_missing_name_outside_the_script_is_raised(tmp_path):
    script = tmp_path / "export.py"
    script.write_text("def run(**kwargs):\n    return kwargs['f']()\n")
    module = load_script(script, "export_script_under_test2")

    def undefined():
        return Undefined  # noqa: F821

    with pytest.raises(NameError):
        export_runner.run_filling_missing_names(export_runner.vr.Report(), module, f=undefined)
