"""Multi-output backbones and the FLOPs fix in real checkouts: build, forward, backward, GFLOPs, stock models
unchanged."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from conftest import run_in_checkout

from yamlforge.patch.codemods.backbone import add_multi_output_support, backbone_registration
from yamlforge.patch.codemods.flops import fix_get_flops
from yamlforge.patch.codemods.imports import add_imports
from yamlforge.patch.codemods.registration import register_in_parse_model
from yamlforge.targets import detect_target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "backbone"
VERSIONS = ("8.0.227", "8.2.103", "8.3.228", "8.4.190")
BACKBONE = "SyntheticBackbone"
STEM = "synthetic_backbone"


def patch(root: Path) -> Path:
    """What ``yamlforge apply`` will do for a backbone module: place it, import it, register it, add the edits."""
    target = detect_target(root)
    module_path = root / target.module_path(STEM)
    module_path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURES / f"{STEM}.py", module_path)
    if target.kind.package_init:
        (root / target.kind.package_init).touch()
    tasks = target.tasks_path
    filename = target.kind.tasks_file
    code = tasks.read_text(encoding="utf-8")
    code = add_imports(code, [(target.import_module(STEM), BACKBONE)], filename=filename)
    code = register_in_parse_model(code, [backbone_registration(BACKBONE)], filename=filename)
    tasks.write_text(add_multi_output_support(code, filename=filename), encoding="utf-8")
    flops = root / target.kind.flops_file
    flops.write_text(
        fix_get_flops(flops.read_text(encoding="utf-8"), filename=target.kind.flops_file), encoding="utf-8"
    )
    for name in FIXTURES.glob("*.yaml"):
        shutil.copyfile(name, root / name.name)
    return root


@pytest.fixture(scope="module")
def checkouts(checkout_factory):
    """``checkouts(kind, version)`` -> (stock copy, patched copy), made once per module."""
    made: dict[tuple[str, str], tuple[Path, Path]] = {}

    def get(kind: str, version: str) -> tuple[Path, Path]:
        if (kind, version) not in made:
            stock = checkout_factory(kind, version)
            for name in FIXTURES.glob("*.yaml"):
                shutil.copyfile(name, stock / name.name)
            made[kind, version] = (stock, patch(checkout_factory(kind, version)))
        return made[kind, version]

    return get


def run_json(root: Path, code: str) -> dict:
    """Run ``code`` in the checkout; its last stdout line is a JSON object."""
    return json.loads(run_in_checkout(root, code).stdout.strip().splitlines()[-1])


# -- the synthetic backbone, first layer (RT-DETR and Detect heads) and after two Conv layers ------------------------

ULTRALYTICS_SYNTHETIC = """
import json
import torch
from ultralytics import RTDETR, YOLO


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
    backbone = next(m for m in net.model if getattr(m, "yamlforge_slots", 0))
    x = torch.rand(2, 3, 128, 128)
    net.train()
    if cls is RTDETR:  # the decoder's denoising part needs targets in training mode: a real loss
        net.nc = net.yaml["nc"]  # set by the trainer otherwise
        batch = {"img": x, "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.tensor([[1.0], [2.0]]),
                 "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.3], [0.4, 0.6, 0.3, 0.2]])}
        loss = net.loss(batch)[0].sum()
    else:
        loss = sum(t.float().sum() for t in tensors(net(x)))
    loss.backward()
    grads = [p.grad for p in backbone.parameters()]
    _, _, _, gflops = model.info()
    net.eval()
    with torch.no_grad():
        outputs = tensors(net(x))
    return {
        "rows": [[int(m.i), m.f, type(m).__name__] for m in net.model],
        "slots": backbone.yamlforge_slots,
        "save": list(net.save),
        "stride": [float(s) for s in net.stride],
        "backbone_grad": all(g is not None for g in grads) and sum(float(g.abs().sum()) for g in grads) > 0,
        "gflops": float(gflops),
        "finite": all(bool(torch.isfinite(t).all()) for t in outputs),
        "first_output_shape": list(outputs[0].shape),
    }


synthetic = {
    "first-rtdetr": check("synthetic-first-rtdetr.yaml", RTDETR),
    "first-detect": check("synthetic-first-detect.yaml", YOLO),
    "third-detect": check("synthetic-third-detect.yaml", YOLO),
    "third-rtdetr": check("synthetic-third-rtdetr.yaml", RTDETR),
}
"""


@pytest.mark.parametrize("version", VERSIONS)
def test_synthetic_backbone_builds_trains_and_reports_gflops(patched_run, version):
    result = patched_run(version)["synthetic"]

    first, third = result["first-detect"], result["third-detect"]
    # layer 0 takes slots 0-2, so the head's first row is 3 and Detect (row 14 of the YAML) is slot 16
    assert first["rows"][0] == [0, -1, BACKBONE] and first["rows"][1][0] == 3
    assert first["rows"][-1] == [16, [9, 12, 15], "Detect"]
    assert first["save"] == [0, 1, 3, 6, 9, 12, 15]  # backbone P3, P4 slots saved for the neck
    # after two Conv layers: row 2 takes slots 2-4, the head starts at 5
    assert [r[0] for r in third["rows"][:4]] == [0, 1, 2, 5] and third["rows"][2][2] == BACKBONE
    assert third["rows"][-1] == [18, [11, 14, 17], "Detect"]
    assert third["save"] == [2, 3, 5, 8, 11, 14, 17]
    for name in ("first-detect", "third-detect"):
        assert result[name]["stride"] == [8.0, 16.0, 32.0]
    assert result["first-rtdetr"]["rows"][-1] == [21, [14, 17, 20], "RTDETRDecoder"]
    assert result["third-rtdetr"]["rows"][-1] == [23, [16, 19, 22], "RTDETRDecoder"]
    for name, run in result.items():
        assert run["slots"] == 3, name
        assert run["backbone_grad"], f"{name}: no gradient reached the backbone"
        assert run["gflops"] > 0, f"{name}: model.info() shows no GFLOPs"
        assert run["finite"], name


# -- stock models: same parameters, same outputs, and the FLOPs fix ------------------------------------------------

ULTRALYTICS_STOCK = """
import json, sys
import torch
from ultralytics import RTDETR, YOLO
from ultralytics.utils.torch_utils import get_flops

stock = {}
for yaml, cls in (("yolov8n.yaml", YOLO), ("rtdetr-l.yaml", RTDETR)):
    torch.manual_seed(0)
    net = cls(yaml).model.eval()
    x = torch.rand(1, 3, 160, 160, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        out = net(x)
    first = out[0] if isinstance(out, (list, tuple)) else out
    torch.save(first, f"{sys.argv[1]}/{yaml}.pt")
    stock[yaml] = {"params": sum(p.numel() for p in net.parameters())}
    if cls is RTDETR:
        stock[yaml]["gflops"] = get_flops(net, 640)
"""

PRINT_STOCK = '\nprint(json.dumps({"stock": stock}))\n'


@pytest.fixture(scope="module")
def patched_run(checkouts, tmp_path_factory):
    """``patched_run(version)`` -> what one subprocess of the patched checkout found, made once for both tests of the
    version (one interpreter start instead of two): ``stock`` (ULTRALYTICS_STOCK, its outputs saved in ``saved``) and
    ``synthetic`` (ULTRALYTICS_SYNTHETIC). The stock models are built first, before the synthetic backbone's."""
    made: dict[str, dict] = {}

    def get(version: str) -> dict:
        if version not in made:
            _, patched = checkouts("ultralytics", version)
            saved = tmp_path_factory.mktemp(f"patched-{version}")
            code = (ULTRALYTICS_STOCK.replace("sys.argv[1]", repr(str(saved))) + ULTRALYTICS_SYNTHETIC
                    + '\nprint(json.dumps({"stock": stock, "synthetic": synthetic}))\n')
            made[version] = {**run_json(patched, code), "saved": str(saved)}
        return made[version]

    return get


@pytest.mark.parametrize("version", VERSIONS)
def test_stock_models_identical_and_rtdetr_reports_gflops(checkouts, patched_run, version, tmp_path):
    import torch

    stock, _ = checkouts("ultralytics", version)
    before = run_json(stock, ULTRALYTICS_STOCK.replace("sys.argv[1]", repr(str(tmp_path))) + PRINT_STOCK)["stock"]
    patched = patched_run(version)
    after = patched["stock"]
    for yaml in ("yolov8n.yaml", "rtdetr-l.yaml"):
        assert after[yaml]["params"] == before[yaml]["params"]
        assert torch.equal(torch.load(Path(patched["saved"]) / f"{yaml}.pt"), torch.load(tmp_path / f"{yaml}.pt"))
    # rtdetr-l is about 110 GFLOPs at 640; 8.0.227 could not measure it before the fix, later versions already could
    assert after["rtdetr-l.yaml"]["gflops"] == pytest.approx(110, rel=0.05)
    if version == "8.0.227":
        assert before["rtdetr-l.yaml"]["gflops"] == 0
    else:
        assert after["rtdetr-l.yaml"]["gflops"] == before["rtdetr-l.yaml"]["gflops"]


# -- YOLOv9 ----------------------------------------------------------------------------------------------------------

YOLOV9_RUN = """
import json, logging, sys
import torch
from models.yolo import Model
from utils.general import LOGGER

lines = []
handler = logging.Handler()
handler.emit = lambda record: lines.append(record.getMessage())
LOGGER.addHandler(handler)


def tensors(out):
    if isinstance(out, torch.Tensor):
        return [out]
    return [t for o in (out if isinstance(out, (list, tuple)) else []) for t in tensors(o)]


result = {}
for yaml in ("yolov9-gelan-cb.yaml", "yolov9-synthetic.yaml"):
    try:
        torch.manual_seed(0)
        model = Model(yaml, ch=3)
    except Exception as exc:  # the stock checkout cannot build the synthetic backbone
        result[yaml] = {"error": type(exc).__name__}
        continue
    x = torch.rand(2, 3, 128, 128, generator=torch.Generator().manual_seed(1))
    model.train()
    sum(t.float().sum() for t in tensors(model(x))).backward()
    model.eval()
    with torch.no_grad():
        outputs = tensors(model(x))
    torch.save(outputs, f"{sys.argv[1]}/{yaml}.pt")
    result[yaml] = {
        "rows": [[int(m.i), m.f, type(m).__name__] for m in model.model],
        "save": list(model.save),
        "params": sum(p.numel() for p in model.parameters()),
        "grad": sum(float(p.grad.abs().sum()) for p in model.model[0].parameters() if p.grad is not None),
        "summary": [line for line in lines if " summary: " in line][-1],
    }
print(json.dumps(result))
"""


def test_yolov9_cblinear_model_unchanged_and_synthetic_backbone_works(checkouts, tmp_path):
    import torch

    stock, patched = checkouts("yolov9", "0.0.4")
    (tmp_path / "stock").mkdir()
    (tmp_path / "patched").mkdir()
    before = run_json(stock, YOLOV9_RUN.replace("sys.argv[1]", repr(str(tmp_path / "stock"))))
    after = run_json(patched, YOLOV9_RUN.replace("sys.argv[1]", repr(str(tmp_path / "patched"))))

    gelan = "yolov9-gelan-cb.yaml"
    assert after[gelan]["params"] == before[gelan]["params"]
    assert after[gelan]["rows"] == before[gelan]["rows"]
    assert all(
        torch.equal(a, b)
        for a, b in zip(
            torch.load(tmp_path / "patched" / f"{gelan}.pt"), torch.load(tmp_path / "stock" / f"{gelan}.pt")
        )
    )

    synthetic = after["yolov9-synthetic.yaml"]
    assert before["yolov9-synthetic.yaml"] == {"error": "NameError"}  # stock yolo.py does not know the class
    assert synthetic["rows"][0] == [0, -1, BACKBONE] and synthetic["rows"][1][0] == 3
    assert synthetic["rows"][12] == [14, 2, "CBLinear"]  # one slot, reading the backbone's P5 slot
    assert synthetic["rows"][-1] == [18, [9, 12, 17], "DDetect"]
    assert synthetic["save"] == sorted({0, 1, 2, 3, 6, 9, 12, 13, 14, 17})
    assert synthetic["grad"] > 0
    assert not synthetic["summary"].endswith(" gradients")  # a GFLOPs figure follows
    assert float(synthetic["summary"].rsplit(", ", 1)[1].split()[0]) > 0
