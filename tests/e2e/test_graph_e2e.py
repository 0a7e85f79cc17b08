"""``graph`` on a real build the scenarios do not make: YOLOv9's GELAN-c on a RevCol backbone (``--backbone``).

The recipe models are drawn from their own builds in tests/e2e/test_scenarios_e2e.py, with the same checks.
"""

from __future__ import annotations

from pathlib import Path

from graph_checks import changed_rows, check_drawing
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.modelyaml.compile import GenRequest, compile_yaml, write_result
from yamlforge.modelyaml.edits import parse_backbone
from yamlforge.scratch import YOLOV9_RELEASE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def yamlforge(*args) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def test_gelan_c_on_a_revcol_tiny_backbone_drawn_from_a_real_build_on_yolov9(checkout_factory, tmp_path):
    repo = checkout_factory("yolov9", YOLOV9_RELEASE)
    yamlforge("apply", "--repo", repo, "--module", "revcol_tiny")
    result = compile_yaml(GenRequest(EXAMPLES / "models/gelan-c.yaml", backbone=parse_backbone("revcol_tiny"),
                                     repo=repo, output=tmp_path / "gelan-c-revcol.yaml"))
    write_result(result)
    model = result.output_path
    yamlforge("graph", model, "--repo", repo, "-o", tmp_path / "model.dot")  # the build: facts on the nodes
    nodes = check_drawing((tmp_path / "model.dot").read_text(), tmp_path / "model.svg", model,
                          changed_rows(result.rows))
    assert "0-3 revcol_tiny" in nodes["n0"]  # one node for the four slots, one port (and label) per output
    assert [level in nodes["n0"] for level in ("P2/4", "P3/8", "P4/16", "P5/32")] == [True] * 4
    assert "4 SPPELAN" in nodes["n4"] and "512 · P5/32" in nodes["n4"]  # reads the backbone's last output
