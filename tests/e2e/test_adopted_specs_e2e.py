"""Each notation adopt writes, end to end on Ultralytics 8.4.190: adopt → apply → gen-yaml on yolov8n → verify.

One checkout and one apply for the module; no training here (the acceptance matrix trains). The package's
checkpoint is also reloaded under ``ULTRALYTICS_SAFE_LOAD=1``, whose loader accepts classes only one level below
``ultralytics.nn.modules``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_tools import invoke
from conftest import run_in_checkout

from yamlforge.adopt import engine as adopt
from yamlforge.check.verify import verify
from yamlforge.targets import detect_target

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adopt"
# notation -> (source, class, the spec text it must hold, gen-yaml edit on yolov8n)
NOTATIONS = {
    "channels-none": ("layers.py", "SpatialGate", "channels: none", ["--insert-after", "2=SpatialGate"]),
    "stride-1/2": ("layers.py", "ShuffleUpsample", "stride: 1/2", ["--replace", "10=ShuffleUpsample"]),
    "package": ("pkg", "DualPathBlock", "entry: model/blocks.py", ["--insert-after", "9=DualPathBlock"]),
}

@pytest.fixture(scope="module")
def applied(checkout_factory, tmp_path_factory) -> tuple[Path, dict[str, Path]]:
    """(a 8.4.190 checkout with the three adopted specs applied, their spec paths by notation)."""
    out = tmp_path_factory.mktemp("adopted")
    specs = {key: adopt.adopt(FIXTURES / source, name, out_dir=out).spec_path
             for key, (source, name, *_) in NOTATIONS.items()}
    repo = checkout_factory("ultralytics", "8.4.190")
    invoke("apply", "--repo", repo, *(arg for spec in specs.values() for arg in ("--spec", spec)))
    return repo, specs


@pytest.mark.parametrize("notation", NOTATIONS)
def test_adopted_notation_applies_generates_and_verifies(applied, tmp_path, notation):
    repo, specs = applied
    _, name, text, edit = NOTATIONS[notation]
    assert text in specs[notation].read_text()
    invoke("gen-yaml", "yolov8n", *edit, "--repo", repo, "-o", tmp_path, "--spec", specs[notation])
    (model,) = tmp_path.glob("*.yaml")
    report = verify(model, detect_target(repo), imgsz=64, batch=2)
    assert report.ok, [(c.name, c.message) for c in report.checks if c.status == "fail"]
    assert name in {row["module"].rsplit(".", 1)[-1] for row in report.layers}


def test_package_checkpoint_reloads_under_ultralytics_safe_load(applied, tmp_path, monkeypatch):
    repo, specs = applied
    invoke("gen-yaml", "yolov8n", *NOTATIONS["package"][3], "--repo", repo, "-o", tmp_path, "--spec", specs["package"])
    (model,) = tmp_path.glob("*.yaml")
    weights = tmp_path / "package.pt"
    run_in_checkout(repo, f"""
        import torch
        from ultralytics.nn.tasks import DetectionModel
        torch.save({{"model": DetectionModel({str(model)!r}, verbose=False)}}, {str(weights)!r})
    """)
    monkeypatch.setenv("ULTRALYTICS_SAFE_LOAD", "1")  # run_in_checkout passes the environment on
    result = run_in_checkout(repo, f"""
        from ultralytics.nn.tasks import torch_safe_load
        ckpt, _ = torch_safe_load({str(weights)!r})
        print(sorted({{type(m).__module__ for m in ckpt["model"].modules() if "dualpath" in type(m).__module__}}))
    """)
    assert result.stdout.strip().splitlines()[-1] == "['ultralytics.nn.modules.dualpathblock']"
