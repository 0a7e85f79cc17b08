"""adopt → apply --spec → gen-yaml → verify --train on real Ultralytics checkouts, for the fixtures whose spec the
current spec format already describes (keep / in_out layers at stride 1, single-file sources, adapters included)."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from yamlforge import adopt
from yamlforge.cli import app
from yamlforge.resources import SPECS_DIR
from yamlforge.scratch import YOLOV9_RELEASE
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target
from yamlforge.verify import verify

pytestmark = pytest.mark.e2e

FIXTURES = Path(__file__).parent / "fixtures" / "adopt"
# (source, class, where it goes): inserted after a layer, or replacing one (in_out: its own width). yolov8n and
# gelan-c share these numbers: 4, 6, 8 are the P3-P5 backbone stages, 15, 18, 21 the head outputs.
ADOPTED = [
    ("layouts.py", "WindowAttention", "--insert-after", "15=WindowAttentionAdapted"),  # pads 8x8 P3 maps to 14
    ("layouts.py", "ChannelsLastMLP", "--insert-after", "18=ChannelsLastMLPAdapted"),
    ("layouts.py", "TokenConvMixer", "--insert-after", "21=TokenConvMixerAdapted"),
    ("layers.py", "ZeroResidual", "--insert-after", "4=ZeroResidual"),
    ("noext/gated_block", "GatedBlock", "--insert-after", "6=GatedBlock"),
    ("layers.py", "ExpandProject", "--replace", "8=ExpandProject(512)"),
]
BASES = [("ultralytics", "8.4.190", "yolov8n"), ("ultralytics", "8.0.227", "yolov8n"),
         ("yolov9", YOLOV9_RELEASE, str(Path(__file__).parent.parent / "examples" / "models" / "gelan-c.yaml"))]
cli = CliRunner()


def run(*args) -> str:
    result = cli.invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, f"yamlforge {' '.join(map(str, args))} exited {result.exit_code}:\n{result.output}"
    return result.output


@pytest.mark.parametrize(("kind", "version", "base"), BASES, ids=[b[1] for b in BASES])
def test_adopted_layers_apply_gen_yaml_and_train(checkout_factory, tmp_path, kind, version, base):
    repo = checkout_factory(kind, version)
    specs = [adopt.adopt(FIXTURES / source, name, out_dir=tmp_path / "adopted").spec_path
             for source, name, _, _ in ADOPTED]
    run("apply", "--repo", repo, *(arg for spec in specs for arg in ("--spec", spec)))
    edits = [arg for _, _, option, edit in ADOPTED for arg in (option, edit)]
    out = tmp_path / "models"
    out.mkdir()
    run("gen-yaml", base, *edits, "--repo", repo, "-o", out, *(a for s in specs for a in ("--spec", s)))
    (model,) = out.glob("*.yaml")
    report = verify(model, detect_target(repo), imgsz=64, batch=2, train=True)
    assert report.ok, [(c.name, c.message) for c in report.checks if c.status == "fail"]
    built = {row["module"].rsplit(".", 1)[-1] for row in report.layers}
    assert {"WindowAttentionAdapted", "ChannelsLastMLPAdapted", "TokenConvMixerAdapted", "ZeroResidual",
            "GatedBlock", "ExpandProject"} <= built


BUNDLED = [("shsa.py", "SHSA"), ("biformer.py", "BiLevelRoutingAttention"), ("bhvit.py", "token_mixer"),
           ("riformer.py", "RIFormerBlock"), ("revcol.py", "revcol_tiny")]


@pytest.mark.parametrize(("source", "name"), BUNDLED, ids=[b[1] for b in BUNDLED])
def test_adopt_reproduces_each_bundled_spec(source, name):
    """Probing a bundled module's own source gives its bundled spec's rule, stride and arguments, without adapter."""
    spec = SpecRegistry().get(name)
    d = adopt.adopt(SPECS_DIR / source, name, write=False).decision
    assert not d.needs_adapter, d.adapter_reasons
    assert d.rule == spec.channels
    assert (tuple(s for _, s in d.outputs) if d.role == "backbone" else (d.stride,)) == spec.output_strides
    names = [a.name for a in spec.args]
    assert [a.name for a in d.args] == (names[1:] if spec.channels == "in_out" else names)
    assert [a.default for a in d.args] == [a.default for a in spec.args if a.name in {x.name for x in d.args}]
