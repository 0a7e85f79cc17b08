"""verify --export onnx on Ultralytics 8.3.100, whose exporter picks opset 9 under new torch: a block that pads by a
computed amount exports with the opset fix; the layer search blames the layer that fails alone with the exporter's
opset, never Detect for its own rewrite of its input list (a block that cannot export at all: test_export_e2e.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import run_in_checkout
from test_export_e2e import FIXTURES, IMGSZ, export_check, verify_export
from typer.testing import CliRunner

from yamlforge.check.export import RUNNER
from yamlforge.cli import app
from yamlforge.scratch import EXTRA_RELEASES

VERSION = "8.3.100"  # cached as one of scratch.EXTRA_RELEASES, outside the supported matrix
cli = CliRunner()


def invoke(*args) -> None:
    result = cli.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


@pytest.fixture(scope="module")
def repo(checkout_factory) -> Path:
    """An 8.3.100 checkout with the padding block applied."""
    assert ("ultralytics", VERSION) in EXTRA_RELEASES
    repo = checkout_factory("ultralytics", VERSION)
    invoke("apply", "--repo", repo, "--spec", FIXTURES / "pad_to_window.yaml")
    return repo


@pytest.fixture(scope="module")
def padded(repo, tmp_path_factory) -> Path:
    """yolov8n with the block inserted after layer 15, where the issue inserted BiLevelRoutingAttention."""
    out = tmp_path_factory.mktemp("blame-models") / "yolov8n-PadToWindow.yaml"
    invoke("gen-yaml", "yolov8n", "--insert-after", "15=PadToWindow", "--repo", repo, "-o", out)
    return out


def test_block_padding_by_a_computed_amount_exports_with_opset_17_on_8_3_100(repo, padded):
    report = verify_export(padded, repo)
    check = export_check(report)
    assert report["ok"], json.dumps(report["checks"], indent=1)
    assert check["opset"] == 17 and 0 <= check["max_abs_diff"] <= check["tolerance"]
    note, = (n for n in report["notes"] if "opset" in n)
    assert note.startswith(f"exported with ONNX opset 17 instead of ultralytics {VERSION}'s own choice, as torch ")
    assert "names opsets up to 10 only: the exporter takes the newest opset" in note and "get_latest_opset" in note


# Run in the target's Python after RUNNERS, PADDED, IMGSZ: the layer search with the opset 8.3.100's exporter picks by
# itself under this torch (9), on the stock model and on the padding block's model.
SEARCH = """
import json, sys
from pathlib import Path

sys.path.insert(1, RUNNERS)  # export_runner imports its siblings as top-level modules
import export_runner as er
import yf_facts
from ultralytics import YOLO
from ultralytics.nn.tasks import yaml_model_load

stock, padded = YOLO("yolov8n.yaml").model, YOLO(PADDED).model
detect = stock.model[-1]
recorded = er.recorded_inputs(stock, IMGSZ)[len(stock.model) - 1][0]
layer, exc = er.first_unexportable_layer(padded, IMGSZ, 9)
try:  # an error from the checkout's code, with a model whose every layer exports alone
    yaml_model_load("missing.yaml")
except FileNotFoundError as whole_exc:
    report = yf_facts.Report()
    er.report_export_failure(report, whole_exc, stock, IMGSZ, "wrapper", [9], Path.cwd())
print(json.dumps({
    "detect": type(detect).__name__,
    "recorded": [t.shape[1] for t in recorded],
    "expected": [branch[0].conv.in_channels for branch in detect.cv2],
    "padded": {**layer, "error": yf_facts.one_line(exc)},
    "stock": report.data["checks"][-1],
}))
"""


@pytest.fixture(scope="module")
def search(repo, padded) -> dict:
    values = f"RUNNERS, PADDED, IMGSZ = {str(RUNNER.parent)!r}, {str(padded)!r}, {IMGSZ}\n"
    result = run_in_checkout(repo, values + SEARCH)
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_detect_is_never_blamed_for_rewriting_its_input_list(search, repo):
    # the recorded input is the list Detect was called with, not the one it overwrote with its outputs
    assert search["detect"] == "Detect" and search["recorded"] == search["expected"] == [64, 128, 256]
    # so every layer of the stock model, Detect included, exports alone with opset 9: the whole-model error stands
    stock = search["stock"]
    assert stock["layer"] is None and stock["opset"] == 9
    assert stock["message"].startswith("the wrapper ONNX export failed: FileNotFoundError: ")
    assert stock["message"].endswith("(no layer fails to export on its own with opset 9)")
    assert Path(stock["where"].rsplit(":", 1)[0]).is_relative_to(repo)  # the checkout's line, not a library's


def test_the_block_that_fails_alone_with_the_exporters_opset_is_blamed(search, repo):
    padded = search["padded"]
    assert (padded["index"], padded["module"]) == (16, "PadToWindow")
    assert padded["error"].startswith("SymbolicValueError: Unsupported: ONNX export of Pad in opset 9.")
    file, line = padded["where"].rsplit(":", 1)
    assert Path(file) == repo / "ultralytics/nn/modules/pad_to_window.py"
    assert Path(file).read_text().splitlines()[int(line) - 1].startswith("class PadToWindow(")
