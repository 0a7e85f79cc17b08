"""Issue 12's acceptance on the real packages (yolov5 7.0.14 wheel, yolov7detect 1.0.1 sdist): every bundled module
applied at once builds and runs, a second apply is a no-op, revert is byte-identical, --backbone works, and each
recipe in examples/ passes `verify --train` through the package's own train.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkout_tools import tree_hashes
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.resources import data_dir
from yamlforge.scratch import YOLOV5_RELEASE, YOLOV7_RELEASE, make_checkout

RELEASES = {"yolov5": YOLOV5_RELEASE, "yolov7": YOLOV7_RELEASE}
BUNDLED = ("SHSA", "BiLevelRoutingAttention", "token_mixer", "RIFormerBlock", "RevCol")
# One YAML per package using the four layer modules: (base, gen-yaml options).
ALL_LAYERS = {
    "yolov5": ("yolov5n", ["--insert-after", "4=SHSA", "--insert-after", "6=BiLevelRoutingAttention",
                           "--insert-after", "17=token_mixer", "--replace", "2=RIFormerBlock(128)"]),
    "yolov7": ("yolov7-tiny", ["--insert-after", "21=SHSA", "--insert-after", "14=BiLevelRoutingAttention",
                               "--insert-after", "28=token_mixer", "--replace", "7=RIFormerBlock(64)"]),
}
RECIPES = {"yolov5": ("yolov5s-BiLevelRoutingAttention", "BiLevelRoutingAttention"),
           "yolov7": ("yolov7-tiny-SHSA", "SHSA")}


@pytest.fixture(scope="module", params=sorted(RELEASES))
def package(request, tmp_path_factory):
    """(kind, a writable checkout): the packaged root keeps its package's name, as its imports require."""
    kind = request.param
    return kind, make_checkout(kind, RELEASES[kind], tmp_path_factory.mktemp(kind) / kind)


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def verify(yaml: Path, repo: Path, *extra: str) -> dict:
    report = json.loads(cli("verify", str(yaml), "--repo", str(repo), "--imgsz", "64", "--json", *extra))
    assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]
    return report


def test_every_bundled_module_applies_builds_and_reverts(package, tmp_path):
    kind, repo = package
    before = tree_hashes(repo)
    modules = [arg for name in BUNDLED for arg in ("--module", name)]
    assert f"applied on {kind} {RELEASES[kind]}" in cli("apply", "--repo", str(repo), *modules)
    applied = tree_hashes(repo)
    cli("apply", "--repo", str(repo), *modules)
    assert tree_hashes(repo) == applied  # applying twice is a no-op

    base, edits = ALL_LAYERS[kind]
    cli("gen-yaml", base, "--repo", str(repo), *edits, "-o", str(tmp_path / "layers.yaml"))
    report = verify(tmp_path / "layers.yaml", repo)
    assert report["target"]["kind"] == kind
    assert set(BUNDLED[:4]) <= {row["module"] for row in report["layers"]}
    cli("gen-yaml", base, "--repo", str(repo), "--backbone", "revcol_tiny", "-o", str(tmp_path / "revcol.yaml"))
    assert verify(tmp_path / "revcol.yaml", repo)["layers"][0]["module"] == "revcol_tiny"

    cli("revert", "--repo", str(repo))
    assert tree_hashes(repo) == before  # byte for byte, every file


def test_recipe_trains_one_epoch_with_the_package_train_script(package, tmp_path):
    kind, repo = package
    recipe, module = RECIPES[kind]
    before = tree_hashes(repo)
    cli("apply", "--repo", str(repo), "--module", module, "--module", "ResidualWrap")  # yolov7's: residual:SHSA
    out = tmp_path / "recipe.yaml"
    cli("gen-yaml", "--recipe", str(data_dir("examples") / f"{recipe}.yaml"), "--repo", str(repo), "-o", str(out))
    report = verify(out, repo, "--train")
    assert [c["name"] for c in report["checks"] if c["status"] == "pass"][-2:] == ["train", "reload"]
    assert report["target"] == {"kind": kind, "version": RELEASES[kind], "root": str(repo)}
    cli("revert", "--repo", str(repo))
    assert tree_hashes(repo) == before
