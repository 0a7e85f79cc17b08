"""gen-yaml outputs built by the target's own model classes in real checkouts, with a forward pass.

Only stock layers here: scenarios with yamlforge modules (SHSA, BiLevelRoutingAttention, token_mixer,
RIFormerBlock) need `yamlforge apply` on the checkout first and live with the apply e2e tests.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_in_checkout
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.scratch import YOLOV9_RELEASE

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
IMGSZ = 320  # forward size; small to share the machine


def gen(*args) -> None:
    result = CliRunner().invoke(app, ["gen-yaml", *map(str, args)])
    assert result.exit_code == 0, result.output


# Run in an Ultralytics checkout after V8 and RT (the folders gen-yaml wrote into): the three outputs built by the
# target's own wrappers and run forward, one interpreter for both tests of a release; what they assert, as JSON.
ULTRALYTICS_BUILDS = """
import json, torch
from ultralytics import RTDETR, YOLO


def built(cls, path):
    model = cls(path).model.eval()
    with torch.no_grad():
        model(torch.zeros(1, 3, IMGSZ, IMGSZ))
    return model


yolo = built(YOLO, V8 + "/yolov8n-Identity.yaml")
facts = {"yolov8n-Identity.yaml": {"head": yolo.yaml["head"][-1][0], "layer16": type(yolo.model[16]).__name__,
                                   "from": yolo.model[-1].f, "width": yolo.yaml["scales"]["n"][1],
                                   "stem": yolo.model[0].conv.out_channels}}
for name in ("rtdetr-l-Identity.yaml", "rtdetr-l-HGBlock.yaml"):
    facts[name] = {"from": built(RTDETR, RT + "/" + name).model[-1].f}
print(json.dumps(facts))
"""


@pytest.fixture(scope="module")
def ultralytics_built(checkout_factory):
    """``ultralytics_built(version)`` -> ULTRALYTICS_BUILDS' facts for one checkout of ``version`` where gen-yaml
    wrote yolov8n with ``--insert-after 15=nn.Identity`` and rtdetr-l with ``--insert-after 3=nn.Identity`` and with
    ``--replace 3=HGBlock(96, 512, 3)*2``; made once per release."""
    made: dict[str, dict] = {}

    def get(version: str) -> dict:
        if version not in made:
            root = checkout_factory("ultralytics", version)
            gen("yolov8n", "--insert-after", "15=nn.Identity", "--repo", root)
            gen("rtdetr-l", "--insert-after", "3=nn.Identity", "--repo", root)
            gen("rtdetr-l", "--replace", "3=HGBlock(96, 512, 3)*2", "--repo", root)
            models = root / "ultralytics/cfg/models"
            values = f"V8, RT, IMGSZ = {str(models / 'v8')!r}, {str(models / 'rt-detr')!r}, {IMGSZ}\n"
            made[version] = json.loads(run_in_checkout(root, values + ULTRALYTICS_BUILDS).stdout.splitlines()[-1])
        return made[version]

    return get


@pytest.mark.parametrize("version", ["8.4.190", "8.0.227"])
def test_yolov8n_insert_after_15_builds_with_detect_16_19_22(ultralytics_built, version):
    model = ultralytics_built(version)["yolov8n-Identity.yaml"]
    assert model["head"] == [16, 19, 22] and model["from"] == [16, 19, 22]
    assert model["layer16"] == "Identity"
    assert abs(model["width"] - 0.25) < 1e-9 and model["stem"] == 16  # scale n


@pytest.mark.parametrize("version", ["8.4.190", "8.0.227"])
def test_rtdetr_l_insert_after_3_and_replace_3_build(ultralytics_built, version):
    models = ultralytics_built(version)
    assert models["rtdetr-l-Identity.yaml"]["from"] == [22, 25, 28]
    assert models["rtdetr-l-HGBlock.yaml"]["from"] == [21, 24, 27]


def test_gelan_c_replace_of_a_repncspelan4_layer_builds_in_yolov9(checkout_factory, tmp_path):
    root = checkout_factory("yolov9", YOLOV9_RELEASE)
    base = tmp_path / "gelan-c.yaml"
    shutil.copy(EXAMPLES / "models/gelan-c.yaml", base)
    gen(base, "--replace", "6=Conv(512, 3, 1)", "--insert-after", "15=nn.Identity", "--repo", root)
    out = tmp_path / "gelan-c-Conv-Identity.yaml"
    run_in_checkout(root, f"""
        import torch
        from models.yolo import Model
        model = Model({str(out)!r}, ch=3, nc=80).eval()
        assert type(model.model[6]).__name__ == "Conv" and model.model[-1].f == [16, 19, 22]
        with torch.no_grad():
            model(torch.zeros(1, 3, {IMGSZ}, {IMGSZ}))
    """)
