"""Issue 20: adopt on the patterns of real paper code (constraints, gates, star imports, repositories, backbones ...).

The probes run in this venv's Python (as test_adopt.py's do); the constraint checks of gen-yaml and apply --verify
need no torch.
"""

from __future__ import annotations

import shutil
import subprocess
import textwrap
from fractions import Fraction
from pathlib import Path

import pytest
from test_genyaml import mark_applied, write_spec

from yamlforge.adopt import engine as adopt
from yamlforge.adopt import gitsource
from yamlforge.adopt import source as adopt_source
from yamlforge.check.probe import probe_yaml
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.compile import GenRequest, compile_yaml, parse_edit
from yamlforge.modelyaml.load import load_nodes
from yamlforge.specs import SpecRegistry, load_spec
from yamlforge.targets import detect_target

PAPER = Path(__file__).resolve().parents[1] / "fixtures" / "adopt" / "paper"


@pytest.fixture(scope="module")
def constrained() -> dict[str, adopt.ClassReport]:
    return {r.name: r for r in adopt.survey(PAPER / "constrained.py")}


# ---------------------------------------------------------------- 1, 2: widths


@pytest.mark.parametrize(("name", "constraints"), [
    ("GroupedContext", {"multiple": 32}),  # channels // 32 groups: 48 cannot be reshaped into 32 groups
    ("PairedShuffle", {"multiple": 64}),  # asserts channels % (2 * groups) == 0: even 32 fails
])
def test_a_grouped_block_gets_the_smallest_multiple_that_builds(constrained, name, constraints):
    d = constrained[name].decision
    assert (d.rule, d.constraints, d.needs_adapter) == ("keep", constraints, False)


def test_hidden_twice_the_input_is_derived_and_written_as_a_relation(constrained):
    d = constrained["ExpandedMixer"].decision
    assert d.derived == {"hidden_dim": Fraction(2)}
    assert d.constraints == {"relations": ["hidden_dim = 2 * inp"]}
    assert adopt._adapter_signature(d) == (", c1", "inp=c1, hidden_dim=2 * c1")


def test_an_inp_oup_gate_is_kept_passing_the_width_twice(constrained, tmp_path):
    d = constrained["InputGate"].decision
    assert (d.rule, d.needs_adapter, adopt.yaml_row(d, "InputGate")) == ("equal", False, "- [-1, 1, InputGate, []]")
    spec = adopt.adopt(PAPER / "constrained.py", "InputGate", out_dir=tmp_path).spec_path
    loaded = load_spec(spec)
    assert loaded.channels == "custom"
    assert loaded.branch.split("\n")[:2] == ["c2 = ch[f]", "args = [ch[f], ch[f], *args]"]
    assert "runs only with oup == inp" in spec.read_text()


def test_constrained_spec_is_written_and_loads(tmp_path):
    spec = load_spec(adopt.adopt(PAPER / "constrained.py", "GroupedContext", out_dir=tmp_path).spec_path)
    assert (spec.constraints.multiple, spec.constraints.power_of_two) == (32, False)


# ---------------------------------------------------------------- 9, 10: --set defaults, shrinking maps


def test_a_map_shrinking_by_two_pixels_is_refused_proposing_the_padding():
    with pytest.raises(YamlforgeError, match=r"2 pixels smaller than its input .*try --set padding=1") as caught:
        adopt.adopt(PAPER / "constrained.py", "ValidConv", sets=["kernel_size=3"], write=False)
    assert "\n" not in str(caught.value)


def test_every_set_value_is_the_spec_default(tmp_path):
    result = adopt.adopt(PAPER / "constrained.py", "ValidConv", sets=["kernel_size=3", "padding=1"], out_dir=tmp_path)
    args = {a.name: a.default for a in load_spec(result.spec_path).args}
    assert (args["kernel_size"], args["padding"], args["stride"]) == (3, 1, 1)
    assert result.yaml_row == "- [-1, 1, ValidConv, [256, 3, 1, 1]]"


