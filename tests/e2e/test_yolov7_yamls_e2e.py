"""Our YOLOv7 model YAMLs build in the yolov7detect package, run at 640 and have the official parameter counts."""

from __future__ import annotations

import json

import pytest
from conftest import run_in_checkout

from yamlforge.scratch import YOLOV7_RELEASE, pristine_checkout

# Parameters after Model.fuse() without the folded ImplicitA/M and the auxiliary head: what the YOLOv7 README
# rounds (36.9M, 6.2M, 151.7M) and what upstream's detect.py prints for the released weights.
DEPLOY_PARAMS = {"yolov7": 36_905_341, "yolov7-tiny": 6_219_709, "yolov7-e6e": 151_687_420}
# The same models as built for training (RepConv branches, implicit layers, auxiliary head), nc=80.
TRAINING_PARAMS = {"yolov7": 37_622_682, "yolov7-tiny": 6_228_762, "yolov7-e6e": 166_408_884}
STRIDES = {"yolov7": [8, 16, 32], "yolov7-tiny": [8, 16, 32], "yolov7-e6e": [8, 16, 32, 64]}

# Run after CFGS = {name: YAML path}: each model built, run and counted, one interpreter for all.
BUILD = """
import json, torch
from yolov7.models.yolo import Model

reports = {}
for name, cfg in CFGS.items():
    model = Model(cfg, ch=3, nc=80).eval()
    training = sum(p.numel() for p in model.parameters())
    with torch.no_grad():
        _, levels = model(torch.zeros(1, 3, 640, 640))
        model.fuse()
    detect = model.model[-1]
    unused = [detect.ia, detect.im]  # folded into the output convs by fuse()
    if hasattr(detect, "m2"):  # IAuxDetect: the auxiliary head only trains
        unused += [detect.m2] + [model.model[i] for i in detect.f[detect.nl:]]
    deploy = sum(p.numel() for p in model.parameters()) - sum(p.numel() for m in unused for p in m.parameters())
    reports[name] = {"training": training, "deploy": deploy, "strides": model.stride.int().tolist(),
                     "grids": [list(t.shape[2:4]) for t in levels]}
    del model
print(json.dumps(reports))
"""


@pytest.fixture(scope="module")
def built() -> dict[str, dict]:
    """name -> what BUILD found for our ``cfg/training/<name>.yaml`` in the pristine ``yolov7/`` package (read only):
    the three models in one subprocess, so the torch start-up is paid once."""
    root = pristine_checkout("yolov7", YOLOV7_RELEASE).parent
    cfgs = {name: str(root / "yolov7/cfg/training" / f"{name}.yaml") for name in sorted(DEPLOY_PARAMS)}
    return json.loads(run_in_checkout(root, f"CFGS = {cfgs!r}\n" + BUILD).stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", sorted(DEPLOY_PARAMS))
def test_yolov7_yaml_matches_official_model(built, name):
    report = built[name]
    assert report["deploy"] == DEPLOY_PARAMS[name]
    assert report["training"] == TRAINING_PARAMS[name]
    assert report["strides"] == STRIDES[name]
    assert report["grids"] == [[640 // s, 640 // s] for s in STRIDES[name]]
