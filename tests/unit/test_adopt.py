"""adopt: probing each fixture pattern in a subprocess of the venv's Python, the decisions, specs and adapters."""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import pytest

from yamlforge.adopt import engine as adopt
from yamlforge.adopt.source import load_source, module_classes
from yamlforge.errors import YamlforgeError
from yamlforge.modelyaml.load import load_nodes

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adopt"
PYTHON = sys.executable


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory):
    """Every class of the three single-file fixtures, probed once: copied into one folder, one runner process."""
    folder = tmp_path_factory.mktemp("adopt") / "fixtures"
    folder.mkdir()
    for name in ("layers.py", "layouts.py", "networks.py"):
        (folder / name).write_text((FIXTURES / name).read_text())
    return {r.name: r for r in adopt.survey(folder, PYTHON)}


# (class, rule, layout, stride, multiple)
PROBED = [
    ("ChannelGate", "keep", "nchw", Fraction(1), 1),
    ("ExpandProject", "in_out", "nchw", Fraction(1), 1),
    ("SpatialGate", "none", "nchw", Fraction(1), 1),
    ("EnergyAttention", "none", "nchw", Fraction(1), 1),
    ("ShuffleUpsample", "keep", "nchw", Fraction(1, 2), 1),
    ("StridedDown", "in_out", "nchw", Fraction(2), 1),
    ("ZeroResidual", "keep", "nchw", Fraction(1), 1),
    ("ChannelsLastMLP", "keep", "nhwc", Fraction(1), 1),
    ("TokenConvMixer", "keep", "tokens_hw", Fraction(1), 1),
    ("WindowAttention", "keep", "nchw", Fraction(1), 7),
    ("SpaceToDepthDown", "ratio", "nchw", Fraction(2), 2),
]


@pytest.mark.parametrize(("name", "rule", "layout", "stride", "multiple"), PROBED, ids=[p[0] for p in PROBED])
def test_probe_infers_rule_layout_stride_and_multiple(surveyed, name, rule, layout, stride, multiple):
    report = surveyed[name]
    assert report.error is None
    d = report.decision
    assert (d.rule, d.layout, d.stride, d.multiple) == (rule, layout, stride, multiple)


def test_a_width_multiple_becomes_a_custom_branch(surveyed):
    d = surveyed["SpaceToDepthDown"].decision
    text = adopt.render_spec(d, name="Down", export="DownAdapted", origin="x.py::SpaceToDepthDown",
                             source="down.py", entry=None, requires=[])
    spec, _ = load_nodes(text, where="spec", what="spec")
    assert (spec["channels"], spec["stride"]) == ("custom", 2)
    assert spec["branch"] == "c2 = ch[f] * 2\nargs = [ch[f], *args]\n"


@pytest.mark.parametrize(("name", "adapted"), [("ChannelGate", False), ("ExpandProject", False), ("SpatialGate", False),
                                               ("ChannelsLastMLP", True), ("TokenConvMixer", True),
                                               ("WindowAttention", True)])
def test_adapter_only_where_the_yaml_cannot_use_the_class(surveyed, name, adapted):
    assert surveyed[name].decision.needs_adapter is adapted


REFUSED = [
    ("FixedGridBlock", "fixed map size (input_resolution)"),
    ("PyramidNet", ("classifier (output (1, 1000)), not a layer or backbone; a feature-map output may be behind "
                    "fork_feat: try --set fork_feat=True")),
    ("TinyClassifier", "is a classifier (output (1, 10))"),
    ("NeedsHeads", "needs constructor argument(s) num_heads: give them with --set num_heads=..."),
]


@pytest.mark.parametrize(("name", "reason"), REFUSED, ids=[r[0] for r in REFUSED])
def test_refusals_are_one_line(surveyed, name, reason):
    error = surveyed[name].error
    assert reason in error
    assert "\n" not in error


