"""The five recipe scenarios end to end on real checkouts: apply, gen-yaml from examples/, verify with smoke training,
graph drawn from that build."""

from __future__ import annotations

import io
import os
import shutil
from pathlib import Path

import pytest
from graph_checks import changed_rows, check_drawing
from rich.console import Console
from ruamel.yaml import YAML
from typer.testing import CliRunner

from yamlforge.check.draw import graph_document, render, report_facts
from yamlforge.check.verify import VerifyReport, render_report, verify
from yamlforge.cli import app
from yamlforge.modelyaml.compile import GenRequest, compile_yaml
from yamlforge.modelyaml.edits import parse_backbone
from yamlforge.patch.manifest import read_manifest
from yamlforge.scratch import YOLOV9_RELEASE
from yamlforge.targets import detect_target

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ULTRALYTICS = ("8.4.190", "8.0.227")  # the newest supported release and the one the BiFormer recipe was written for
IMGSZ = 64  # the smoke training proves the loop, the reload and the loss; the image size does not matter for that
# RT-DETR's decoder picks its 300 queries among the P3-P5 anchors: 84 at 64x64. 8.4 clamps to the anchor count,
# 8.0.227's topk fails ("selected index k out of range"), so its RT-DETR scenarios run at 128 (336 anchors).
RTDETR_IMGSZ = {"8.4.190": IMGSZ, "8.0.227": 128}
# Ultralytics 8.0 prints no GFLOPs for stock RT-DETR (its 32x32 estimate fails in the decoder): verify warns and
# names this fix, which RT-DETR recipes apply with their module, so their flops check passes on every version.
RTDETR_FIX = ("--fix", "flops")
# Set to a file path to keep the PNG scenario b draws (to look at it: the picture the README shows).
KEEP_PNG = "YAMLFORGE_TEST_KEEP_PNG"
cli = CliRunner()


@pytest.fixture(scope="module")
def checkout(checkout_factory):
    """``checkout(kind, version)``: one writable copy per release for the whole module; each scenario applies its own
    module to it (apply adds to what is applied), so no scenario depends on another having run."""
    made: dict[tuple[str, str], Path] = {}

    def get(kind: str, version: str) -> Path:
        if (kind, version) not in made:
            made[kind, version] = checkout_factory(kind, version)
        return made[kind, version]

    return get


def run(*args) -> str:
    result = cli.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"yamlforge {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}"
    return result.output


def apply_module(repo: Path, module: str, *extra) -> None:
    run("apply", "--repo", repo, "--module", module, *extra)
    manifest = read_manifest(repo)
    assert manifest is not None and module in manifest.applied_names


def gen_yaml(repo: Path, recipe: str, out: Path, *extra) -> tuple[Path, dict]:
    """``yamlforge gen-yaml --recipe examples/<recipe>`` into ``out``; the written file and its rows."""
    out.mkdir(exist_ok=True)
    before = set(out.glob("*.yaml"))
    run("gen-yaml", "--recipe", EXAMPLES / recipe, "--repo", repo, "-o", out, *extra)
    written = sorted(set(out.glob("*.yaml")) - before)
    assert len(written) == 1, written
    return written[0], YAML(typ="safe", pure=True).load(written[0].read_text())


def rows(model: dict) -> list[list]:
    return list(model["backbone"]) + list(model["head"])


def rendered(report: VerifyReport) -> str:
    buffer = io.StringIO()
    render_report(report, Console(file=buffer, width=160, no_color=True, soft_wrap=True))
    return buffer.getvalue()


