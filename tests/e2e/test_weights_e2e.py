"""``yamlforge weights`` on real checkouts: the parity fixtures' official state_dicts, loaded through ``--load`` into
models gen-yaml made from stock bases, reproduce the official outputs at the layers holding the modules, after the
target's own loader read the written checkpoint.

Two models per target, as a user makes them:

- RevCol: the stock detector with ``--backbone revcol_custom(...)`` in revcol.pt's configuration (rtdetr-l on
  Ultralytics, ``examples/models/gelan-c.yaml`` on YOLOv9).
- SHSA and BiLevelRoutingAttention (fixtures of width 64) inserted after a 64-channel P3/8 row: yolov8n's row 4
  (C2f, 64 channels at scale n). gelan-c has no 64-channel P3 row, so a ``Conv(64, 1, 1)`` is inserted after its
  row 4 first and the two modules after it (gen-yaml rewires row 4's readers to the last of them).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import run_in_checkout
from parity import PARITY_DIR, load_fixture
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import YOLOV9_RELEASE

GELAN_C = Path(__file__).resolve().parents[2] / "examples" / "models" / "gelan-c.yaml"
REVCOL_CUSTOM = "revcol_custom(True, 0.0, [32, 64, 96, 128], [1, 2, 2, 1], 3, 3)"  # revcol.pt's configuration
ATTENTION = ("--insert-after", "4=SHSA", "--insert-after", "4=BiLevelRoutingAttention")
# kind -> model -> (gen-yaml base, its edits, the output's name, the target's class that loads it)
MODELS = {
    "ultralytics": {
        "revcol": ("rtdetr-l", ("--backbone", REVCOL_CUSTOM), "rtdetr-l-revcol.yaml", "RTDETR"),
        "attention": ("yolov8n", ATTENTION, "yolov8n-attention.yaml", "YOLO"),
    },
    "yolov9": {
        "revcol": (GELAN_C, ("--backbone", REVCOL_CUSTOM), "gelan-c-revcol.yaml", "Model"),
        "attention": (GELAN_C, ("--insert-after", "4=Conv(64, 1, 1)", *ATTENTION), "gelan-c-attention.yaml", "Model"),
    },
}
LOADS = {"revcol": {"RevCol": "revcol"}, "attention": {"SHSA": "shsa", "BiLevelRoutingAttention": "bra"}}
# (kind, model) -> (index, class, tensors filled) of each layer `weights` fills
FILLED = {
    ("ultralytics", "revcol"): [(0, "revcol_custom", 238)],
    ("ultralytics", "attention"): [(5, "SHSA", 14), (6, "BiLevelRoutingAttention", 6)],
    ("yolov9", "revcol"): [(0, "revcol_custom", 238)],
    ("yolov9", "attention"): [(6, "SHSA", 14), (7, "BiLevelRoutingAttention", 6)],
}

# How each target's trainer starts from a checkpoint: YOLO/RTDETR(yaml).load(pt) is what train(pretrained=pt)
# does; YOLOv9's train.py --weights copies the checkpoint model's state_dict into the YAML's model.
LOAD = {
    "ultralytics": """
from ultralytics import RTDETR, YOLO

def load(cls, yaml, out):
    model = {"RTDETR": RTDETR, "YOLO": YOLO}[cls](yaml)
    model.load(out)
    return model.model
""",
    "yolov9": """
from models.yolo import Model
from utils.general import intersect_dicts

def load(cls, yaml, out):
    checkpoint = torch.load(out, map_location="cpu")
    net = Model(yaml, ch=3)
    net.load_state_dict(intersect_dicts(checkpoint["model"].float().state_dict(), net.state_dict()), strict=False)
    return net
""",
}
CHECK = """
import os
os.environ["ULTRALYTICS_SAFE_LOAD"] = "1"  # 8.4's restricted unpickler; older releases ignore it
os.environ["TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD"] = "1"  # their loaders predate torch's weights_only default
import json, torch
{load}
worst = {{}}
for cls, yaml, out, layers in {models!r}:
    net = load(cls, yaml, out).eval()
    for index, fixture in layers.items():
        data = torch.load("{parity}/" + fixture + ".pt", weights_only=True)
        with torch.no_grad():
            for x, expected in zip(data["inputs"], data["outputs"]):
                got = net.model[int(index)](x)
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
def models(checkout_factory):
    """``models(kind, version)`` -> (checkout with the three modules applied, {model: its gen-yaml output}),
    made once."""
    made = {}

    def get(kind: str, version: str):
        if (kind, version) not in made:
            repo = checkout_factory(kind, version)
            modules = [x for m in ("RevCol", "SHSA", "BiLevelRoutingAttention") for x in ("--module", m)]
            assert cli("apply", "--repo", repo, *modules).exit_code == 0
            paths = {}
            for model, (base, edits, name, _) in MODELS[kind].items():
                paths[model] = repo.parent / name
                result = cli("gen-yaml", base, *edits, "--repo", repo, "-o", paths[model])
                assert result.exit_code == 0, result.output
            made[kind, version] = repo, paths
        return made[kind, version]

    return get


@pytest.mark.parametrize("kind,version", TARGETS, ids=[f"{k}-{v}" for k, v in TARGETS])
def test_official_weights_reproduce_the_official_outputs_at_their_layers(models, kind, version):
    repo, paths = models(kind, version)
    checked = []
    for model, path in paths.items():
        out = path.with_suffix(".pt")
        result = cli("weights", path, "--repo", repo, "-o", out, "--json",
                     *loads(**{name: PARITY_DIR / f"{stem}.pt" for name, stem in LOADS[model].items()}))
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["written"] == str(out) and out.is_file()
        filled = [(layer["index"], layer["class"], len(layer["matched"]), layer["unexpected"])
                  for load in report["loads"] for layer in load["layers"]]
        assert filled == [(*layer, []) for layer in FILLED[kind, model]]
        fixtures = dict(zip([i for i, *_ in FILLED[kind, model]], LOADS[model].values()))
        checked.append((MODELS[kind][model][3], str(path), str(out), fixtures))
    code = CHECK.format(load=LOAD[kind], models=checked, parity=PARITY_DIR)
    worst = json.loads(run_in_checkout(repo, code).stdout.strip().splitlines()[-1])
    assert set(worst) == {"revcol", "shsa", "bra"}


def test_a_checkpoint_of_another_module_or_width_is_refused_and_nothing_is_written(models, tmp_path):
    """The runner decides on names and shapes alone, the same on every target: one target shows it."""
    repo, paths = models(*TARGETS[0])
    wide = {key: torch.cat([t, t]) for key, t in load_fixture("bra")["state_dict"].items()}
    torch.save(wide, tmp_path / "bra_wide.pt")
    out = tmp_path / "out.pt"
    result = cli("weights", paths["attention"], "--repo", repo, "-o", out,
                 *loads(SHSA=PARITY_DIR / "bra.pt", BiLevelRoutingAttention=tmp_path / "bra_wide.pt"))
    assert result.exit_code == 1, result.output
    assert "bra.pt fills 0 of the 14 tensors of SHSA at layer 5; none of its names are SHSA's" in result.output
    assert "bra_wide.pt fills 0 of the 6 tensors of BiLevelRoutingAttention at layer 6; 6 tensor(s) of another " \
           "shape: another width" in result.output
    assert result.output.endswith("nothing was written\n")
    assert list(tmp_path.iterdir()) == [tmp_path / "bra_wide.pt"]