# ---------------------------------------------------------------- 3: classes the AST cannot see


def test_star_imported_nn_class_is_confirmed_by_the_runner(tmp_path):
    assert adopt_source.module_classes(adopt_source.load_source(PAPER / "starnn.py")) == []
    reports = adopt.survey(PAPER / "starnn.py")
    assert [(r.name, r.error) for r in reports] == [("StarGate", None)]  # Settings is not a module: not listed
    d = adopt.adopt(PAPER / "starnn.py", "StarGate", out_dir=tmp_path).decision
    assert (d.rule, d.needs_adapter) == ("keep", False)


def test_a_class_that_is_no_module_is_refused_in_one_line():
    with pytest.raises(YamlforgeError, match="no torch.nn.Module class"):
        adopt.adopt(PAPER / "starnn.py", "Settings", write=False)


# ---------------------------------------------------------------- 6: values from the paper's network class


def test_required_values_are_proposed_from_the_network_class(tmp_path):
    result = adopt.adopt(PAPER / "network_literals.py", "PartialMixer", out_dir=tmp_path)
    d = result.decision
    assert d.fixed == {"qk_dim": 16} and d.derived == {"pdim": Fraction(1, 4)}
    assert adopt._adapter_signature(d)[1] == "dim=c1, pdim=c1 // 4, qk_dim=16"
    text = result.spec_path.read_text()
    assert "qk_dim = 16 (network_literals.py:29)" in text and "pdim = dim // 4 (network_literals.py:29)" in text


def test_without_a_call_in_the_source_missing_values_are_still_asked_for():
    with pytest.raises(YamlforgeError, match="needs constructor argument.* kernel_size: give them with --set"):
        adopt.adopt(PAPER / "constrained.py", "ValidConv", write=False)


@pytest.mark.parametrize(("call", "expected"), [
    ("Block(ed, 16, ed // 4)", [("qk", 16, None), ("p", None, (1, 4))]),
    ("Block(c, 2 * c, c)", [("qk", None, (2, 1)), ("p", None, (1, 1))]),
    ("Block(c, c * 3, 'x')", [("qk", None, (3, 1)), ("p", "x", None)]),
    ("Block(c, width, c - 1)", []),  # neither a literal nor a ratio: nothing proposed
], ids=["literal-and-floordiv", "times-and-same", "times-and-string", "nothing"])
def test_proposals_from_a_call(tmp_path, call, expected):
    (tmp_path / "net.py").write_text(textwrap.dedent(f"""\
        from torch import nn
        class Block(nn.Module):
            def __init__(self, dim, qk, p):
                super().__init__()
        class Net(nn.Module):
            def __init__(self, c=8, width=4):
                super().__init__()
                self.b = {call}
        """))
    source = adopt_source.load_source(tmp_path / "net.py")
    info = next(c for c in adopt_source.module_classes(source) if c.name == "Block")
    assert [(p.name, p.value, p.ratio) for p in adopt_source.proposals(source, info)] == expected


# ---------------------------------------------------------------- 7, 8: refused in one line


def test_a_two_input_block_is_refused_naming_its_signature():
    with pytest.raises(YamlforgeError, match=r"forward\(x, skip\) takes a second input: two-input blocks"):
        adopt.adopt(PAPER / "two_input.py", "SkipUp", write=False)


def test_a_cuda_only_operator_is_refused_naming_the_extension():
    with pytest.raises(YamlforgeError, match="needs the compiled extension yamlforge_test_deform_ext") as caught:
        adopt.adopt(PAPER / "cuda_op.py", "DeformBlock", write=False)
    assert "forward failed in every layout" not in str(caught.value)


# ---------------------------------------------------------------- 4, 5: repositories, backbones


