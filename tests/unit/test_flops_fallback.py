"""The inserted FLOPs fallback run as the target runs it: the real 8.0.227 get_flops and YOLOv9 model_info excerpts,
patched, on a model whose stride-sized profile fails (needs torch and thop, which scripts/setup installs)."""

from __future__ import annotations

from copy import deepcopy
from pathlib import Path

import pytest
import thop
import torch
from test_codemod_flops import FIXTURES, apply


class NeedsLargeInput(torch.nn.Module):
    """Fails on a 32x32 image like RT-DETR's decoder does (it selects more queries than such an image has anchors)."""

    stride = torch.tensor([8.0, 16.0, 32.0])

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 64, 3, 2, 1)

    def forward(self, x):
        y = self.conv(x)
        return y.flatten(2).topk(300, dim=2).values  # 300 > 16 * 16 cells of a 32x32 input


def _load(name: str, **names) -> dict:
    namespace = {"torch": torch, "thop": thop, "deepcopy": deepcopy, **names}
    patched = apply((FIXTURES / f"flops-{name}.py.before").read_text(encoding="utf-8"))
    exec(compile(patched, name, "exec"), namespace)  # noqa: S102 -- run the patched excerpt, as the target would
    return namespace


def test_get_flops_falls_back_to_full_size_when_stride_profile_fails():
    get_flops = _load("ultralytics-8.0.227", de_parallel=lambda model: model)["get_flops"]
    gflops = get_flops(NeedsLargeInput(), 64)
    # conv 3->64, k3, 32x32 output: (3*9 MACs + bias) per output element, times 2 for FLOPs
    assert gflops == pytest.approx(2 * 64 * 32 * 32 * (3 * 9 + 1) / 1e9, rel=0.05)


def test_get_flops_unchanged_when_stride_profile_works():
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, 1, 1))
    patched = _load("ultralytics-8.0.227", de_parallel=lambda model: model)["get_flops"]
    stock = {"torch": torch, "thop": thop, "deepcopy": deepcopy, "de_parallel": lambda model: model}
    exec((FIXTURES / "flops-ultralytics-8.0.227.py.before").read_text(encoding="utf-8"), stock)  # noqa: S102 -- as above
    assert patched(model, 64) == stock["get_flops"](model, 64) > 0


def test_yolov9_model_info_reports_full_size_gflops_when_stride_profile_fails():
    lines = []
    logger = type("Logger", (), {"info": staticmethod(lines.append)})
    model_info = _load("yolov9-0.0.4", LOGGER=logger, Path=Path)["model_info"]
    model_info(NeedsLargeInput(), imgsz=640)  # large enough to show with one decimal
    assert lines[-1].endswith(f", {2 * 64 * 320 * 320 * (3 * 9 + 1) / 1e9:.1f} GFLOPs")
