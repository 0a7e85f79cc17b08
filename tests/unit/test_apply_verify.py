"""``apply --verify`` (the probe model) and ``gen-yaml --verify``: probe layout tables, bad input, real runs."""

from __future__ import annotations

import sys

import pytest
from checkout_tools import tree_hashes
from halfwidth import HALF_WIDTH_SPEC
from ruamel.yaml import YAML
from typer.testing import CliRunner

from yamlforge.check.probe import probe_names, probe_yaml
from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.patch.manifest import read_manifest
from yamlforge.scratch import YOLOV9_RELEASE
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target

cli = CliRunner()
WIDE = {"COLUMNS": "200"}  # the layer table's module names are not cut short
REGISTRY = SpecRegistry()
STEM = [[-1, 1, "Conv", [16, 3, 2]], [-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [64, 3, 2]],
        [-1, 1, "Conv", [128, 3, 2]]]


def load(text: str) -> dict:
    return YAML(typ="safe", pure=True).load(text)


@pytest.fixture(scope="module")
def targets(pristine):
    """Targets of the cached pristine checkouts: probe_yaml only reads them."""
    return {"ultralytics": detect_target(pristine("ultralytics", "8.4.190")),
            "yolov9": detect_target(pristine("yolov9", YOLOV9_RELEASE))}


# ---------------------------------------------------------------- the probe model's layout


@pytest.mark.parametrize(("kind", "names", "expected_rows", "detect_from"), [
    ("ultralytics", [], STEM + [[3, 1, "Conv", [256, 3, 2]]], [2, 3, 4]),
    ("ultralytics", ["SHSA"], STEM + [[3, 1, "SHSA", [16, "None"]], [4, 1, "Conv", [256, 3, 2]]], [2, 4, 5]),
    ("ultralytics", ["RIFormerBlock"],
     STEM + [[3, 1, "RIFormerBlock", [128, 4, 1e-05]], [4, 1, "Conv", [256, 3, 2]]], [2, 4, 5]),
    ("ultralytics", ["SHSA", "token_mixer"],
     STEM + [[3, 1, "SHSA", [16, "None"]], [-1, 1, "token_mixer", []], [5, 1, "Conv", [256, 3, 2]]], [2, 5, 6]),
    ("ultralytics", ["SHSA", "SHSA"], STEM + [[3, 1, "SHSA", [16, "None"]], [4, 1, "Conv", [256, 3, 2]]], [2, 4, 5]),
    ("ultralytics", ["RevCol"], [[-1, 1, "revcol_tiny", [True, 0.0]]], [1, 2, 3]),
    ("ultralytics", ["revcol_small", "SHSA"],
     [[-1, 1, "revcol_small", [True, 0.0]], [2, 1, "SHSA", [16, "None"]]], [1, 4, 3]),
    ("yolov9", ["RIFormerBlock"],
     STEM + [[3, 1, "RIFormerBlock", [128, 4, 1e-05]], [4, 1, "Conv", [256, 3, 2]]], [2, 4, 5]),
], ids=["no-module", "keep-at-p4", "in_out-gets-width", "chain-at-p4", "same-module-twice-noop",
        "backbone-spec-name-smallest", "backbone-export-and-layer-on-its-p4", "yolov9"])
def test_probe_model_layout(targets, kind, names, expected_rows, detect_from):
    model = load(probe_yaml(targets[kind], probe_names(names, REGISTRY)))
    head = "DDetect" if kind == "yolov9" else "Detect"
    assert model["backbone"] == expected_rows
    assert model["head"] == [[detect_from, 1, head, ["nc"]]]
    assert ("anchors" in model) == (kind == "yolov9")  # YOLOv9's parse_model reads d['anchors']


@pytest.mark.parametrize(("names", "expected"), [
    (["SHSA"], ["SHSA"]),
    (["RevCol"], ["revcol_tiny"]),
    (["revcol_base"], ["revcol_base"]),
    (["SHSA", "RIFormerBlock", "SHSA"], ["SHSA", "RIFormerBlock"]),
], ids=["layer", "backbone-spec", "backbone-export", "repeat-noop"])
def test_probe_names(names, expected):
    assert [name for name, _ in probe_names(names, REGISTRY)] == expected


def test_probe_refuses_two_backbones(targets):
    with pytest.raises(YamlforgeError, match="one backbone") as info:
        probe_yaml(targets["ultralytics"], probe_names(["revcol_tiny", "revcol_small"], REGISTRY))
    assert info.value.where == "--verify"


