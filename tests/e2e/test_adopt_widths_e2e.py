"""Issue 30: a block whose hidden width must be twice its input, adopted with --set at one width, then generated and
verified at two other widths on Ultralytics 8.4.190; and a paper's ``Block`` applied without touching the target's
own files."""

from __future__ import annotations

from pathlib import Path

from checkout_tools import tree_hashes
from cli_tools import invoke

from yamlforge.check.verify import verify
from yamlforge.targets import detect_target

SANDGLASS = Path(__file__).resolve().parents[1] / "fixtures" / "adopt" / "paper" / "sandglass.py"


def test_a_block_tied_to_its_width_runs_at_other_widths_under_a_free_name(checkout_factory, tmp_path):
    repo = checkout_factory("ultralytics", "8.4.190")
    specs = tmp_path / "specs"
    output = invoke("adopt", f"{SANDGLASS}::Block", "--set", "hidden_dim=128", "--repo", repo, "-o", specs)
    assert "named     SandglassBlock, not Block: Block would be placed as block.py" in output
    spec = specs / "sandglassblock.yaml"
    assert 'relations: ["hidden_dim = 2 * inp"]' in spec.read_text()
    before = tree_hashes(repo)
    invoke("apply", "--repo", repo, "--spec", spec)
    after = tree_hashes(repo)
    assert {rel for rel in before if after.get(rel) != before[rel]} <= {"ultralytics/nn/tasks.py",
                                                                         "ultralytics/nn/modules/__init__.py"}
    out = tmp_path / "model"
    out.mkdir()
    # yolov8n: layer 2 is 32 wide, layer 6 128 (the block was probed at inp=64 only)
    invoke("gen-yaml", "yolov8n", "--insert-after", "2=SandglassBlock", "--insert-after", "6=SandglassBlock",
        "--repo", repo, "-o", out, "--spec", spec)
    (model,) = out.glob("*.yaml")
    report = verify(model, detect_target(repo), imgsz=64, batch=2, train=False)
    assert report.ok, [(c.name, c.message) for c in report.checks if c.status == "fail"]
    modules = {row["module"].rsplit(".", 1)[-1] for row in report.layers}
    assert "SandglassBlock" in modules
