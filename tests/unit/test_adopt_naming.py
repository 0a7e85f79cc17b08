"""adopt's default name: a paper's generic class name (``Block``, ``Conv``) never replaces the target's files or
shadows its layers; no torch needed (the probe's answer is written out, the spec applied as a plan)."""

from __future__ import annotations

import pytest
from checkout_tools import tree_hashes

from yamlforge.adopt import decision, planning
from yamlforge.adopt.source import load_source, module_classes
from yamlforge.errors import YamlforgeError
from yamlforge.patch.plan import plan_apply
from yamlforge.patch.writer import write_changeset
from yamlforge.specs import SpecRegistry, load_spec
from yamlforge.targets import detect_target

PAPER_CODE = "import torch\n\n\nclass {name}(torch.nn.Module):\n    def forward(self, x):\n        return x\n"
VERSIONS = ["8.4.190", "8.0.227"]


def keep_decision(class_name: str, **changes) -> decision.Decision:
    """What the probe decides for ``class_name(dim)``, a width-keeping layer."""
    raw = {"class": class_name, "ok": True, "role": "layer", "rule": "keep", "layout": "nchw", "stride": "1",
           "multiple": 1, "in_arg": "dim", "out_arg": None, "sizes": [20, 40],
           "params": [{"name": "dim", "kind": "POSITIONAL_OR_KEYWORD"}], **changes}
    return decision.decide(raw, {})


def taken(pristine, version: str) -> planning.Taken:
    return planning.Taken.of(detect_target(pristine("ultralytics", version)))


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize(("class_name", "name", "clash"), [
    ("Block", "CoordAttBlock", "which would replace ultralytics/nn/modules/block.py"),
    ("Conv", "CoordAttConv", "would replace ultralytics/nn/modules/conv.py"),
    ("Bottleneck", "CoordAttBottleneck", "Bottleneck is a layer the target already has (ultralytics/nn/tasks.py)"),
    ("CoordAtt", "CoordAtt", None),
], ids=["file", "file-and-layer", "layer", "free"])
def test_a_clashing_class_name_gets_the_source_name_as_prefix(pristine, version, class_name, name, clash):
    naming = planning.choose_name("coord_att", keep_decision(class_name), None, taken(pristine, version))
    assert (naming.name, naming.export) == (name, name)
    assert (naming.renamed is None) if clash is None else clash in naming.renamed


@pytest.mark.parametrize(("source", "class_name", "renamed"), [
    ("block", "Block", "PaperBlock"), ("models", "Mlp", "ModelsMlp"), ("net", "SHSA", None),
    ("2103_coord", "Block", "PaperBlock"), ("net", "ChannelGate", None),
], ids=["source-named-as-class", "word", "acronym", "source-not-an-identifier", "two-words-kept"])
def test_without_a_target_one_word_names_are_prefixed(source, class_name, renamed):
    naming = planning.choose_name(source, keep_decision(class_name), None, planning.Taken.of(None))
    assert naming.name == (renamed or class_name)


def test_a_clashing_name_with_an_adapter_names_the_adapter():
    naming = planning.choose_name("coord_att", keep_decision("Block", layout="nhwc"), None, planning.Taken.of(None))
    assert (naming.name, naming.export) == ("CoordAttBlock", "CoordAttBlock")


@pytest.mark.parametrize(("name", "message"), [
    ("Block", "--name Block would be placed as block.py, which would replace ultralytics/nn/modules/block.py"),
    ("C2f", "--name C2f is a layer the target already has (ultralytics/nn/tasks.py)"),
])
def test_a_user_name_that_clashes_is_refused_in_one_line(pristine, name, message):
    with pytest.raises(YamlforgeError) as info:
        planning.choose_name("coord_att", keep_decision("Block"), name, taken(pristine, "8.4.190"))
    assert str(info.value) == f"{message} (--name)"


@pytest.mark.parametrize(("class_name", "export"), [("Conv", "MyConv"), ("Block", "MyConv"), ("CoordAtt", "CoordAtt")],
                         ids=["class-is-a-layer", "class-is-a-file", "class-free"])
def test_a_free_user_name_is_kept_and_names_the_class_where_its_own_clashes(pristine, class_name, export):
    naming = planning.choose_name("coord_att", keep_decision(class_name), "MyConv", taken(pristine, "8.4.190"))
    assert (naming.name, naming.export, naming.renamed) == ("MyConv", export, None)


@pytest.mark.parametrize("version", VERSIONS)
def test_an_adopted_block_is_applied_without_touching_the_targets_own_files(version, checkout_factory, tmp_path):
    repo = checkout_factory("ultralytics", version)
    target = detect_target(repo)
    paper = tmp_path / "coord_att.py"
    paper.write_text(PAPER_CODE.format(name="Block"))
    source = load_source(paper)
    d = keep_decision("Block")
    naming = planning.choose_name(source.name, d, None, planning.Taken.of(target))
    files = planning.plan_files(source, module_classes(source)[0], d, name=naming.name, export=naming.export,
                                origin=f"{paper}::Block", requires=[],
                                renamed=naming.renamed)
    planning.validate(files)
    out = tmp_path / "specs"
    write_changeset(planning.plan_writes(out, files)[0])
    assert "class CoordAttBlock(Block):" in (out / "coordattblock.py").read_text()
    spec_text = (out / "coordattblock.yaml").read_text()
    assert "named CoordAttBlock, not Block: Block would be placed as block.py" in spec_text
    before = tree_hashes(repo)
    spec = load_spec(out / "coordattblock.yaml")
    write_changeset(plan_apply(target, [spec], SpecRegistry([out / "coordattblock.yaml"])).changeset)
    after = tree_hashes(repo)
    changed = {rel for rel in before if after.get(rel) != before[rel]}
    assert changed <= {"ultralytics/nn/tasks.py", "ultralytics/nn/modules/__init__.py"}
    assert "ultralytics/nn/modules/coordattblock.py" in set(after) - set(before)
    assert "coordattblock import CoordAttBlock" in (repo / "ultralytics/nn/tasks.py").read_text()