def test_backbone_behind_fork_feat_gets_outputs_and_width_list(tmp_path):
    result = adopt.adopt(FIXTURES / "networks.py", "PyramidNet", sets=["fork_feat=True"], python=PYTHON,
                         out_dir=tmp_path)
    d = result.decision
    assert d.role == "backbone"
    assert d.outputs == ((8, 4), (16, 8), (24, 16), (32, 32))
    assert result.yaml_row.startswith("- [-1, 1, PyramidNetAdapted, []]  # takes 4 index slots")
    module = (tmp_path / "pyramidnetadapted.py").read_text()
    assert "self.m = PyramidNet(in_chans=c1, num_classes=num_classes, widths=widths, fork_feat=True)" in module
    assert "self.width_list = self._output_widths(c1)" in module
    spec, _ = load_nodes(result.spec_path.read_text(), where="spec", what="spec")
    assert (spec["role"], spec["stride"], spec["exports"]) == ("backbone", [4, 8, 16, 32], ["PyramidNetAdapted"])


def test_package_imports_become_relative_and_einops_is_required(tmp_path):
    result = adopt.adopt(FIXTURES / "pkg", "DualPathBlock", python=PYTHON, out_dir=tmp_path)
    blocks = (tmp_path / "dualpathblock" / "model" / "blocks.py").read_text()
    assert "from .basic_modules import ConvNorm, channel_shuffle" in blocks
    spec, _ = load_nodes(result.spec_path.read_text(), where="spec", what="spec")
    assert (spec["source"], spec["entry"], spec["requires"]) == ("dualpathblock/", "model/blocks.py", ["einops"])
    assert result.decision.rule == "keep"
    assert result.yaml_row == "- [-1, 1, DualPathBlock, []]"


def test_file_without_extension_and_chatty_forward(tmp_path):
    result = adopt.adopt(FIXTURES / "noext" / "gated_block", "GatedBlock", python=PYTHON, out_dir=tmp_path)
    assert result.decision.rule == "keep"
    assert (tmp_path / "gatedblock.py").read_text() == (FIXTURES / "noext" / "gated_block").read_text()


def test_generated_adapters_probe_as_plain_nchw_layers(surveyed, tmp_path):
    """Each adapter, probed like user code, is an NCHW layer with the original's rule and no size constraint."""
    folder = tmp_path / "adapters"
    for name in ("ChannelsLastMLP", "TokenConvMixer", "WindowAttention"):
        report = surveyed[name]
        original = (FIXTURES / "layouts.py").read_text()
        text = adopt.render_adapter(report.decision, name + "Adapted", original=original)
        (folder / f"{name.lower()}.py").parent.mkdir(exist_ok=True)
        (folder / f"{name.lower()}.py").write_text(text)
    source = load_source(folder)
    wanted = [c for c in module_classes(source) if c.name.endswith("Adapted")]
    found = adopt.probe(source, wanted, {}, PYTHON)
    assert {n: (r["layout"], r["rule"], r["multiple"], r["stride"]) for n, r in found.items()} == {
        f"{n}Adapted": ("nchw", "keep", 1, "1") for n in ("ChannelsLastMLP", "TokenConvMixer", "WindowAttention")}


def test_failing_and_hanging_forward_are_one_line_each():
    reports = {r.name: r for r in adopt.survey(FIXTURES / "bad.py", PYTHON, timeout=8)}
    assert reports["Broken"].error.startswith(
        "forward failed in every layout: nchw: RuntimeError: this block is broken")
    assert reports["Hangs"].error.startswith("Hangs did not finish within 8 s (forward, nchw input at 40x40)")


# ------------------------------------------------------------------ without a subprocess


def test_unknown_class_names_close_matches():
    with pytest.raises(YamlforgeError, match="no nn.Module class 'ChanelGate' in the source; did you mean ChannelGate"):
        adopt.adopt(FIXTURES / "layers.py", "ChanelGate", python=PYTHON, write=False)


