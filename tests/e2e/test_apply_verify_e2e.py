"""apply --verify and gen-yaml --verify on real checkouts: the probe built, trained and reloaded; failures keep
the edit and name the undo."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.patch.manifest import read_manifest
from yamlforge.scratch import YOLOV9_RELEASE

cli = CliRunner()
WIDE = {"COLUMNS": "200"}  # the layer table's module names are not cut short



@pytest.mark.parametrize(("kind", "version", "modules", "shown"), [
    ("ultralytics", "8.4.190", ["SHSA", "token_mixer"], ["SHSA", "token_mixer"]),
    ("ultralytics", "8.0.227", ["RevCol", "BiLevelRoutingAttention"], ["revcol_tiny", "BiLevelRoutingAttention"]),
    ("yolov9", YOLOV9_RELEASE, ["RIFormerBlock"], ["RIFormerBlock", "DDetect"]),
], ids=["8.4.190-keep-layers", "8.0.227-backbone-and-layer", "yolov9-in_out"])
def test_apply_verify_builds_a_probe_with_every_applied_module(checkout_factory, kind, version, modules, shown):
    repo = checkout_factory(kind, version)
    result = cli.invoke(app, ["apply", "--repo", str(repo), *(f"--module={m}" for m in modules), "--verify",
                              "--imgsz", "64"], env=WIDE)
    assert result.exit_code == 0, result.output
    assert "yamlforge-probe.yaml" in result.output and "verify: ok" in result.output
    assert f"apply --verify proves {', '.join(modules)} in a detect model (the probe)" in result.output
    table = result.output.partition("yamlforge-probe.yaml on")[2]
    for name in shown:
        assert f" {name} " in table, result.output


def test_apply_verify_train_trains_and_reloads_the_probe(checkout_factory):
    repo = checkout_factory("ultralytics", "8.4.190")
    result = cli.invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA", "--train", "--imgsz", "64"])
    assert result.exit_code == 0, result.output
    for check in ("train", "reload", "safe_reload"):
        assert f"✓ {check} " in result.output, result.output


def test_apply_verify_failure_exits_1_keeps_the_apply_and_names_the_undo(checkout_factory, half_width_spec):
    repo = checkout_factory("ultralytics", "8.4.190")
    result = cli.invoke(app, ["apply", "--repo", str(repo), "--spec", str(half_width_spec), "--verify",
                              "--imgsz", "64"])
    assert result.exit_code == 1, result.output
    assert "FAILED build" in result.output and "to have 128 channels, but got 64" in result.output  # P5 Conv
    assert "the probe model:" in result.output and "[3, 1, HalfWidth, []]" in result.output
    assert f"undo: yamlforge revert --repo {repo} --module HalfWidth" in result.output
    assert "HalfWidth" in read_manifest(repo).applied_names


def test_gen_yaml_verify_one_line_happy_path(checkout_factory):
    repo = checkout_factory("ultralytics", "8.4.190")
    cli.invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA"])
    result = cli.invoke(app, ["gen-yaml", "rtdetr-l", "--insert-after", "3=SHSA", "--repo", str(repo), "--verify",
                              "--imgsz", "64"])
    assert result.exit_code == 0, result.output
    assert (repo / "ultralytics/cfg/models/rt-detr/rtdetr-l-SHSA.yaml").is_file()
    assert "rtdetr-l-SHSA.yaml on ultralytics 8.4.190" in result.output and "verify: ok" in result.output


def test_gen_yaml_verify_failure_exits_1_and_keeps_the_yaml(checkout_factory, half_width_spec, tmp_path):
    repo = checkout_factory("ultralytics", "8.4.190")
    assert cli.invoke(app, ["apply", "--repo", str(repo), "--spec", str(half_width_spec)]).exit_code == 0
    out = tmp_path / "out.yaml"
    result = cli.invoke(app, ["gen-yaml", "yolov8n", "--insert-after", "15=HalfWidth", "--repo", str(repo),
                              "--spec", str(half_width_spec), "-o", str(out), "--verify", "--imgsz", "64"])
    assert result.exit_code == 1, result.output
    assert "FAILED build" in result.output and "verify: failed" in result.output
    assert out.is_file()
