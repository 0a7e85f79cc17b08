"""``graph`` as a library, without torch: the recipe models of examples/ on a copy of 8.4.190, synthetic build facts.

The drawings are checked by tests/lib/graph_checks.py (the SVG and Graphviz's JSON layout of the DOT, drawn by the
graphviz-pure ./scripts/setup installs) and node labels as the XML they are, never by comparing whole files.
"""

from __future__ import annotations

import os
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from graph_checks import (
    SLOTS,
    changed_rows,
    check_drawing,
    edges_of,
    label,
    laid_out,
    model_rows,
    nodes_of,
    slot_numbers,
)
from ruamel.yaml import YAML
from typer.testing import CliRunner

from yamlforge.check.draw import STATUS_COLORS, graph_document, layout, output_labels, render, report_facts
from yamlforge.check.verify import VerifyReport
from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.compile import GenRequest, compile_yaml, write_result
from yamlforge.patch.manifest import MANIFEST, AppliedModule, Manifest
from yamlforge.targets import detect_target

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
# every recipe whose layers an Ultralytics 8.4.190 checkout knows (YOLOv7's IDetect and SPPCSPC it does not)
RECIPES = sorted(p.name for p in EXAMPLES.glob("*.yaml") if not p.name.startswith("yolov7"))
SPEC_MODULES = ("SHSA", "ResidualWrap", "token_mixer", "BiLevelRoutingAttention", "RIFormerBlock", "revcol_small",
                "revcol_tiny")


@pytest.fixture
def repo(genyaml_repo):
    manifest = Manifest(target="ultralytics", modules={
        n: AppliedModule(spec_digest="0", exports=[n], role="layer", channels="keep", file=f"{n.lower()}.py")
        for n in SPEC_MODULES})
    (genyaml_repo / MANIFEST).parent.mkdir(parents=True, exist_ok=True)
    (genyaml_repo / MANIFEST).write_text(manifest.to_text())
    return genyaml_repo


def generate(repo: Path, recipe: str, out: Path):
    """gen-yaml of an examples/ recipe into ``out``: (model path, gen-yaml's result)."""
    result = compile_yaml(GenRequest(base=None, recipe=EXAMPLES / recipe, repo=repo, output=out / "model.yaml"))
    write_result(result)
    return result.output_path, result


def synthetic_facts(rows: list[list]) -> list[dict]:
    """What the verify runner reports, made up: a K-output row has K maps (strides 4, 8, ...), others 64 at /8."""
    facts = []
    for slot, row in zip(slot_numbers(rows), rows):
        k = SLOTS.get(row[2], 1)
        if k > 1:
            facts.append({"index": slot, "shape": [[2, 32 << j, 64 >> j, 64 >> j] for j in range(k)],
                          "stride": [4 << j for j in range(k)]})
        else:
            facts.append({"index": slot, "shape": [2, 64, 32, 32], "stride": 8})
    return facts


@pytest.mark.parametrize("recipe", RECIPES)
def test_recipe_model_drawn_a_node_per_row_an_edge_per_from_and_gen_yamls_changes_highlighted(repo, tmp_path,
                                                                                              recipe):
    model, result = generate(repo, recipe, tmp_path)
    rows = model_rows(model)
    facts = synthetic_facts(rows)
    dot = graph_document(model, detect_target(repo), base=result.base_path, facts=facts)
    changed = changed_rows(result.rows)
    texts = check_drawing(dot, tmp_path / "g.svg", model, changed, facts)
    assert [texts[f"n{slot}"].split()[1] for slot in slot_numbers(rows)] == [row[2] for row in rows]
    doc = laid_out(dot)
    nodes = nodes_of(doc)
    clusters = {o["name"]: set(o.get("nodes", [])) for o in doc["objects"] if "nodes" in o}
    backbone_ids = {nodes[f"n{s}"]["_gvid"] for s in slot_numbers(rows)[:len(YAML(typ="safe").load(
        model.read_text())["backbone"])]}
    assert clusters["cluster_backbone"] == backbone_ids
    legend = {o["name"] for o in doc["objects"]} & {f"legend_{s}" for s in STATUS_COLORS}
    assert legend == {f"legend_{s}" for s in changed.values()}