def verify_trained(model: Path, repo: Path, module: str, imgsz: int = IMGSZ) -> VerifyReport:
    """verify --train at a small size: every check passes, the smoke training and the reload(s) included."""
    target = detect_target(repo)
    report = verify(model, target, imgsz=imgsz, batch=2, train=True)
    text = rendered(report)
    assert report.ok, text
    status = {c.name: c.status for c in report.checks}
    expected = ["import", "build", "forward", "flops", "backward", "train", "reload"]
    if target.version and target.version.startswith("8.4"):
        expected.append("safe_reload")  # 8.4's restricted loader (ULTRALYTICS_SAFE_LOAD=1) must load it too
    else:
        assert "safe_reload" not in status, text  # older releases have no restricted loader
    assert {name: status.get(name) for name in expected} == dict.fromkeys(expected, "pass"), text
    if target.kind.runtime.trainer == "wrapper":  # Ultralytics: the wrapper class is chosen by the head
        wrapper = "RTDETR" if report.layers[-1]["module"] == "RTDETRDecoder" else "YOLO"
        assert f"with {wrapper}.train" in next(c.message for c in report.checks if c.name == "train"), text
    assert module in {row["module"] for row in report.layers}, text  # the module is in the model that was built
    return report


def drawn(repo: Path, model: Path, report: VerifyReport, recipe: str, backbone: str | None = None) -> dict[str, str]:
    """``graph`` of ``model`` from the scenario's own build (``report.layers``), checked by tests/lib/graph_checks.py
    against the written YAML and the rows gen-yaml reports for the recipe; node name -> its text in the SVG."""
    plan = compile_yaml(GenRequest(None, backbone=backbone and parse_backbone(backbone), recipe=EXAMPLES / recipe,
                                   repo=repo, output=model.parent / "plan" / model.name))  # not written
    facts = report_facts(report)
    dot = graph_document(model, detect_target(repo), facts=facts)  # against the base gen-yaml recorded
    return check_drawing(dot, model.parent / "graph.svg", model, changed_rows(plan.rows), facts)


# ---------------------------------------------------------------- a, b, d: layer modules in Ultralytics models


@pytest.mark.parametrize("version", ULTRALYTICS)
def test_a_rtdetr_l_with_bhvit_token_mixer_trains(checkout, tmp_path, version):
    repo = checkout("ultralytics", version)
    apply_module(repo, "token_mixer", *RTDETR_FIX)
    path, model = gen_yaml(repo, "rtdetr-l-token_mixer.yaml", tmp_path)
    assert rows(model)[3] == [-1, 1, "token_mixer", []]  # stage 2's HGBlock replaced, numbering unchanged
    assert rows(model)[-1][0] == [21, 24, 27]
    report = verify_trained(path, repo, "token_mixer", RTDETR_IMGSZ[version])
    # a token mixer keeps the width it reads (DWConv's 128), not the 512 of the HGBlock it replaces
    assert "128 · P3/8" in drawn(repo, path, report, "rtdetr-l-token_mixer.yaml")["n3"]


