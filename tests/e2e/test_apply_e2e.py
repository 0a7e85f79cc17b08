"""apply / revert on real checkouts of every supported release: builds, runs, reverts byte for byte."""

from __future__ import annotations

import json
import re

import pytest
from checkout_tools import tree_hashes, tree_mtimes
from conftest import ULTRALYTICS_VERSIONS, run_in_checkout
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import YOLOV9_RELEASE

LAYER_MODULES = ["SHSA", "BiLevelRoutingAttention", "RIFormerBlock", "token_mixer"]
ALL_MODULES = [*LAYER_MODULES, "RevCol"]  # every bundled spec

# Every layer module in one small detector; SHSA and BRA sit at stride 16 (global attention is O((HW)^2)).
ULTRALYTICS_YAML = """\
nc: 4
scales:
  n: [0.33, 0.25, 1024]
backbone:
  - [-1, 1, Conv, [64, 3, 2]] # 0-P1/2
  - [-1, 1, Conv, [128, 3, 2]] # 1-P2/4
  - [-1, 1, C2f, [128, True]] # 2
  - [-1, 1, Conv, [256, 3, 2]] # 3-P3/8
  - [-1, 1, token_mixer, []] # 4
  - [-1, 1, Conv, [512, 3, 2]] # 5-P4/16
  - [-1, 1, SHSA, []] # 6
  - [-1, 1, BiLevelRoutingAttention, []] # 7
  - [-1, 1, RIFormerBlock, [512]] # 8
  - [-1, 1, Conv, [1024, 3, 2]] # 9-P5/32
  - [-1, 1, SPPF, [1024, 5]] # 10
head:
  - [[4, 8, 10], 1, Detect, [nc]] # 11
"""

YOLOV9_YAML = """\
nc: 4
depth_multiple: 1.0
width_multiple: 0.25
anchors: 3
backbone:
  [
   [-1, 1, Conv, [64, 3, 2]],  # 0-P1/2
   [-1, 1, Conv, [128, 3, 2]],  # 1-P2/4
   [-1, 1, RepNCSPELAN4, [256, 128, 64, 1]],  # 2
   [-1, 1, ADown, [256]],  # 3-P3/8
   [-1, 1, token_mixer, []],  # 4
   [-1, 1, ADown, [512]],  # 5-P4/16
   [-1, 1, SHSA, []],  # 6
   [-1, 1, BiLevelRoutingAttention, []],  # 7
   [-1, 1, RIFormerBlock, [512]],  # 8
   [-1, 1, ADown, [1024]],  # 9-P5/32
   [-1, 1, SPPELAN, [1024, 256]],  # 10
  ]
head:
  [[[4, 8, 10], 1, DDetect, [nc]]]
"""

# The RevCol backbone takes slots 0-3 (P2/4 ... P5/32); the head reads P3, P4, P5.
BACKBONE_YAML = {
    "ultralytics": """\
nc: 4
backbone:
  - [-1, 1, revcol_tiny, []] # 0-3
head:
  - [[1, 2, 3], 1, Detect, [nc]] # 4
""",
    "yolov9": """\
nc: 4
depth_multiple: 1.0
width_multiple: 1.0
anchors: 3
backbone:
  [[-1, 1, revcol_tiny, []]]  # 0-3
head:
  [[[1, 2, 3], 1, DDetect, [nc]]]  # 4
""",
}

# Output channels each module layer must produce (width 0.25: 512 -> 128 for RIFormerBlock's in_out rule).
EXPECTED = {4: 64, 6: 128, 7: 128, 8: 128}

PROBE = """
import json, torch
torch.manual_seed(0)
shapes = {{}}
{build}
layers = list(model.model)
for i in {indices}:
    layers[i].register_forward_hook(
        lambda mod, inp, out, i=i: shapes.__setitem__(i, [list(inp[0].shape), list(out.shape)]))
model.eval()
with torch.no_grad():
    model(torch.zeros(1, 3, 640, 640))
print("SHAPES" + json.dumps(shapes))
{build_backbone}
backbone_out = []
model.model[0].register_forward_hook(lambda mod, inp, out: backbone_out.extend(list(o.shape) for o in out))
model.eval()
with torch.no_grad():
    model(torch.zeros(1, 3, 640, 640))
print("BACKBONE" + json.dumps(backbone_out))
"""

