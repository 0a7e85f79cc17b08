"""``yamlforge weights`` on real checkouts: the parity fixtures' official state_dicts loaded into a model through
``--load`` reproduce the official outputs at their layers, after the target's own loader read the checkpoint.

One model per target holds all three modules (one build): RevCol as the backbone in a ``revcol_custom`` row
with the fixture's configuration, then SHSA and BiLevelRoutingAttention on its 64-channel stride-8 map, and
the target's own head (RT-DETR's decoder on Ultralytics, DDetect on YOLOv9).
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_in_checkout
from test_parity import PARITY_DIR, load_fixture
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import YOLOV9_RELEASE

pytestmark = pytest.mark.e2e

REVCOL_ROW = "[-1, 1, revcol_custom, [True, 0.0, [32, 64, 96, 128], [1, 2, 2, 1], 3, 3]]"  # revcol.pt's config
MODEL = {
    "ultralytics": f"""\
nc: 4
backbone:
  - {REVCOL_ROW} # 0-3
head:
  - [1, 1, SHSA, []] # 4
  - [-1, 1, BiLevelRoutingAttention, []] # 5
  - [[5, 2, 3], 1, RTDETRDecoder, [nc]] # 6
""",
    "yolov9": f"""\
nc: 4
depth_multiple: 1.0
width_multiple: 1.0
anchors: 3
backbone:
  [{REVCOL_ROW}]  # 0-3
head:
  [[1, 1, SHSA, []],  # 4
   [-1, 1, BiLevelRoutingAttention, []],  # 5
   [[5, 2, 3], 1, DDetect, [nc]]]  # 6
""",
}
MODULES = {"RevCol": "revcol", "SHSA": "shsa", "BiLevelRoutingAttention": "bra"}

# How each target's trainer starts from a checkpoint: YOLO/RTDETR(yaml).load(pt) is what train(pretrained=pt)
# does; YOLOv9's train.py --weights copies the checkpoint model's state_dict into the YAML's model.
LOAD = {
    "ultralytics": """
from ultralytics import RTDETR
model = RTDETR("model.yaml")
model.load("{out}")
net = model.model
""",
    "yolov9": """
from models.yolo import Model
from utils.general import intersect_dicts
checkpoint = torch.load("{out}", map_location="cpu")
net = Model("model.yaml", ch=3)
net.load_state_dict(intersect_dicts(checkpoint["model"].float().state_dict(), net.state_dict()), strict=False)
""",
}
CHECK = """
import os
os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # 8.4's restricted unpickler; older releases ignore it
os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # their loaders predate torch's weights_only default
import json, torch
{load}
net.eval()
layers = {{type(m).__name__: m for m in net.model}}
worst = {{}}
for cls, fixture in (("revcol_custom", "revcol"), ("SHSA", "shsa"), ("BiLevelRoutingAttention", "bra")):
    data = torch.load("{parity}/" + fixture + ".pt", weights_only=True)
    with torch.no_grad():
        for x, expected in zip(data["inputs"], data["outputs"]):
            got = layers[cls](x)
            pairs = zip(got, expected) if isinstance(expected, list) else [(got, expected)]
            for g, e in pairs:
                torch.testing.assert_close(g, e, rtol=1e-5, atol=1e-5 * e.abs().max().item())
                worst[fixture] = max(worst.get(fixture, 0.0), ((g - e).abs().max() / e.abs().max()).item())
print(json.dumps(worst))
"""

TARGETS = [("ultralytics", "8.4.190"), ("ultralytics", "8.0.227"), ("yolov9", YOLOV9_RELEASE)]


def cli(*args):
    return CliRunner().invoke(app, [str(a) for a in args])


def loads(**checkpoints):
    return [x for name, path in checkpoints.items() for x in ("--load", f"{name}={path}")]


@pytest.fixture(scope="module")
def applied(checkout_factory):
    """``applied(kind, version)`` -> a checkout with the three modules applied and ``model.yaml``, made once."""
    made = {}

    def get(kind: str, version: str):
        if (kind, version) not in made:
            repo = checkout_factory(kind, version)
            assert cli("apply", "--repo", repo, *[x for m in MODULES for x in ("--module", m)]).exit_code == 0
            (repo / "model.yaml").write_text(MODEL[kind])
            made[kind, version] = repo
        return made[kind, version]

    return get


@pytest.mark.parametrize("kind,version", TARGETS, ids=[f"{k}-{v}" for k, v in TARGETS])
def test_official_weights_reproduce_the_official_outputs_at_their_layers(applied, kind, version):
    repo = applied(kind, version)
    out = repo.parent / "official.pt"
    result = cli("weights", repo / "model.yaml", "--repo", repo, "-o", out, "--json",
                 *loads(**{name: PARITY_DIR / f"{stem}.pt" for name, stem in MODULES.items()}))
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["written"] == str(out) and out.is_file()
    assert [(layer["index"], layer["class"], len(layer["matched"]), layer["unexpected"]) for load in report["loads"]
            for layer in load["layers"]] == [(0, "revcol_custom", 238, []), (4, "SHSA", 14, []),
                                             (5, "BiLevelRoutingAttention", 6, [])]
    code = CHECK.format(load=LOAD[kind].format(out=out), parity=PARITY_DIR)
    worst = json.loads(run_in_checkout(repo, code).stdout.strip().splitlines()[-1])
    assert set(worst) == {"revcol", "shsa", "bra"}


def test_a_checkpoint_of_another_module_or_width_is_refused_and_nothing_is_written(applied, tmp_path):
    """The runner decides on names and shapes alone, the same on every target: one target shows it."""
    repo = applied(*TARGETS[0])
    wide = {key: torch.cat([t, t]) for key, t in load_fixture("bra")["state_dict"].items()}
    torch.save(wide, tmp_path / "bra_wide.pt")
    out = tmp_path / "out.pt"
    result = cli("weights", repo / "model.yaml", "--repo", repo, "-o", out,
                 *loads(SHSA=PARITY_DIR / "bra.pt", BiLevelRoutingAttention=tmp_path / "bra_wide.pt"))
    assert result.exit_code == 1, result.output
    assert "bra.pt fills 0 of the 14 tensors of SHSA at layer 4; none of its names are SHSA's" in result.output
    assert "bra_wide.pt fills 0 of the 6 tensors of BiLevelRoutingAttention at layer 5; 6 tensor(s) of another " \
           "shape: another width" in result.output
    assert result.output.endswith("nothing was written\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "bra_wide.pt"]