@pytest.mark.parametrize(("pairs", "values"), [
    (["fork_feat=True"], {"fork_feat": True}),
    (["fork_feat=true", "drop=null"], {"fork_feat": True, "drop": None}),
    (["out_indices=[0, 1, 2, 3]"], {"out_indices": [0, 1, 2, 3]}),
    (["act=gelu"], {"act": "gelu"}),
    (["ratio=0.5"], {"ratio": 0.5}),
], ids=["bool", "yaml-words", "list", "bare-word", "float"])
def test_parse_sets(pairs, values):
    assert adopt.parse_sets(pairs) == values


@pytest.mark.parametrize("pair", ["fork_feat", "=3", "1x=3"])
def test_parse_sets_refuses_malformed_pairs(pair):
    with pytest.raises(YamlforgeError, match="is not KEY=VALUE"):
        adopt.parse_sets([pair])


def raw(**changes) -> dict:
    """A runner answer for a keep layer ``Block(dim, heads=4, act=<class>, scale=1.0)``."""
    answer = {"class": "Block", "ok": True, "role": "layer", "rule": "keep", "layout": "nchw", "stride": "1",
              "multiple": 1, "in_arg": "dim", "out_arg": None, "sizes": [13, 20, 40], "params": [
                  {"name": "dim", "kind": "POSITIONAL_OR_KEYWORD"},
                  {"name": "heads", "kind": "POSITIONAL_OR_KEYWORD", "value": 4},
                  {"name": "act", "kind": "POSITIONAL_OR_KEYWORD", "repr": "<class 'GELU'>"},
                  {"name": "scale", "kind": "POSITIONAL_OR_KEYWORD", "value": 1.0},
                  {"name": "eps", "kind": "KEYWORD_ONLY", "value": 1e-6}]}
    return {**answer, **changes}


def test_args_stop_at_a_default_the_yaml_cannot_write():
    d = adopt.decide(raw(), {})
    assert [a.name for a in d.args] == ["heads"]
    assert not d.needs_adapter


def test_a_set_value_the_yaml_row_cannot_pass_needs_an_adapter():
    d = adopt.decide(raw(), {"eps": 1e-5})
    assert d.adapter_reasons == ("the YAML row cannot pass eps: the adapter fixes it",)
    assert d.fixed == {"eps": 1e-5}
    params, call = adopt._adapter_signature(d)
    assert (params, call) == (", c1, heads=4", "dim=c1, heads=heads, eps=1e-05")


def test_channel_argument_not_first_needs_an_adapter():
    params = raw()["params"]
    d = adopt.decide(raw(params=[params[1], params[0], *params[2:]]), {})
    assert "dim must be the first constructor argument(s) for parse_model" in d.adapter_reasons


def test_adapter_name_must_differ_from_the_class():
    d = adopt.decide(raw(layout="nhwc"), {})
    with pytest.raises(YamlforgeError, match="--name Block is the adopted class's own name"):
        adopt._export_name(d, "Block")


@pytest.mark.parametrize(("stride", "side"), [(Fraction(1), "h"), (Fraction(2), "-(-h // 2)"),
                                               (Fraction(1, 2), "h * 2")])
def test_output_side_for_stride(stride, side):
    assert adopt._crop(stride)("h") == side


@pytest.mark.parametrize(("changes", "row"), [
    ({}, "- [-1, 1, Block, []]"),
    ({"rule": "in_out", "out_arg": "heads"}, "- [-1, 1, Block, [256]]"),
], ids=["keep", "in_out"])
def test_yaml_row(changes, row):
    assert adopt.yaml_row(adopt.decide(raw(**changes), {}), "Block") == row


def test_spec_of_an_upsampler_writes_stride_one_half():
    d = adopt.decide(raw(stride="1/2"), {"heads": 2})
    text = adopt.render_spec(d, name="Block", export="Block", origin="up.py::Block", source="block.py", entry=None,
                             requires=[])
    spec, _ = load_nodes(text, where="spec", what="spec")
    assert (spec["channels"], spec["stride"], spec["args"]) == ("keep", "1/2", [
        {"name": "heads", "default": 2, "doc": "set by --set heads"}])  # the --set value is the default (issue 20, 9)
    assert adopt.yaml_row(d, "Block") == "- [-1, 1, Block, [2]]"