def test_multi_output_backbone_is_one_node_with_a_port_per_output(repo, tmp_path):
    model, _ = generate(repo, "rtdetr-l-revcol.yaml", tmp_path)
    rows = model_rows(model)
    doc = laid_out(graph_document(model, detect_target(repo), facts=synthetic_facts(rows)))
    ports = label(nodes_of(doc)["n0"]).findall(".//TD[@PORT]")
    texts = [" ".join("".join(p.itertext()).split()) for p in ports]
    assert texts == ["32 · P2/4", "64 · P3/8", "128 · P4/16", "256 · P5/32"]
    assert {port for producer, port, _ in edges_of(doc) if producer == "n0"} == {1, 2, 3}  # the head reads P3-P5


def test_base_recorded_by_gen_yaml_is_the_default(repo, tmp_path):
    model, result = generate(repo, "rtdetr-l-SHSA.yaml", tmp_path)
    target = detect_target(repo)
    first = model.read_text().splitlines()[0]
    assert first.startswith("# yamlforge: gen-yaml base=") and (model.parent / first.split("=", 1)[1]).resolve() \
        == result.base_path
    names = {o["name"] for o in laid_out(graph_document(model, target))["objects"]}
    assert {"cluster_legend", "legend_new", "legend_rewired"} <= names
    model.write_text(model.read_text().partition("\n")[2])  # without the record: nothing to compare with
    assert "legend" not in graph_document(model, target)


def test_model_against_itself_highlights_nothing(repo, tmp_path):
    model, _ = generate(repo, "yolov8n-BiLevelRoutingAttention.yaml", tmp_path)
    doc = laid_out(graph_document(model, detect_target(repo), base=model))
    assert {label(n).get("BGCOLOR") for n in nodes_of(doc).values() if n["name"].startswith("n")} == {"white"}
    assert "legend_same" in {o["name"] for o in doc["objects"]}


@pytest.mark.parametrize(("row", "outputs", "expected"), [
    (None, 1, [""]),
    ({"shape": [2, 512, 80, 80], "stride": 8}, 1, ["512 · P3/8"]),
    ({"shape": [2, 64, 20, 20], "stride": 3.2}, 1, ["64 · 16/5"]),
    ({"shape": [2, 256, 400], "stride": None}, 1, ["256×400"]),  # a token sequence: no stride
    ({"shape": [[2, 64, 16, 16], [2, 80, 8, 8]], "stride": None}, 1, [""]),  # Detect's list of maps
    ({"shape": [[2, 32, 16, 16], [2, 64, 8, 8]], "stride": [4, 8]}, 2, ["32 · P2/4", "64 · P3/8"]),
    ({"shape": [[2, 32, 16, 16], [2, 64, 8, 8]], "stride": None}, 2, ["", ""]),
], ids=["no-facts", "map", "odd-stride", "sequence", "detect", "backbone", "backbone-no-strides"])
def test_output_labels(row, outputs, expected):
    assert output_labels(row, outputs) == expected


def test_dot_is_written_without_graphviz_and_svg_needs_it(monkeypatch, tmp_path):
    monkeypatch.setattr("yamlforge.check.draw.find_renderer", lambda: None)
    assert render("digraph { a }", tmp_path / "g.dot").read_text() == "digraph { a }"
    with pytest.raises(YamlforgeError, match="no Graphviz") as info:
        render("digraph { a }", tmp_path / "g.svg")
    assert "pip install graphviz-pure" in info.value.hint and not (tmp_path / "g.svg").exists()


def test_pdf_from_graphviz_pure_and_unknown_suffix_are_one_error(monkeypatch, tmp_path):
    monkeypatch.setattr("yamlforge.check.draw.find_renderer",
                        lambda: (Path("/venv/bin/graphviz-pure"), ("svg", "png")))
    with pytest.raises(YamlforgeError, match=r"graphviz-pure draws \.svg, \.png, not \.pdf"):
        render("digraph { a }", tmp_path / "g.pdf")
    with pytest.raises(YamlforgeError, match="the picture is .svg, .png, .pdf or .dot"):
        render("digraph { a }", tmp_path / "g.jpg")


@pytest.fixture
def no_system_dot(monkeypatch, tmp_path):
    """A PATH without any ``dot``: what is drawn, graphviz-pure next to this Python draws."""
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    return os.environ["PATH"]


def test_graphviz_pure_is_the_dot_the_graphviz_package_runs_while_it_draws(no_system_dot):
    drawn = layout("digraph { a -> b }", "svg")
    assert b"(graphviz-pure)" in drawn.split(b"<svg", 1)[0]  # its "Generated by" comment
    svg = ET.fromstring(drawn)
    assert {t.text for t in svg.iter("{http://www.w3.org/2000/svg}title")} >= {"a", "b"}
    assert os.environ["PATH"] == no_system_dot


