"""gen-yaml's residual form ``N=residual:MODULE`` (x + MODULE(x), a ResidualWrap row): the notation, the row it writes,
the refusal of a module that changes its width, and the bundled specs saying which form they are meant for."""

from __future__ import annotations

import pytest
from ruamel.yaml import YAML
from test_genyaml import mark_applied

from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.compile import GenRequest, compile_yaml
from yamlforge.modelyaml.edits import parse_edit
from yamlforge.resources import SPECS_DIR
from yamlforge.specs import load_spec


@pytest.mark.parametrize(("op", "value", "module", "args", "repeats", "residual"), [
    ("insert-after", "2=residual:SHSA", "SHSA", (), None, True),
    ("insert-after", "2= residual:SHSA(32, pdim=8)", "SHSA", ((None, "32"), ("pdim", "8")), None, True),
    ("insert-before", "layer4=residual:BiLevelRoutingAttention*2", "BiLevelRoutingAttention", (), 2, True),
    ("replace", "4=residual:SHSA", "SHSA", (), None, True),
    # no-op rows: the plain form, and a module whose name merely contains the word
    ("insert-after", "2=SHSA", "SHSA", (), None, False),
    ("insert-after", "2=residual_block(1)", "residual_block", ((None, "1"),), None, False),
], ids=["plain", "args", "repeats", "replace", "not-residual", "name-with-residual"])
def test_residual_prefix_parses(op, value, module, args, repeats, residual):
    edit = parse_edit(op, value)
    assert (edit.module, edit.args, edit.repeats, edit.residual) == (module, args, repeats, residual)


@pytest.mark.parametrize("value", ["2=residual:", "2=residual:SHSA("], ids=["no-module", "unbalanced"])
def test_residual_prefix_without_a_module_is_refused(value):
    with pytest.raises(YamlforgeError) as info:
        parse_edit("insert-after", value)
    assert info.value.where == f"--insert-after {value}"


def inserted(root, value: str):
    return compile_yaml(GenRequest("yolo11n", [parse_edit("insert-after", value)], repo=root, dry_run=True))


def test_residual_insertion_writes_a_residual_wrap_row_with_the_modules_args(genyaml_repo):
    mark_applied(genyaml_repo, "SHSA", "ResidualWrap")
    result = inserted(genyaml_repo, "2=residual:SHSA(qk_dim=32)")
    data = YAML(typ="safe").load(result.new_text)
    assert data["backbone"][3] == [-1, 1, "ResidualWrap", ["SHSA", 32, "None"]]
    assert result.output_path.name == "yolo11n-residual-SHSA.yaml"  # not the plain form's name


def test_residual_insertion_needs_the_wrapper_applied(genyaml_repo):
    mark_applied(genyaml_repo, "SHSA")
    with pytest.raises(YamlforgeError) as info:
        inserted(genyaml_repo, "2=residual:SHSA")
    assert "ResidualWrap is not applied" in str(info.value)
    assert info.value.hint == f"yamlforge apply --repo {genyaml_repo} --module ResidualWrap"


def test_a_module_that_changes_its_width_cannot_be_residual(genyaml_repo):
    mark_applied(genyaml_repo, "RIFormerBlock", "ResidualWrap")
    with pytest.raises(YamlforgeError) as info:
        inserted(genyaml_repo, "2=residual:RIFormerBlock(64)")
    assert info.value.message == ("RIFormerBlock cannot be residual: x + f(x) needs f to keep the width, and "
                               "RIFormerBlock is in_out")
    assert info.value.where == "--insert-after 2=residual:RIFormerBlock(64)"


def test_a_target_layer_without_a_spec_cannot_be_residual(genyaml_repo):
    mark_applied(genyaml_repo, "ResidualWrap")
    with pytest.raises(YamlforgeError, match="Conv cannot be residual: .* has no spec saying it keeps its width"):
        inserted(genyaml_repo, "2=residual:Conv(64)")


def test_shsa_spec_says_it_is_meant_to_be_used_residually():
    spec = load_spec(SPECS_DIR / "shsa.yaml", bundled=True)
    assert "residual:SHSA" in spec.summary
