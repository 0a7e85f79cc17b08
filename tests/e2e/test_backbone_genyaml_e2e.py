"""Issue 4's acceptance on real checkouts: apply RevCol, gen-yaml --backbone, build/train/GFLOPs, revert
byte-identical."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from checkout_tools import tree_hashes
from conftest import run_in_checkout
from typer.testing import CliRunner

from yamlforge.cli import app

VERSIONS = ("8.0.227", "8.2.103", "8.3.228", "8.4.190")
IMGSZ = 128  # a small multiple of 32: revcol_tiny is 30M parameters and CI has two CPU cores

BUILD = """
import json
import torch
from ultralytics import RTDETR, YOLO
from ultralytics.utils.torch_utils import get_flops

IMGSZ = {imgsz}


def tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    if isinstance(out, dict):
        out = list(out.values())
    return [t for o in (out if isinstance(out, (list, tuple)) else []) for t in tensors(o)]


def check(yaml, cls):
    torch.manual_seed(0)
    model = cls(yaml)
    net = model.model
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    net.train()
    if cls is RTDETR:  # the decoder's denoising part needs targets in training mode: the model's own loss
        net.nc = net.yaml["nc"]  # set by the trainer otherwise
        batch = {{"img": x, "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([[1.0], [2.0]]),
                 "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.4, 0.6, 0.3, 0.2]])}}
        loss = net.loss(batch)[0].sum()
    else:
        loss = sum(t.float().sum() for t in tensors(net(x)))
    loss.backward()
    backbone = net.model[0]
    info = net.info(imgsz=IMGSZ)  # (layers, parameters, gradients, GFLOPs)
    net.eval()
    with torch.no_grad():
        outputs = tensors(net(x))
    return {{
        "rows": [[int(m.i), m.f, type(m).__name__] for m in net.model],
        "backbone": type(backbone).__name__,
        "backbone_grad": sum(float(p.grad.abs().sum()) for p in backbone.parameters() if p.grad is not None),
        "info_gflops": float(info[3]),
        "get_flops": float(get_flops(net, IMGSZ)),
        "stride": [float(s) for s in net.stride],
        "finite": all(bool(torch.isfinite(t).all()) for t in outputs),
        "first_output_shape": list(outputs[0].shape),
    }}


print(json.dumps({{"rtdetr": check({rtdetr!r}, RTDETR), "yolov8n": check({yolov8n!r}, YOLO)}}))
"""


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, result.output
    return result.output


def gen(repo: Path, base: str, backbone: str, out: Path) -> Path:
    cli("gen-yaml", base, "--backbone", backbone, "--repo", str(repo), "-o", str(out))
    return out / f"{base}-{backbone}.yaml"


@pytest.mark.parametrize("version", VERSIONS)
def test_revcol_tiny_backbone_swap_builds_trains_reports_gflops_and_reverts(checkout_factory, tmp_path, version):
    repo = checkout_factory("ultralytics", version)
    before = tree_hashes(repo)

    cli("apply", "--repo", str(repo), "--module", "revcol_tiny")
    applied = tree_hashes(repo)
    assert applied != before
    cli("apply", "--repo", str(repo), "--module", "revcol_tiny")
    assert tree_hashes(repo) == applied  # applying twice is a no-op

    out = tmp_path / "models"  # outside the checkout, so revert can be compared file by file
    out.mkdir()
    rtdetr, yolov8n = gen(repo, "rtdetr-l", "revcol_tiny", out), gen(repo, "yolov8n", "revcol_tiny", out)
    result = json.loads(run_in_checkout(repo, BUILD.format(imgsz=IMGSZ, rtdetr=str(rtdetr), yolov8n=str(yolov8n)))
                        .stdout.strip().splitlines()[-1])

    rt, v8 = result["rtdetr"], result["yolov8n"]
    # one backbone row in slots 0-3; the head starts at 4 and reads P3 (slot 1), P4 (slot 2), P5 (slot 3, via -1)
    assert rt["rows"][:2] == [[0, -1, "revcol_tiny"], [4, -1, "Conv"]]
    assert [r for r in rt["rows"] if r[1] in (1, 2)] == [[8, 2, "Conv"], [13, 1, "Conv"]]
    assert rt["rows"][-1] == [22, [15, 18, 21], "RTDETRDecoder"]
    assert v8["rows"][:3] == [[0, -1, "revcol_tiny"], [4, -1, "Upsample"], [5, [-1, 2], "Concat"]]
    assert v8["rows"][-1] == [16, [9, 12, 15], "Detect"]
    assert v8["stride"] == [8.0, 16.0, 32.0]
    for name, run in result.items():
        assert run["backbone"] == "revcol_tiny", name
        assert run["backbone_grad"] > 0, f"{name}: no gradient reached the backbone"
        assert run["info_gflops"] > 0 and run["get_flops"] > 0, f"{name}: no GFLOPs"
        assert run["finite"], name
    assert v8["first_output_shape"][:2] == [2, 84]  # 4 box + 80 class channels
    assert v8["first_output_shape"][2] == (IMGSZ // 8) ** 2 + (IMGSZ // 16) ** 2 + (IMGSZ // 32) ** 2

    cli("revert", "--repo", str(repo))
    assert tree_hashes(repo) == before  # byte for byte, every file