@pytest.mark.parametrize("version", ULTRALYTICS)
def test_b_rtdetr_l_with_shsa_trains(checkout, tmp_path, version):
    repo = checkout("ultralytics", version)
    apply_module(repo, "SHSA", "--module", "ResidualWrap", *RTDETR_FIX)
    path, model = gen_yaml(repo, "rtdetr-l-SHSA.yaml", tmp_path)
    # after layer 3 in its residual form (x + SHSA(x)), SHSA's spec defaults written out
    assert rows(model)[4] == [-1, 1, "ResidualWrap", ["SHSA", 16, "None"]]
    assert rows(model)[-1][0] == [22, 25, 28]
    report = verify_trained(path, repo, "ResidualWrap", RTDETR_IMGSZ[version])
    nodes = drawn(repo, path, report, "rtdetr-l-SHSA.yaml")
    assert "4 ResidualWrap" in nodes["n4"] and "512 · P3/8" in nodes["n4"]  # channels kept, stride of stage 2
    assert "2048 · P5/32" in nodes["n10"]  # stage 4: the widest, coarsest map of the backbone
    png = render(graph_document(path, detect_target(repo), facts=report_facts(report)), tmp_path / "shsa.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    if os.environ.get(KEEP_PNG):
        shutil.copy(png, os.environ[KEEP_PNG])


@pytest.mark.parametrize("version", ULTRALYTICS)
def test_d_yolov8n_with_biformer_after_layer_15_trains(checkout, tmp_path, version):
    repo = checkout("ultralytics", version)
    apply_module(repo, "BiLevelRoutingAttention")
    path, model = gen_yaml(repo, "yolov8n-BiLevelRoutingAttention.yaml", tmp_path)
    assert path.name == "yolov8n-BiLevelRoutingAttention.yaml"  # the name keeps Ultralytics building scale n
    assert rows(model)[16][:3] == [-1, 1, "BiLevelRoutingAttention"]
    assert rows(model)[-1][:3] == [[16, 19, 22], 1, "Detect"]  # Detect rewired to the attention's P3 output
    report = verify_trained(path, repo, "BiLevelRoutingAttention")
    assert report.layers[-1]["from"] == [16, 19, 22]
    drawn(repo, path, report, "yolov8n-BiLevelRoutingAttention.yaml")


# ---------------------------------------------------------------- c: RevCol backbone


@pytest.mark.parametrize("version", ULTRALYTICS)
def test_c_rtdetr_l_with_revcol_tiny_backbone_trains(checkout, tmp_path, version):
    """The RevCol recipe with its backbone overridden to revcol_tiny (CI speed); revcol_small is built below."""
    repo = checkout("ultralytics", version)
    apply_module(repo, "revcol_tiny", *RTDETR_FIX)
    path, model = gen_yaml(repo, "rtdetr-l-revcol.yaml", tmp_path, "--backbone", "revcol_tiny")
    assert model["backbone"] == [[-1, 1, "revcol_tiny", [True, 0.0]]]  # one row, index slots 0-3
    assert rows(model)[-1][:3] == [[15, 18, 21], 1, "RTDETRDecoder"]
    report = verify_trained(path, repo, "revcol_tiny", RTDETR_IMGSZ[version])
    nodes = drawn(repo, path, report, "rtdetr-l-revcol.yaml", backbone="revcol_tiny")  # ports checked there
    assert [level in nodes["n0"] for level in ("P2/4", "P3/8", "P4/16", "P5/32")] == [True] * 4


def test_c_rtdetr_l_with_revcol_small_backbone_builds(checkout, tmp_path):
    """The RevCol recipe exactly as published (revcol_small): built, run, GFLOPs and one backward pass. One release
    is enough: the revcol_tiny scenario above trains the same backbone code path on both."""
    repo = checkout("ultralytics", ULTRALYTICS[0])
    apply_module(repo, "revcol_small", *RTDETR_FIX)
    path, model = gen_yaml(repo, "rtdetr-l-revcol.yaml", tmp_path)
    assert model["backbone"] == [[-1, 1, "revcol_small", [True, 0.0]]]
    report = verify(path, detect_target(repo), imgsz=IMGSZ, batch=1)
    assert report.ok, rendered(report)
    assert [c.name for c in report.checks] == ["import", "build", "forward", "flops", "backward"]
    assert report.layers[0]["module"] == "revcol_small" and report.totals["gflops"] > 0
    assert report.layers[0]["params"] == 60_054_400  # stem + 8 columns (issue 4's count)
    assert report.layers[-1]["index"] == 22 and report.layers[-1]["from"] == [15, 18, 21]
    drawn(repo, path, report, "rtdetr-l-revcol.yaml")


# ---------------------------------------------------------------- e: YOLOv9 GELAN-c


def test_e_gelan_c_with_riformer_block_trains(checkout, tmp_path):
    repo = checkout("yolov9", YOLOV9_RELEASE)
    apply_module(repo, "RIFormerBlock")
    path, model = gen_yaml(repo, "gelan-c-RIFormerBlock.yaml", tmp_path)
    assert rows(model)[6] == [-1, 1, "RIFormerBlock", [512, 4, 1e-05]]  # the P4/16 ELAN block, its width given
    assert rows(model)[-1][:3] == [[15, 18, 21], 1, "DDetect"]
    report = verify_trained(path, repo, "RIFormerBlock")
    nodes = drawn(repo, path, report, "gelan-c-RIFormerBlock.yaml")
    assert "6 RIFormerBlock" in nodes["n6"] and "512 · P4/16" in nodes["n6"]
