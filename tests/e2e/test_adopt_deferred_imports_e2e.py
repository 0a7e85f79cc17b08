"""Issue 30: a block whose file imports missing packages only where importing it never runs them (inside a function,
under ``if __name__ == "__main__":``) is adopted, applied, generated into a model and verified on 8.4.190 (built, run
forward and backward: importing the block is what this is about; training an adopted block is
tests/e2e/test_adopt_e2e.py's)."""

from __future__ import annotations

from pathlib import Path

from cli_tools import invoke

from yamlforge.adopt import engine as adopt
from yamlforge.check.verify import verify
from yamlforge.targets import detect_target

CAUSES = Path(__file__).resolve().parents[1] / "fixtures" / "adopt" / "causes"


def test_a_block_with_imports_that_never_run_is_adopted_and_verified(checkout_factory, tmp_path):
    result = adopt.adopt(CAUSES / "deferred_imports.py", "GatedMix", out_dir=tmp_path / "adopted")
    assert sum("is not installed" in note for note in result.notes) == 2
    repo = checkout_factory("ultralytics", "8.4.190")
    invoke("apply", "--repo", repo, "--spec", result.spec_path)
    out = tmp_path / "model"
    out.mkdir()
    invoke("gen-yaml", "yolov8n", "--insert-after", "6=GatedMix", "--repo", repo, "-o", out, "--spec", result.spec_path)
    (model,) = out.glob("*.yaml")
    report = verify(model, detect_target(repo), imgsz=64, batch=2)
    assert report.ok, [(c.name, c.message) for c in report.checks if c.status == "fail"]
    assert "GatedMix" in {row["module"].rsplit(".", 1)[-1] for row in report.layers}
