"""The timm backbone without torch: its spec (strides carried by the row), ``--backbone timm:NAME`` parsing, ``--set``,
the row's slots and the stride choice."""

from __future__ import annotations

import textwrap
from fractions import Fraction

import pytest
from typer.testing import CliRunner

from yamlforge.check.draw import _slots
from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.edits import parse_backbone, yaml_text
from yamlforge.modelyaml.layout import ModelLayout
from yamlforge.modelyaml.naming import stem_part
from yamlforge.modelyaml.timm import TimmStages, pick_strides
from yamlforge.specs import SpecRegistry, load_spec


def test_bundled_timm_spec_takes_its_strides_from_the_row():
    spec = SpecRegistry().get("TimmBackbone")
    assert (spec.role, spec.stride, spec.requires) == ("backbone", "strides", ("timm",))
    assert spec.output_strides == (8, 16, 32)  # the default row's: what `list` and apply's probe show
    assert spec.strides_of(["convnext_atto", [8, 16, 32, 64], {}]) == (8, 16, 32, 64)
    assert spec.strides_of(["resnet18"]) == (8, 16, 32)  # no strides given: the default's
    assert [a.name for a in spec.args] == ["model", "strides", "options"]


SPEC = """\
name: Toy
summary: a toy backbone
paper: "Nobody, 2026"
source: toy.py
exports: [Toy]
role: backbone
stride: {stride}
args:
  - {{name: levels, default: {default}}}
"""


@pytest.mark.parametrize(("stride", "default"), [("levels", "[8, 16]"), ("levels", "3"), ("other", "[8, 16]")],
                         ids=["ok", "default-not-strides", "not-an-arg"])
def test_a_backbone_stride_may_name_the_arg_that_lists_them(tmp_path, stride, default):
    (tmp_path / "toy.py").write_text("class Toy:\n    pass\n")
    path = tmp_path / "toy.yaml"
    path.write_text(textwrap.dedent(SPEC.format(stride=stride, default=default)))
    if (stride, default) == ("levels", "[8, 16]"):
        assert load_spec(path).strides_of([[4, 8, 16]]) == (4, 8, 16)
        return
    with pytest.raises(YamlforgeError, match=f"field 'stride': '{stride}' must name an arg") as info:
        load_spec(path)
    assert info.value.where == f"{path}:7"


@pytest.mark.parametrize(("value", "sets", "module", "args"), [
    ("timm:resnet18", [], "timm:resnet18", ()),
    ("timm:convnext_atto(drop_path_rate=0.1)", ["pretrained=true"], "timm:convnext_atto",
     (("drop_path_rate", "0.1"), ("pretrained", "true"))),
    ("timm:resnet18.a1_in1k", ["pretrained_file=/tmp/r18.pth"], "timm:resnet18.a1_in1k",
     (("pretrained_file", "/tmp/r18.pth"),)),
    ("revcol_tiny", [], "revcol_tiny", ()),
])
def test_parse_backbone_reads_timm_names_and_set_options(value, sets, module, args):
    edit = parse_backbone(value, sets=sets)
    assert (edit.module, edit.args) == (module, args)


@pytest.mark.parametrize(("value", "sets", "message"), [
    ("revcol_tiny", ["drop_path_rate=0.1"], "--set gives a timm model's create_model options"),
    ("timm:resnet18", ["drop_path_rate"], "is not KEY=VALUE"),
    ("timm:resnet18", ["=1"], "is not KEY=VALUE"),
    ("timm:resnet18*2", [], "takes no repeats"),
])
def test_parse_backbone_refuses(value, sets, message):
    with pytest.raises(YamlforgeError, match=message):
        parse_backbone(value, sets=sets)


def test_options_are_written_as_a_flow_mapping():
    assert yaml_text({"drop_path_rate": 0.1, "pretrained_file": "/tmp/a b.pth", "dynamic_img_size": True}) == \
        '{drop_path_rate: 0.1, pretrained_file: "/tmp/a b.pth", dynamic_img_size: True}'
    assert yaml_text({}) == "{}"


@pytest.mark.parametrize(("module", "part"), [("timm:resnet18", "timm-resnet18"),
                                              ("timm:resnet18.a1_in1k", "timm-resnet18"),
                                              ("nn.Identity", "Identity"), ("revcol_tiny", "revcol_tiny")])
def test_output_name_part(module, part):
    assert stem_part(module) == part


