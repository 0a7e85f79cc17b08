"""gen-yaml outputs built by the target's own model classes in real checkouts, with a forward pass.

Only stock layers here: scenarios with yamlforge modules (SHSA, BiLevelRoutingAttention, token_mixer,
RIFormerBlock) need `yamlforge apply` on the checkout first and live with the apply e2e tests.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("version", ["8.4.190", "8.0.227"])
def test_yolov8n_insert_after_15_builds_with_detect_16_19_22(checkout_factory, version):
    root = checkout_factory("ultralytics", version)
    gen("yolov8n", "--insert-after", "15=nn.Identity", "--repo", root)
    out = root / "ultralytics/cfg/models/v8/yolov8n-Identity.yaml"
    run_in_checkout(root, f"""
        import torch
        from ultralytics import YOLO
        model = YOLO({str(out)!r}).model.eval()
        assert model.yaml["head"][-1][0] == [16, 19, 22], model.yaml["head"][-1]
        assert type(model.model[16]).__name__ == "Identity"
        assert model.model[-1].f == [16, 19, 22]
        assert abs(model.yaml["scales"]["n"][1] - 0.25) < 1e-9 and model.model[0].conv.out_channels == 16  # scale n
        with torch.no_grad():
            model(torch.zeros(1, 3, {IMGSZ}, {IMGSZ}))
    """)


@pytest.mark.parametrize("version", ["8.4.190", "8.0.227"])
def test_rtdetr_l_insert_after_3_and_replace_3_build(checkout_factory, version):
    root = checkout_factory("ultralytics", version)
    gen("rtdetr-l", "--insert-after", "3=nn.Identity", "--repo", root)
    gen("rtdetr-l", "--replace", "3=HGBlock(96, 512, 3)*2", "--repo", root)
    folder = root / "ultralytics/cfg/models/rt-detr"
    run_in_checkout(root, f"""
        import torch
        from ultralytics import RTDETR
        for name, check in (("rtdetr-l-Identity.yaml", 4), ("rtdetr-l-HGBlock.yaml", 3)):
            model = RTDETR({str(folder)!r} + "/" + name).model.eval()
            decoder = model.model[-1]
            assert decoder.f == ([22, 25, 28] if check == 4 else [21, 24, 27]), decoder.f
            with torch.no_grad():
                model(torch.zeros(1, 3, {IMGSZ}, {IMGSZ}))
    """)


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
