"""``graph`` on real builds: recipe models built in 8.4.190, 8.0.227 and YOLOv9, their facts on the nodes, drawn."""

from __future__ import annotations

import re
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.graph import build_facts, graph_document, render
from yamlforge.scratch import YOLOV9_RELEASE
from yamlforge.targets import detect_target

pytestmark = pytest.mark.e2e

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PICTURE_FOR_REVIEW = Path("/tmp/helpers/graph-shsa.png")
SVG = "{http://www.w3.org/2000/svg}"


def yamlforge(*args) -> None:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output


def recipe_model(repo: Path, module: str, recipe: str, out: Path) -> Path:
    """apply ``module``, then gen-yaml the examples/ recipe into ``out``."""
    yamlforge("apply", "--repo", repo, "--module", module)
    model = out / recipe
    yamlforge("gen-yaml", "--recipe", EXAMPLES / recipe, "--repo", repo, "-o", model)
    return model


def drawn_svg(dot: str, path: Path) -> tuple[dict[str, str], set[str]]:
    """The SVG Graphviz drew: node name -> its text (the legend left out), and every edge as ``producer->reader``
    (an SVG edge title names no port; test_graph.py checks the ports in the DOT)."""
    svg = ET.parse(render(dot, path)).getroot()
    groups = [(g.get("class"), g.findtext(f"{SVG}title"), g) for g in svg.iter(f"{SVG}g")]
    nodes = {title: " ".join(t.text or "" for t in g.iter(f"{SVG}text")) for kind, title, g in groups
             if kind == "node" and not title.startswith("legend_")}
    return nodes, {re.sub(r":[^-]*->", "->", title) for kind, title, _ in groups if kind == "edge"}


def test_shsa_model_drawn_from_a_real_build(checkout_factory, tmp_path):
    repo = checkout_factory("ultralytics", "8.4.190")
    model = recipe_model(repo, "SHSA", "rtdetr-l-SHSA.yaml", tmp_path)
    target = detect_target(repo)
    facts = build_facts(model, target)
    dot = graph_document(model, target, base="rtdetr-l", facts=facts)
    png = render(dot, tmp_path / "shsa.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if PICTURE_FOR_REVIEW.parent.is_dir():
        shutil.copy(png, PICTURE_FOR_REVIEW)
    nodes, edges = drawn_svg(dot, tmp_path / "shsa.svg")
    assert set(nodes) == {"input"} | {f"n{row['index']}" for row in facts}
    assert "4 SHSA" in nodes["n4"] and "512 · P3/8" in nodes["n4"]  # channels kept, stride of stage 2
    assert "2048 · P5/32" in nodes["n10"]  # stage 4: the widest, coarsest map of the backbone
    assert {"n3->n4", "n4->n5", "n4->n20"} <= edges  # SHSA reads stage 2; its old readers read SHSA


@pytest.mark.parametrize("version", ["8.4.190", "8.0.227"])
def test_revcol_backbone_is_one_node_with_a_port_per_real_output(checkout_factory, tmp_path, version):
    repo = checkout_factory("ultralytics", version)
    model = recipe_model(repo, "revcol_tiny", "yolov8s-revcol.yaml", tmp_path)
    target = detect_target(repo)
    facts = build_facts(model, target)
    nodes, edges = drawn_svg(graph_document(model, target, base="yolov8s", facts=facts), tmp_path / "g.svg")
    assert set(nodes) == {"input"} | {f"n{row['index']}" for row in facts}
    assert [level in nodes["n0"] for level in ("P2/4", "P3/8", "P4/16", "P5/32")] == [True] * 4
    assert {e for e in edges if e.startswith("n0->")} == {"n0->n4", "n0->n5", "n0->n8", "n0->n14"}  # yolov8's neck


def test_gelan_riformer_on_yolov9(checkout_factory, tmp_path):
    repo = checkout_factory("yolov9", YOLOV9_RELEASE)
    model = recipe_model(repo, "RIFormerBlock", "gelan-c-RIFormerBlock.yaml", tmp_path)
    target = detect_target(repo)
    facts = build_facts(model, target)
    nodes, _ = drawn_svg(graph_document(model, target, base=EXAMPLES / "models/gelan-c.yaml", facts=facts),
                         tmp_path / "g.svg")
    assert set(nodes) == {"input"} | {f"n{row['index']}" for row in facts}
    assert "6 RIFormerBlock" in nodes["n6"] and "512 · P4/16" in nodes["n6"]