YAML = """\
nc: 80
backbone:
  - [-1, 1, TimmBackbone, [convnext_atto, {strides}, {{}}]]
head:
  - [[{reads}], 1, Detect, [nc]]
"""


@pytest.mark.parametrize(("strides", "reads"), [("[8, 16, 32]", "0, 1, 2"), ("[8, 16, 32, 64]", "0, 1, 2, 3")])
def test_a_timm_row_takes_one_slot_per_stride_it_carries(strides, reads):
    text = YAML.format(strides=strides, reads=reads)
    graph = ModelLayout(text, "m.yaml").graph(_slots)
    assert graph.base[0].outputs == len(reads.split(","))
    assert graph.base_slot[graph.base[1].key] == len(reads.split(","))


STAGES = TimmStages("resnet18", (64, 64, 128, 256, 512), (2, 4, 8, 16, 32), {})


def test_the_row_keeps_the_strides_the_head_reads():
    assert pick_strides(STAGES, [Fraction(8), Fraction(16), Fraction(32)], "--backbone timm:resnet18") == (8, 16, 32)


def test_a_p6_head_needs_a_stride_64_stage():
    with pytest.raises(YamlforgeError, match=r"resnet18 has no feature map at stride 64, which the head reads "
                                             r"\(its stages: 2, 4, 8, 16, 32\)") as info:
        pick_strides(STAGES, [Fraction(8), Fraction(16), Fraction(32), Fraction(64)], "--backbone timm:resnet18")
    assert "\n" not in info.value.message


def test_set_without_backbone_is_a_usage_error():
    result = CliRunner().invoke(app, ["gen-yaml", "yolov8n", "--set", "drop_path_rate=0.1"])
    assert result.exit_code == 2
    assert "--set gives the options of a timm backbone" in result.output


def test_timm_weights_map_timm_keys_onto_the_features_only_names():
    """``weights --load TimmBackbone=FILE``: timm's ``stages.0`` is features_only's ``stages_0``, under ``body.``; the
    classifier the features drop is reported as unused, not a refusal."""
    import json

    from yamlforge.runners.yf_weightmap import WeightMap

    official = SpecRegistry().get("TimmBackbone").official
    assert WeightMap.from_dict(json.loads(json.dumps(official.to_dict()))) == official  # the trip to the runner
    report = official.match({"stem.0.weight": (8, 3, 4, 4), "stages.0.blocks.0.conv_dw.weight": (8, 1, 7, 7),
                             "head.fc.weight": (1000, 8)},
                            {"body.stem_0.weight": (8, 3, 4, 4), "body.stages_0.blocks.0.conv_dw.weight": (8, 1, 7, 7)})
    assert report.filled and report.unexpected == ("head.fc.weight",)
    assert report.matched == {"body.stem_0.weight": "stem.0.weight",
                              "body.stages_0.blocks.0.conv_dw.weight": "stages.0.blocks.0.conv_dw.weight"}
    revcol = SpecRegistry().get("RevCol").official
    assert not revcol.flat_stages and revcol.match({"a.0.w": (1,)}, {"a_0.w": (1,)}).unexpected == ("a.0.w",)


def test_timm_answers_are_kept_while_the_python_and_its_timm_are_unchanged(tmp_path, monkeypatch):
    """gen-yaml asks the target's timm once per model and options; a changed timm (its file) asks again."""
    from yamlforge.modelyaml import timm as timm_yaml
    from yamlforge.target_python import RunnerAnswer

    monkeypatch.setenv("YAMLFORGE_CACHE", str(tmp_path / "cache"))
    timm_file = tmp_path / "timm" / "__init__.py"
    timm_file.parent.mkdir()
    timm_file.write_text("__version__ = '1.0'\n")
    asked = []

    def runner(args, python, timeout):
        asked.append(args)
        return RunnerAnswer({"channels": [64, 128, 256], "reductions": [8, 16, 32], "options": {},
                             "timm_file": str(timm_file)}, "")

    monkeypatch.setattr(timm_yaml, "_run_timm", runner)
    first = timm_yaml.ask_timm("resnet18", {}, None, "--backbone")
    assert timm_yaml.ask_timm("resnet18", {}, None, "--backbone") == first and len(asked) == 1
    timm_yaml.ask_timm("resnet18", {"dynamic_img_size": True}, None, "--backbone")  # other options: asked
    timm_file.write_text("__version__ = '1.1'\n")  # timm upgraded in that Python
    assert timm_yaml.ask_timm("resnet18", {}, None, "--backbone") == first and len(asked) == 3