def test_probe_refuses_a_required_arg_it_cannot_guess(targets, tmp_path, half_width_spec):
    spec = tmp_path / "half_width.yaml"
    spec.write_text(HALF_WIDTH_SPEC.replace("args: []", "args: [{name: ratio}]"))
    with pytest.raises(YamlforgeError, match="needs arg 'ratio'") as info:
        probe_yaml(targets["ultralytics"], probe_names(["HalfWidth"], SpecRegistry([spec])))
    assert info.value.where == "--verify"


@pytest.mark.parametrize("stride", ["2", "1/2"])
def test_probe_refuses_a_layer_that_changes_the_resolution(targets, tmp_path, half_width_spec, stride):
    spec = tmp_path / "half_width.yaml"
    spec.write_text(HALF_WIDTH_SPEC.replace("stride: 1", f"stride: {stride}"))
    with pytest.raises(YamlforgeError, match=f"HalfWidth has stride {stride}: a probe model") as info:
        probe_yaml(targets["ultralytics"], probe_names(["HalfWidth"], SpecRegistry([spec])))
    assert info.value.where == "--verify" and "gen-yaml" in info.value.hint


# ---------------------------------------------------------------- bad input: exit 2, nothing written


@pytest.fixture(scope="module")
def scratch(checkout_factory):
    return checkout_factory("ultralytics", "8.4.190")


@pytest.mark.parametrize("args", [
    ["apply", "--module", "SHSA", "--verify", "--dry-run"],
    ["apply", "--module", "SHSA", "--verify", "--check"],
    ["apply", "--module", "SHSA", "--train", "--dry-run"],
    ["apply", "--module", "revcol_tiny", "--module", "revcol_small", "--verify"],
    ["gen-yaml", "yolov8n", "--insert-after", "15=Conv(64)", "--verify", "--dry-run"],
], ids=["apply-dry-run", "apply-check", "apply-train-implies-verify", "apply-two-backbones", "gen-yaml-dry-run"])
def test_verify_with_bad_input_exits_2_and_writes_nothing(scratch, args):
    result = cli.invoke(app, [*args, "--repo", str(scratch)])
    assert result.exit_code == 2, result.output
    assert "error:" in result.output and "(--verify)" in result.output
    assert "Traceback" not in result.output
    assert read_manifest(scratch) is None
    assert not list(scratch.rglob("yolov8n-Conv.yaml"))


@pytest.mark.parametrize("args", [
    ["apply", "--module", "SHSA", "--verify", "--imgsz", "100"],
    ["gen-yaml", "yolov8n", "--insert-after", "15=Conv(64)", "--verify", "--imgsz", "100"],
], ids=["apply", "gen-yaml"])
def test_verify_with_an_unusable_imgsz_is_refused_before_writing(scratch, args):
    before = tree_hashes(scratch)
    result = cli.invoke(app, [*args, "--repo", str(scratch)])
    assert result.exit_code == 2, result.output
    assert "--imgsz 100 must be a positive multiple of 32 (--imgsz)" in result.output
    assert tree_hashes(scratch) == before


def test_apply_verify_with_an_unknown_python_is_refused_before_writing(scratch):
    before = tree_hashes(scratch)
    result = cli.invoke(app, ["apply", "--repo", str(scratch), "--module", "SHSA", "--verify", "--python",
                              "/no/such/python"])
    assert result.exit_code == 2, result.output
    assert "error: Python interpreter '/no/such/python' not found (--python)" in result.output
    assert tree_hashes(scratch) == before


# ---------------------------------------------------------------- --python: where the probe is built


def test_apply_verify_builds_the_probe_in_the_given_python(checkout_factory, tmp_path):
    """--python names a Python without site-packages that logs what it runs: the build runs there, finds no torch.

    A bundled spec has no channel rule to probe, so the log's one command is the verify runner's.
    """
    repo = checkout_factory("ultralytics", "8.4.190")
    log = tmp_path / "calls.log"
    python = tmp_path / "python-without-site-packages"
    python.write_text(f'#!/bin/sh\necho "$@" >> "{log}"\nexec "{sys.executable}" -S "$@"\n')
    python.chmod(0o755)
    result = cli.invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA", "--verify", "--imgsz", "64",
                              "--python", str(python)])
    assert result.exit_code == 1, result.output
    assert "FAILED import: torch does not import" in result.output and "No module named 'torch'" in result.output
    calls = log.read_text().splitlines()
    assert len(calls) == 1 and "verify_runner.py --mode verify " in calls[0], calls
    assert "SHSA" in read_manifest(repo).applied_names  # the apply stays; the undo is named
    assert f"undo: yamlforge revert --repo {repo} --module SHSA" in result.output
