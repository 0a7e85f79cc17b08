"""Fusion variants built in real checkouts: every keep module x every host builds, runs forward and backward,
and has exactly the host's parameters plus those of the inserted module instances; RT-DETR-l with HGBlock_SHSA."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.patch.fusion import fusable
from yamlforge.specs import SpecRegistry

KEEP = sorted(s.name for s in SpecRegistry() if fusable(s))  # not ResidualWrap: it needs the module it wraps

# host -> (YAML args, repeats, {placement: (channels the module gets, number of instances)}), for
# `[-1, repeats, HOST_MODULE, args]` after two stride-2 convs to 64 channels.
ULTRALYTICS_ROWS = {
    "C2f": ([64], 2, {"inner": (32, 2), "output": (64, 1)}),  # self.c = int(64 * 0.5), one per bottleneck
    "C3k2": ([64, False, 0.5], 2, {"inner": (32, 2), "output": (64, 1)}),
    "RepC3": ([64], 2, {"inner": (64, 2), "output": (64, 1)}),  # e = 1.0: hidden width 64, one per RepConv
    "HGBlock": ([32, 64, 3], 2, {"inner": (32, 2), "output": (64, 1)}),  # cm = 32, one per inner conv
    "RepNCSPELAN4": ([64, 64, 32, 1], 1, {"inner": (32, 2), "output": (64, 1)}),  # c4 = 32, cv2 and cv3
}

BUILD = """
import json, sys
import torch

cases = json.loads(sys.argv[2])
kind = cases["kind"]
if kind == "ultralytics":
    from ultralytics.nn import tasks as where
    head = [[[2], 1, "Detect", ["nc"]]]

    def build(d):
        return where.DetectionModel(d, ch=3, nc=4, verbose=False)
else:
    from models import yolo as where
    head = [[[2], 1, "DDetect", ["nc"]]]

    def build(d):
        return where.DetectionModel(d, ch=3, nc=4)

def model(module, args, n):
    d = {"nc": 4, "depth_multiple": 1.0, "width_multiple": 1.0, "anchors": 3,
         "backbone": [[-1, 1, "Conv", [32, 3, 2]], [-1, 1, "Conv", [64, 3, 2]], [-1, n, module, list(args)]],
         "head": head}
    return build(d)

def tensors(out):  # a head's training output: a tensor, or lists / tuples / dicts of them, by version
    if torch.is_tensor(out):
        return [out]
    items = out.values() if isinstance(out, dict) else out if isinstance(out, (list, tuple)) else []
    return [t for item in items for t in tensors(item)]

def count(m):
    return sum(p.numel() for p in m.parameters())

torch.manual_seed(0)
for case in cases["rows"]:
    fused = model(case["fused"], case["args"], case["n"])
    layer = fused.model[2]
    assert type(layer).__name__ == case["fused"], type(layer)
    assert type(layer).__mro__[1].__name__ == case["host"]
    inserted = [m for m in layer.modules() if type(m).__name__ == case["module"]]
    assert len(inserted) == case["instances"], (case, len(inserted))
    module = getattr(where, case["module"])(case["channels"])
    host = model(case["host"], case["args"], case["n"])
    expected = count(host) + case["instances"] * count(module)
    assert count(fused) == expected, (case["fused"], count(fused), expected)
    fused.train()
    out = fused(torch.randn(2, 3, 64, 64))
    loss = sum(t.float().sum() for t in tensors(out))
    loss.backward()
    grads = [p.grad for m in inserted for p in m.parameters() if p.requires_grad]
    assert grads and all(g is not None and torch.isfinite(g).all() for g in grads), case["fused"]
    print(case["fused"], case["at"], count(fused), "=", count(host), "+", case["instances"], "x", count(module))
"""


def _apply(root, at: str | None, hosts: list[str]):
    args = ["apply", "--repo", str(root)] + [a for m in KEEP for a in ("--module", m)]
    args += [a for h in hosts for a in ("--fuse", h)] + (["--fuse-at", at] if at else [])
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output


def _rows(hosts: dict, at: str) -> list[dict]:
    return [
        {"host": host, "module": module, "fused": f"{host}_{module}", "args": args, "n": n, "at": at,
         "channels": placements[at][0], "instances": placements[at][1]}
        for host, (args, n, placements) in hosts.items() for module in KEEP
    ]


@pytest.mark.parametrize("at", ["inner", "output"])
def test_every_keep_module_in_every_host_builds_runs_and_counts_on_8_4_190(checkout_factory, at):
    root = checkout_factory("ultralytics", "8.4.190")
    _apply(root, at, ["all"])
    rows = _rows(ULTRALYTICS_ROWS, at)
    result = _run(root, {"kind": "ultralytics", "rows": rows})
    assert result.stdout.count(f" {at} ") == len(rows) == len(KEEP) * len(ULTRALYTICS_ROWS)


def test_yolov9_repncspelan4_fusions_build_run_and_count(yolov9_checkout):
    _apply(yolov9_checkout, None, ["RepNCSPELAN4"])
    rows = _rows({"RepNCSPELAN4": ULTRALYTICS_ROWS["RepNCSPELAN4"]}, "inner")
    result = _run(yolov9_checkout, {"kind": "yolov9", "rows": rows})
    assert result.stdout.count(" inner ") == len(KEEP)


def _run(root, cases):
    """Like conftest's run_in_checkout (checkout first on sys.path, offline), passing ``cases`` as JSON."""
    env = dict(os.environ, PYTHONPATH=str(root), YOLO_OFFLINE="1")
    env.setdefault("YOLO_CONFIG_DIR", str(root.parent / "ultralytics-config"))
    code = "import sys; sys.path.insert(0, sys.argv[1])\n" + BUILD
    result = subprocess.run([sys.executable, "-c", code, str(root), json.dumps(cases)], cwd=root, env=env,
                            capture_output=True, text=True, timeout=1800, check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return result


def test_rtdetr_l_with_every_hgblock_replaced_by_hgblock_shsa_verifies(checkout_factory, tmp_path):
    from yamlforge.check.verify import verify
    from yamlforge.targets import detect_target

    root = checkout_factory("ultralytics", "8.4.190")
    runner = CliRunner()
    result = runner.invoke(app, ["apply", "--repo", str(root), "--module", "SHSA", "--fuse", "HGBlock"])
    assert result.exit_code == 0, result.output
    out = tmp_path / "rtdetr-l-HGBlock_SHSA.yaml"
    result = runner.invoke(app, ["gen-yaml", "rtdetr-l", "--repo", str(root), "--replace-all", "HGBlock=HGBlock_SHSA",
                                 "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_text().count("HGBlock_SHSA") == 6
    report = verify(out, detect_target(root), imgsz=64, train=True)
    assert report.ok, report.to_json()