BUILD = {
    "ultralytics": "from ultralytics import YOLO\nmodel = YOLO('{yaml}').model",
    "yolov9": "from models.yolo import Model\nmodel = Model('{yaml}', ch=3, nc=4)",
}

TARGETS = [("ultralytics", v) for v in ULTRALYTICS_VERSIONS] + [("yolov9", YOLOV9_RELEASE)]
IDS = [f"{k}-{v}" for k, v in TARGETS]


def tagged(out: str, tag: str):
    """The JSON printed on the line that starts with ``tag`` (targets print their own summaries around it)."""
    return json.loads(next(line[len(tag):] for line in out.splitlines() if line.startswith(tag)))


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("kind,version", TARGETS, ids=IDS)
def test_apply_all_modules_builds_and_runs_at_640(checkout_factory, kind, version):
    repo = checkout_factory(kind, version)
    args = [x for name in ALL_MODULES for x in ("--module", name)]
    result = cli("apply", "--repo", repo, *args)
    assert result.exit_code == 0, result.output
    (repo / "model.yaml").write_text(ULTRALYTICS_YAML if kind == "ultralytics" else YOLOV9_YAML)
    (repo / "backbone.yaml").write_text(BACKBONE_YAML[kind])
    code = PROBE.format(build=BUILD[kind].format(yaml="model.yaml"), indices=sorted(EXPECTED),
                        build_backbone=BUILD[kind].format(yaml="backbone.yaml"))
    out = run_in_checkout(repo, code).stdout
    backbone = tagged(out, "BACKBONE")
    assert backbone == [[1, c, 640 // s, 640 // s] for c, s in ((64, 4), (128, 8), (256, 16), (512, 32))]
    shapes = tagged(out, "SHAPES")
    for index, channels in EXPECTED.items():
        (_, _, h, w), (_, c_out, h2, w2) = shapes[str(index)]
        assert c_out == channels, f"layer {index}: {c_out} channels, expected {channels}"
        assert (h2, w2) == (h, w), f"layer {index} changed the resolution"
    assert shapes["6"][1][2:] == [40, 40]  # SHSA at stride 16 of a 640 input


@pytest.mark.parametrize("kind,version", TARGETS, ids=IDS)
def test_apply_twice_is_noop_and_revert_is_byte_identical(checkout_factory, kind, version):
    repo = checkout_factory(kind, version)
    pristine = tree_hashes(repo)
    args = [x for name in ALL_MODULES for x in ("--module", name)]
    assert cli("apply", "--repo", repo, *args).exit_code == 0
    applied = tree_hashes(repo)
    assert applied != pristine
    again = cli("apply", "--repo", repo, *args)
    assert again.exit_code == 0
    assert "already applied, nothing to do" in again.output
    assert tree_hashes(repo) == applied
    assert cli("apply", "--repo", repo, *args, "--check").exit_code == 0
    reverted = cli("revert", "--repo", repo)
    assert reverted.exit_code == 0, reverted.output
    assert tree_hashes(repo) == pristine


def test_modules_applied_one_by_one_share_one_branch_and_revert_one(checkout_factory):
    repo = checkout_factory("ultralytics", "8.4.190")
    pristine = tree_hashes(repo)
    assert cli("apply", "--repo", repo, "--module", "SHSA").exit_code == 0
    only_shsa = tree_hashes(repo)
    assert cli("apply", "--repo", repo, "--module", "token_mixer").exit_code == 0
    tasks = (repo / "ultralytics/nn/tasks.py").read_text()
    assert tasks.count("yamlforge: channel-keeping modules") == 1
    result = cli("revert", "--repo", repo, "--module", "token_mixer")
    assert result.exit_code == 0, result.output
    assert tree_hashes(repo) == only_shsa
    assert cli("revert", "--repo", repo).exit_code == 0
    assert tree_hashes(repo) == pristine


def test_dry_run_changes_no_bytes_and_no_mtimes(checkout_factory):
    repo = checkout_factory("ultralytics", "8.0.227")
    hashes, mtimes = tree_hashes(repo), tree_mtimes(repo)
    result = cli("apply", "--repo", repo, "--module", "SHSA", "--module", "RIFormerBlock", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "+++ b/ultralytics/nn/tasks.py" in result.stdout
    assert "--- /dev/null\n+++ b/ultralytics/nn/modules/shsa.py" in result.stdout
    assert re.search(r"^would patch +ultralytics/nn/tasks.py$", result.output, re.MULTILINE)
    assert tree_hashes(repo) == hashes and tree_mtimes(repo) == mtimes
    assert cli("apply", "--repo", repo, "--module", "SHSA", "--check").exit_code == 1


def test_dry_run_diff_applies_with_git(checkout_factory, tmp_path):
    import subprocess

    repo = checkout_factory("ultralytics", "8.3.40")
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA", "--dry-run"])
    patch = tmp_path / "shsa.patch"
    patch.write_text(result.stdout)
    check = subprocess.run(["git", "apply", "--check", str(patch)], cwd=repo, capture_output=True, text=True,
                           check=False)
    assert check.returncode == 0, check.stderr


def test_revert_keeps_a_user_edit_elsewhere_in_tasks_py(checkout_factory):
    repo = checkout_factory("ultralytics", "8.2.103")
    tasks = repo / "ultralytics/nn/tasks.py"
    original = tasks.read_text()
    assert cli("apply", "--repo", repo, "--module", "SHSA").exit_code == 0
    tasks.write_text(tasks.read_text() + "\nMY_CONSTANT = 1\n")
    result = cli("revert", "--repo", repo)
    assert result.exit_code == 0, result.output
    assert tasks.read_text() == original + "\nMY_CONSTANT = 1\n"
    assert not (repo / ".yamlforge").exists()
    assert not (repo / "ultralytics/nn/modules/shsa.py").exists()


def test_revert_refuses_when_the_user_edited_yamlforges_lines(checkout_factory):
    repo = checkout_factory("ultralytics", "8.4.190")
    tasks = repo / "ultralytics/nn/tasks.py"
    assert cli("apply", "--repo", repo, "--module", "SHSA").exit_code == 0
    text = tasks.read_text()
    line = next(row for row in text.splitlines() if "import SHSA" in row)
    tasks.write_text(text.replace(line, line + ", CBAM_MINE"))
    before = tree_hashes(repo)
    result = cli("revert", "--repo", repo)
    assert result.exit_code == 1
    assert "your edits overlap yamlforge's in ultralytics/nn/tasks.py:" in result.output
    assert tree_hashes(repo) == before


def test_hand_patched_checkout_is_not_patched_twice(checkout_factory):
    repo = checkout_factory("ultralytics", "8.4.190")
    assert cli("apply", "--repo", repo, "--module", "SHSA").exit_code == 0
    # Forget yamlforge's record: the checkout now looks hand-patched (file placed, imported, registered).
    import shutil

    shutil.rmtree(repo / ".yamlforge")
    before = tree_hashes(repo)
    result = cli("apply", "--repo", repo, "--module", "SHSA")
    assert result.exit_code == 0, result.output
    assert "hand-patched" in result.output
    changed = {k for k, v in tree_hashes(repo).items() if before.get(k) != v}
    assert changed <= {".yamlforge/manifest.json"}  # tasks.py and shsa.py untouched


def test_yolov9_modules_live_in_a_package_of_ours(checkout_factory):
    repo = checkout_factory("yolov9", YOLOV9_RELEASE)
    assert cli("apply", "--repo", repo, "--module", "SHSA", "--module", "RIFormerBlock").exit_code == 0
    assert (repo / "models/yamlforge/__init__.py").is_file()
    assert (repo / "models/yamlforge/shsa.py").is_file()
    manifest = json.loads((repo / ".yamlforge/manifest.json").read_text())
    assert set(manifest["modules"]) == {"SHSA", "RIFormerBlock"}
    assert manifest["files"]["models/yolo.py"]["before"] != manifest["files"]["models/yolo.py"]["after"]