def test_dot_that_fails_is_one_line_error_and_path_is_restored(no_system_dot, tmp_path):
    with pytest.raises(YamlforgeError, match=r"could not draw g\.svg: Error: <stdin>: syntax error") as info:
        render("digraph { a ->", tmp_path / "g.svg")
    assert info.value.hint == "-o g.dot writes the graph without Graphviz" and not (tmp_path / "g.svg").exists()
    assert os.environ["PATH"] == no_system_dot


def test_dot_that_cannot_run_and_missing_graphviz_package_are_one_error(no_system_dot, monkeypatch):
    monkeypatch.setattr("yamlforge.check.draw.find_renderer", lambda: (Path("/gone/bin/dot"), ("svg", "png", "pdf")))
    with pytest.raises(YamlforgeError, match=r"/gone/bin/dot could not be run to draw g\.svg") as info:
        layout("digraph { a }", "svg", name="g.svg")
    assert "pip install graphviz-pure" in info.value.hint and os.environ["PATH"] == no_system_dot
    monkeypatch.setitem(sys.modules, "graphviz", None)  # as if the graph extra were not installed
    with pytest.raises(YamlforgeError, match="drawing needs the graphviz package"):
        layout("digraph { a }", "svg")


def test_report_facts_give_a_multi_output_row_a_stride_per_output():
    layers = [{"index": 0, "shape": [[2, 32, 16, 16], [2, 64, 8, 8]], "stride": None},
              {"index": 4, "shape": [2, 64, 8, 8], "stride": 8},
              {"index": 5, "shape": [[2, 64, 8, 8], [2, 80, 4, 4]], "stride": None, "module": "Detect"}]
    report = VerifyReport(target={}, yaml="m.yaml", imgsz=64, batch=1, python="python", checks=[], layers=layers)
    facts = report_facts(report)
    assert [f["stride"] for f in facts] == [[4, 8], 8, [8, 16]]
    assert output_labels(facts[0], 2) == ["32 · P2/4", "64 · P3/8"] and output_labels(facts[2], 1) == [""]
    assert report.layers[0]["stride"] is None  # the report itself is left as the runner wrote it


def test_graph_command_draws_the_model_with_its_build_facts(repo, tmp_path, monkeypatch):
    model, _ = generate(repo, "rtdetr-l-SHSA.yaml", tmp_path)
    monkeypatch.setattr("yamlforge.check.draw.build_facts", lambda path, target, python=None: synthetic_facts(
        model_rows(path)))
    result = CliRunner().invoke(app, ["graph", str(model), "--repo", str(repo), "--base", "rtdetr-l"])
    assert result.exit_code == 0, result.output
    svg = ET.parse(model.with_suffix(".svg")).getroot()
    assert "legend_new" in {g.findtext("{http://www.w3.org/2000/svg}title") for g in svg.iter()}
    failed = CliRunner().invoke(app, ["graph", str(model), "--repo", str(repo), "-o", str(tmp_path / "m.jpg")])
    assert failed.exit_code == 2 and "error: cannot draw 'm.jpg'" in failed.output


def test_gen_yaml_graph_draws_the_yaml_it_wrote(repo, tmp_path, monkeypatch):
    monkeypatch.setattr("yamlforge.check.draw.build_facts", lambda path, target, python=None: synthetic_facts(
        model_rows(path)))
    out = tmp_path / "model.yaml"
    result = CliRunner().invoke(app, ["gen-yaml", "rtdetr-l", "--insert-after", "3=SHSA", "--repo", str(repo),
                                      "-o", str(out), "--graph", str(tmp_path / "model.dot")])
    assert result.exit_code == 0, result.output
    doc = laid_out((tmp_path / "model.dot").read_text())
    assert set(nodes_of(doc)) == {"input"} | {f"n{s}" for s in slot_numbers(model_rows(out))}
    assert "legend_new" in {o["name"] for o in doc["objects"]}  # against the base gen-yaml recorded


def test_gen_yaml_graph_with_dry_run_is_refused(repo, tmp_path):
    result = CliRunner().invoke(app, ["gen-yaml", "rtdetr-l", "--insert-after", "3=SHSA", "--repo", str(repo),
                                      "--dry-run", "--graph", str(tmp_path / "model.svg")])
    assert result.exit_code == 2 and "needs the file written (--graph)" in result.output
    assert not (tmp_path / "model.svg").exists()