@pytest.mark.parametrize("given", ["repo/model/blocks.py", "repo"], ids=["file", "folder"])
def test_repository_file_takes_only_what_it_imports_relative(tmp_path, given):
    result = adopt.adopt(PAPER / given, "ResidualMixer", out_dir=tmp_path)
    rels = sorted(p.relative_to(tmp_path).as_posix() for p in result.files)
    assert rels == ["residualmixer.yaml", "residualmixer/__init__.py", "residualmixer/model/__init__.py",
                    "residualmixer/model/basic_modules.py", "residualmixer/model/blocks.py",
                    "residualmixer/model/registry.py", "residualmixer/utils/__init__.py"]  # not tools/train.py
    blocks = (tmp_path / "residualmixer/model/blocks.py").read_text()
    assert "from . import BLOCKS\nfrom .basic_modules import ConvBN\nfrom ..utils import init_weights" in blocks
    assert "entry: model/blocks.py" in result.spec_path.read_text()


def test_import_root_walks_up_while_the_folder_is_a_package():
    assert adopt_source.import_root(PAPER / "repo/model/blocks.py") == PAPER / "repo"
    assert adopt_source.import_root(PAPER / "constrained.py") == PAPER


def test_fork_feat_backbone_is_probed_at_image_sizes(tmp_path):
    d = adopt.adopt(PAPER / "poolformer_like.py", "PoolNet", sets=["fork_feat=True"], out_dir=tmp_path).decision
    assert (d.role, d.multiple) == ("backbone", 1)
    assert [s for _, s in d.outputs] == [4, 8, 16, 32]


# ---------------------------------------------------------------- git sources


def git(*args, cwd):
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True,
                   env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                        "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin", "HOME": str(cwd)})


def test_git_source_is_checked_out_at_its_revision_into_the_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("YAMLFORGE_CACHE", str(tmp_path / "cache"))
    repo = tmp_path / "paper-repo"
    (repo / "models").mkdir(parents=True)
    shutil.copy(PAPER / "constrained.py", repo / "models" / "blocks.py")
    git("init", "-q", cwd=repo)
    git("add", ".", cwd=repo)
    git("commit", "-qm", "blocks", cwd=repo)
    rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True,
                         check=True).stdout.strip()
    (repo / "models" / "blocks.py").write_text("broken(")  # a later edit: the pinned revision is what is read
    git("commit", "-qam", "break", cwd=repo)
    source = f"git+file://{repo}@{rev}#models/blocks.py"
    result = adopt.adopt(source, "GroupedContext", out_dir=tmp_path / "out")
    assert result.decision.constraints == {"multiple": 32}
    assert f"yamlforge adopt {source}::GroupedContext" in result.spec_path.read_text()
    shutil.rmtree(repo)  # the second fetch reads the cache
    assert gitsource.fetch(source).read_text() == (PAPER / "constrained.py").read_text()


@pytest.mark.parametrize(("source", "message"), [
    ("git+nothing", "is not git\\+URL@REV#PATH"),
    ("git+file:///nonexistent/repo@main#x.py", "git could not fetch"),
])
def test_bad_git_sources_are_one_line(tmp_path, monkeypatch, source, message):
    monkeypatch.setenv("YAMLFORGE_CACHE", str(tmp_path))
    with pytest.raises(YamlforgeError, match=message):
        gitsource.fetch(source)


# ---------------------------------------------------------------- the spec field and its checks (no torch)


def grouped_spec(folder: Path, constraints: str = "constraints: {multiple: 32}\n") -> Path:
    return write_spec(folder, "Grouped", args=constraints)


@pytest.mark.parametrize(("text", "message"), [
    ("constraints: {multiple: 0}\n", "multiple \\(a positive whole number\\)"),
    ("constraints: {multiple: 32, groups: 4}\n", "unknown key groups"),
    ("constraints: {power_of_two: 1}\n", "power_of_two \\(true/false\\)"),
    ("constraints: [32]\n", "field 'constraints' must be a dict"),
], ids=["zero", "unknown-key", "not-bool", "not-a-mapping"])
def test_constraints_field_is_validated(tmp_path, text, message):
    with pytest.raises(YamlforgeError, match=message) as caught:
        load_spec(grouped_spec(tmp_path, text))
    assert caught.value.where.endswith(":9")


