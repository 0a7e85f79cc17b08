"""A layer that kills the signal at initialisation: SHSA (its projection BN starts at weight 0) as a plain layer after
yolo11n's layer 2 outputs zeros, so the loss's gradients are NaN; verify names that layer as the cause, and the
residual form gen-yaml writes for ``residual:SHSA`` (x + SHSA(x)) trains and reloads on 8.4.190."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app

IMGSZ_NAN = 160  # the NaN needs a real-sized map (at 64 the gradients stay finite: a dead start, a warning)
IMGSZ_TRAIN = 64
cli = CliRunner()


def invoke(*args) -> str:
    result = cli.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def repo(checkout_factory) -> Path:
    """8.4.190 with SHSA and the residual wrapper applied, once for the module."""
    root = checkout_factory("ultralytics", "8.4.190")
    invoke("apply", "--repo", root, "--module", "SHSA", "--module", "ResidualWrap")
    return root


def generated(repo: Path, tmp_path: Path, edit: str) -> Path:
    out = tmp_path / "model.yaml"
    invoke("gen-yaml", "yolo11n", "--insert-after", edit, "--repo", repo, "-o", out)
    return out


def verify_json(repo: Path, model: Path, *options) -> tuple[int, dict]:
    result = cli.invoke(app, ["verify", str(model), "--repo", str(repo), "--json", *map(str, options)])
    return result.exit_code, json.loads(result.stdout)


def test_plain_shsa_after_layer_2_fails_naming_layer_3_and_its_zero_output(repo, tmp_path):
    code, data = verify_json(repo, generated(repo, tmp_path, "2=SHSA"), "--imgsz", IMGSZ_NAN)
    assert code == 1 and data["failed_checks"] == ["backward"]
    backward = data["checks"][-1]
    assert backward["layer"] == {"index": 3, "module": "SHSA"}
    assert "the cause: layer 3 (SHSA) outputs all zeros at initialisation" in backward["message"]
    assert "NaN/Inf" in backward["message"]
    assert "--insert-after N=residual:SHSA" in backward["hint"]


def test_plain_shsa_with_finite_gradients_is_a_dead_start_warning(repo, tmp_path):
    code, data = verify_json(repo, generated(repo, tmp_path, "2=SHSA"), "--imgsz", IMGSZ_TRAIN)
    assert code == 0 and data["ok"]
    backward = data["checks"][-1]
    assert (backward["name"], backward["status"], backward["layer"]) == ("backward", "warn",
                                                                         {"index": 3, "module": "SHSA"})
    assert "a dead start" in backward["message"]


def test_residual_shsa_after_layer_2_trains_and_reloads(repo, tmp_path):
    model = generated(repo, tmp_path, "2=residual:SHSA")
    code, data = verify_json(repo, model, "--imgsz", IMGSZ_TRAIN, "--train")
    assert code == 0, data["checks"]
    status = {c["name"]: c["status"] for c in data["checks"]}
    assert status == dict.fromkeys(["import", "build", "forward", "flops", "backward", "train", "reload",
                                    "safe_reload"], "pass")
    assert data["layers"][3]["module"] == "ResidualWrap"
