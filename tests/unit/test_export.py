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

from yamlforge.check.export import RUNNER, add_export_check, check_export_format
from yamlforge.check.verify import VerifyReport
from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.scratch import EXTRA_RELEASES, ULTRALYTICS_RELEASES
from yamlforge.target_python import RunnerAnswer
from yamlforge.targets import ULTRALYTICS, YOLOV9, Target

FACTS_84 = Target(root=Path("/r"), kind=ULTRALYTICS, version="8.4.190")


def load_script(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


export_runner = importlib.import_module("yamlforge.runners.export_runner")
yf_facts = importlib.import_module("yamlforge.runners.yf_facts")  # the package spelling: siblings resolve


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

    def fake_run(script, args, **kwargs):
        calls.append((args, {**kwargs, "script": script}))
        return RunnerAnswer(answer, stderr)

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
    check_export_format("onnx")
    check_export_format(None)
    with pytest.raises(YamlforgeError, match="--export tflite is not a format"):
        check_export_format("tflite")
    result = CliRunner().invoke(app, ["verify", "m.yaml", "--repo", ".", "--export", "tflite"])
    assert result.exit_code == 2 and "--export tflite" in result.output


# ------------------------------------------------------------------ runner pieces that need no torch


def test_missing_onnx_packages_are_one_line_with_the_pip_command(monkeypatch):
    present = {"onnxruntime"}
    monkeypatch.setattr(export_runner.importlib.util, "find_spec", lambda name: object() if name in present else None)
    report = yf_facts.Report()
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
    report = yf_facts.Report()
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
        export_runner.run_filling_missing_names(yf_facts.Report(), module, f=undefined)


# ------------------------------------------------------------------ the opset given to the exporter, the blame

NEW_TORCH = (10, 20)  # (newest symbolic_opsetN torch.onnx names, newest opset it exports): torch 2.14.1


def facts_at(version: str, kind=ULTRALYTICS) -> dict:
    return json.loads(json.dumps(Target(root=Path("/r"), kind=kind, version=version).runner_facts()))


@pytest.mark.parametrize(("version", "torch_opsets", "opset"), [
    ("8.0.35", NEW_TORCH, None),  # its configured default opset, not one derived from torch
    ("8.0.36", NEW_TORCH, 17),  # the first release with get_latest_opset
    ("8.3.100", NEW_TORCH, 17),  # the release
    ("8.3.202", NEW_TORCH, 17),  # the last one
    ("8.3.203", NEW_TORCH, None),  # best_onnx_opset: torch's own maximum
    ("8.4.190", NEW_TORCH, None),
    ("8.3.100", (18, 18), None),  # a torch naming every opset it exports: the exporter's own choice works
    ("8.3.100", (16, 16), None),  # a torch that cannot export opset 17
    ("8.3.100", (10, None), None),  # a torch that does not say what it exports
], ids=["8.0.35", "8.0.36", "8.3.100", "8.3.202", "8.3.203", "8.4.190", "torch-names-all", "torch-below-17",
        "torch-silent"])
def test_exporter_gets_the_fix_opset_only_where_its_own_choice_is_wrong(version, torch_opsets, opset):
    assert export_runner.fixed_opset(facts_at(version), *torch_opsets) == opset


def test_targets_without_an_opset_fix_keep_their_exporters_choice():
    assert YOLOV9.runtime.export_opset_fix is None
    assert export_runner.fixed_opset(facts_at("0.0.4", YOLOV9), *NEW_TORCH) is None


def test_opset_fix_names_exactly_the_cached_releases_whose_exporter_derives_the_opset_from_torch_names(pristine):
    """The fact against the releases' own code: the fix applies where the exporter calls get_latest_opset()."""
    releases = list(ULTRALYTICS_RELEASES) + [v for kind, v in EXTRA_RELEASES if kind == "ultralytics"]
    for version in releases:
        exporter = (pristine("ultralytics", version) / "ultralytics/engine/exporter.py").read_text(encoding="utf-8")
        fixed = export_runner.fixed_opset(facts_at(version), *NEW_TORCH) == 17
        assert fixed == ("get_latest_opset()" in exporter), version
    assert "8.3.100" in releases and "8.3.100" not in ULTRALYTICS_RELEASES  # cached, outside the supported matrix


def test_clean_copy_rebuilds_containers_and_clones_tensors():
    class Tensor:  # what clean_copy asks of a tensor
        def detach(self):
            return self

        def clone(self):
            return Tensor()

    tensor, options = Tensor(), {"k": [1]}
    args = ([tensor, tensor], (tensor,), options, "x")
    copied = export_runner.clean_copy(args)
    assert isinstance(copied, tuple) and isinstance(copied[0], list) and isinstance(copied[1], tuple)
    assert copied[0] is not args[0] and all(isinstance(t, Tensor) and t is not tensor for t in copied[0])
    assert copied[1][0] is not tensor and copied[2] == options and copied[2]["k"] is not options["k"]
    assert copied[3] == "x"


def test_whole_model_error_points_at_the_checkouts_code_not_at_the_library_below(tmp_path):
    root = tmp_path / "repo"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "block.py").write_text("import json\n\n\ndef forward(text):\n    return json.loads(text)\n")
    block = load_script(root / "pkg" / "block.py", "block_under_test")
    with pytest.raises(ValueError) as info:
        block.forward("{")
    assert export_runner.where_in_checkout(info.value, root) == f"{root / 'pkg' / 'block.py'}:5"
    outside = export_runner.where_in_checkout(info.value, tmp_path / "elsewhere")  # no frame in it: the deepest
    assert outside.startswith(str(Path(json.__file__).parent))


def test_every_onnx_output_is_compared_with_the_pytorch_output_of_its_shape():
    """Boxes and mask prototypes of a segmenter: PyTorch's extra outputs (feature maps, mask coefficients) are
    skipped, and a difference in the second output is the check's worst."""
    np = pytest.importorskip("numpy")
    boxes, prototypes = np.zeros((1, 116, 84)), np.ones((1, 32, 16, 16))
    references = [boxes, np.zeros((1, 64, 8, 8)), np.zeros((1, 32, 84)), prototypes]
    first = export_runner.compare_output("output0", boxes.copy(), references)
    second = export_runner.compare_output("output1", prototypes + 0.5, references)
    assert (first["torch_shape"], first["max_abs_diff"]) == ([1, 116, 84], 0.0)
    assert (second["torch_shape"], second["max_abs_diff"]) == ([1, 32, 16, 16], 0.5)
    missing = export_runner.compare_output("output2", np.zeros((1, 3)), references)
    assert missing["max_abs_diff"] is None and missing["unmatched"] == [[1, 64, 8, 8], [1, 32, 84]]