def gen(repo: Path, spec: Path, edit: str, scale: str | None = None):
    return compile_yaml(GenRequest("yolov8n.yaml", [parse_edit("insert-after", edit)], repo=repo, scale=scale,
                                   spec_paths=(spec,), output=repo / "out.yaml"))


def test_gen_yaml_refuses_a_scaled_width_the_constraint_forbids(genyaml_repo, tmp_path):
    spec = grouped_spec(tmp_path)
    mark_applied(genyaml_repo, "Grouped")
    with pytest.raises(YamlforgeError) as caught:
        gen(genyaml_repo, spec, "0=Grouped")  # layer 0 is Conv(64) x 0.25 = 16 wide at scale n
    error = caught.value
    assert error.message == ("layer 1 (Grouped) gets 16 channels at scale n, not a multiple of 32 (its spec's "
                          "constraints: multiple of 32)")
    # m (x0.75 -> 48) and x (x1.25 -> 80) do not work either
    assert (error.where, error.hint) == ("--insert-after 0=Grouped", "--scale s builds it (scales that work: s, l)")
    assert not (genyaml_repo / "out.yaml").exists()
    assert "Grouped" in gen(genyaml_repo, spec, "0=Grouped", scale="s").new_text  # 32 wide at s
    assert "Grouped" in gen(genyaml_repo, spec, "2=Grouped").new_text  # C2f(128) x 0.25 = 32


def test_gen_yaml_checks_an_in_out_module_output_width_too(genyaml_repo, tmp_path):
    spec = write_spec(tmp_path, "Grouped", args="args: [{name: c2}]\nconstraints: {power_of_two: true}\n")
    spec.write_text(spec.read_text().replace("channels: keep", "channels: in_out"))
    mark_applied(genyaml_repo, "Grouped")
    with pytest.raises(YamlforgeError, match="gets 48 channels at scale n, not a power of two"):
        gen(genyaml_repo, spec, "4=Grouped(192)")  # 192 x 0.25 = 48


def test_apply_verify_probe_refuses_a_constraint_its_width_breaks(tmp_path):
    spec = grouped_spec(tmp_path, "constraints: {multiple: 256}\n")
    registry = SpecRegistry([spec])
    with pytest.raises(YamlforgeError,
                       match="Grouped would get 128 channels in the probe model, not a multiple of 256"):
        probe_yaml(_ultralytics(), [("Grouped", registry.get("Grouped"))])
    assert "Grouped" in probe_yaml(_ultralytics(), [("Grouped", SpecRegistry([grouped_spec(tmp_path / "ok")]).get(
        "Grouped"))])


def _ultralytics():
    from yamlforge.scratch import pristine_checkout

    return detect_target(pristine_checkout("ultralytics", "8.4.190"))


def test_generated_spec_with_relations_loads(tmp_path, constrained):
    d = constrained["ExpandedMixer"].decision
    text = adopt.render_spec(d, name="M", export="M", origin="m.py::M", source="m.py", entry=None, requires=[])
    data, _ = load_nodes(text, where="spec", what="spec")
    assert data["constraints"] == {"relations": ["hidden_dim = 2 * inp"]}


def test_a_default_output_name_of_many_edits_stays_a_valid_file_name():
    from yamlforge.modelyaml.compile import Base, Edit, _output_stem

    edits = [Edit("insert-after", i, f"Module{i}LongName") for i in range(30)]
    stem = _output_stem(Base(Path("x.yaml"), "yolov8n", "n"), None, edits, None)
    assert stem.endswith("-Module5LongName-and24more") and len(stem) < 200
    assert _output_stem(Base(Path("x.yaml"), "yolov8n", "n"), None, edits[:2], None) == \
        "yolov8n-Module0LongName-Module1LongName"
