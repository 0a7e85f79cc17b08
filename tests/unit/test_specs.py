"""Spec loading: every malformed spec is one error naming file, line and field."""

from __future__ import annotations

import ast
import textwrap
from fractions import Fraction

import pytest

from yamlforge.catalog import describe
from yamlforge.errors import YamlforgeError
from yamlforge.specs import SpecRegistry, load_spec

GOOD = """\
name: Toy
summary: a toy layer
paper: "Nobody, 2026"
source: toy.py
exports: [Toy]
role: layer
channels: keep
args:
  - {name: k, default: 3}
"""


def write_spec(tmp_path, text, source="class Toy:\n    pass\n"):
    (tmp_path / "toy.py").write_text(source)
    path = tmp_path / "toy.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_good_spec_loads(tmp_path):
    spec = load_spec(write_spec(tmp_path, GOOD))
    assert (spec.name, spec.exports, spec.channels, spec.stride) == ("Toy", ("Toy",), "keep", 1)
    assert spec.args[0].name == "k" and spec.args[0].default == 3 and not spec.args[0].required


BAD = [
    ("malformed-yaml", GOOD + "exports: [Toy\n", "malformed YAML", 11),
    ("not-a-mapping", "- just\n- a list\n", "must be a mapping", 1),
    ("unknown-field", GOOD + "colour: red\n", "unknown field 'colour'", 10),
    ("missing-field", GOOD.replace("paper: \"Nobody, 2026\"\n", ""), "missing field 'paper'", 1),
    ("wrong-type", GOOD.replace("exports: [Toy]", "exports: Toy"), "field 'exports' must be a list", 5),
    ("bad-role", GOOD.replace("role: layer", "role: neck"), "'neck' is not one of layer, backbone", 6),
    ("bad-channels", GOOD.replace("channels: keep", "channels: grow"), "'grow' is not one of", 7),
    ("non-identifier-export", GOOD.replace("[Toy]", "[My-Toy]"), "'My-Toy' is not a Python identifier", 5),
    ("keyword-name", GOOD.replace("name: Toy", "name: class"), "'class' is not a Python identifier", 1),
    ("source-escapes", GOOD.replace("source: toy.py", "source: ../toy.py"), "points outside the spec's folder", 4),
    ("source-missing", GOOD.replace("source: toy.py", "source: other.py"), "does not exist", 4),
    ("custom-without-branch", GOOD.replace("channels: keep", "channels: custom"), "needs a 'branch'", 7),
    ("fold-needs-in-out", GOOD + "repeats: fold\n", "'fold' needs channels: in_out", 10),
    ("backbone-without-strides", GOOD.replace("role: layer", "role: backbone").replace("channels: keep\n", ""),
     "output strides", 1),
    ("backbone-with-channel-rule", GOOD.replace("role: layer", "role: backbone") + "stride: [8, 16]\n",
     "a backbone is built as cls(input channels, *args)", 7),
    ("layer-without-channels", GOOD.replace("channels: keep\n", ""), "missing field 'channels'", 1),
    ("bad-stride", GOOD + "stride: 0\n", "positive whole number", 10),
    ("bad-args-entry", GOOD.replace("{name: k, default: 3}", "{nome: k}"), "each entry of 'args'", 9),
    ("empty-exports", GOOD.replace("[Toy]", "[]"), "must list at least one class name", 5),
    ("export-twice", GOOD.replace("[Toy]", "[Toy, Toy]"), "lists a name twice", 5),
    ("bad-repeats", GOOD + "repeats: many\n", "'many' is not one of none, fold", 10),
    ("branch-without-custom", GOOD + "branch: x\n", "only used with channels: custom", 10),
    ("backbone-with-branch", GOOD.replace("role: layer", "role: backbone").replace("channels: keep\n", "")
     + "stride: [8]\nbranch: x\n", "field 'branch': a backbone is built as", 10),
    ("source-not-python", GOOD.replace("source: toy.py", "source: toy.txt"), "must be a .py file", 4),
    ("bad-requires", GOOD + "requires: ['']\n", "pip requirement strings", 10),
    ("bool-stride", GOOD + "stride: true\n", "field 'stride' must be a int or str or list, got bool", 10),
    ("zero-fraction-stride", GOOD + "stride: 0/2\n", "or a fraction such as 1/2", 10),
    ("decimal-stride", GOOD + "stride: '0.5'\n", "got '0.5'", 10),
    ("entry-with-file-source", GOOD + "entry: toy.py\n", "'entry' is only used with a package folder", 10),
    ("package-missing", GOOD.replace("source: toy.py", "source: nowhere/"), "package folder 'nowhere/' does not", 4),
    ("bad-branch-template", GOOD.replace("channels: keep", "channels: custom") + "branch: '{{ x '\n",
     "not a valid jinja2 template", 10),
    ("export-args-of-no-export", GOOD + "export_args: {Other: []}\n", "'Other' is not one of the exports (Toy)", 10),
    ("export-args-not-a-list", GOOD + "export_args: {Toy: {name: n}}\n", "Toy must map to a list of args", 10),
    ("export-args-bad-entry", GOOD + "export_args: {Toy: [n]}\n", "each entry of 'export_args' Toy is a mapping", 10),
    ("export-args-repeat-a-shared-one", GOOD + "export_args: {Toy: [{name: k}]}\n", "Toy names an arg twice (k, k)",
     10),
    ("export-args-not-a-mapping", GOOD + "export_args: [Toy]\n", "field 'export_args' must be a dict", 10),
]


@pytest.mark.parametrize("text,message,line", [b[1:] for b in BAD], ids=[b[0] for b in BAD])
def test_bad_spec_is_one_clear_line(tmp_path, text, message, line):
    path = write_spec(tmp_path, text)
    with pytest.raises(YamlforgeError) as info:
        load_spec(path)
    error = str(info.value)
    assert message in error
    assert error.endswith(f"({path}:{line})"), error
    assert "\n" not in error


def test_export_args_follow_the_shared_args_of_that_export_only(tmp_path):
    text = GOOD.replace("[Toy]", "[Toy, BigToy]") + "export_args:\n  BigToy:\n    - {name: width, doc: w}\n"
    spec = load_spec(write_spec(tmp_path, text))
    assert [(a.name, a.required) for a in spec.args_for("BigToy")] == [("k", False), ("width", True)]
    assert spec.args_for("Toy") == spec.args_for("Toy-spec-name") == spec.args
    shown = describe(spec)
    assert "args (after the channel arguments parse_model fills in):\n  k = 3\n" \
           "for BigToy only, after those:\n  width  # w\n" in shown


def test_revcol_custom_args_are_its_signature_after_the_shared_ones():
    """The names gen-yaml accepts (``revcol_custom(num_columns=3)``) and their order are revcol_custom's own."""
    spec = SpecRegistry().get("RevCol")
    tree = ast.parse(spec.source_text())
    init = next(node for cls in tree.body if isinstance(cls, ast.ClassDef) and cls.name == "revcol_custom"
                for node in cls.body if isinstance(node, ast.FunctionDef) and node.name == "__init__")
    params = [a.arg for a in init.args.args][2:]  # self, then c1: the input channels the backbone branch fills in
    assert [a.name for a in spec.args_for("revcol_custom")] == params
    assert [a.name for a in spec.args_for("revcol_tiny")] == params[:2]
    defaults = dict(zip(params[::-1], [ast.literal_eval(d) for d in init.args.defaults[::-1]]))
    assert all(a.required or a.default == defaults[a.name] for a in spec.args_for("revcol_custom"))


def test_unknown_module_suggests_close_names(tmp_path):
    registry = SpecRegistry([write_spec(tmp_path, GOOD)])
    with pytest.raises(YamlforgeError, match="unknown module 'Tooy'; did you mean Toy"):
        registry.get("Tooy")


def test_user_spec_overrides_bundled_and_export_lookup(tmp_path):
    path = write_spec(tmp_path, GOOD.replace("name: Toy", "name: SHSA"))
    registry = SpecRegistry([path])
    assert registry.get("SHSA").spec_path == path.resolve()
    assert registry.find("Toy").name == "SHSA"


# ----------------------------------------------------------------------------- notations adopt writes


@pytest.mark.parametrize(("text", "stride"), [("1/2", Fraction(1, 2)), ("1 / 4", Fraction(1, 4)), ("4/2", 2), ("2", 2)],
                         ids=["half", "spaced-quarter", "whole-fraction-is-int", "int"])
def test_layer_stride_accepts_a_fraction_for_upsamplers(tmp_path, text, stride):
    spec = load_spec(write_spec(tmp_path, GOOD + f"stride: {text}\n"))
    assert spec.stride == stride and type(spec.stride) is type(stride)


def test_channels_none_loads(tmp_path):
    assert load_spec(write_spec(tmp_path, GOOD.replace("channels: keep", "channels: none"))).channels == "none"


PACKAGE = GOOD.replace("source: toy.py", "source: toypkg/") + "entry: sub/blocks.py\n"


def write_package(tmp_path, text=PACKAGE):
    (tmp_path / "toypkg" / "sub").mkdir(parents=True)
    (tmp_path / "toypkg" / "__init__.py").write_text("")
    (tmp_path / "toypkg" / "sub" / "blocks.py").write_text("from ..base import Base\n\n\nclass Toy(Base):\n    pass\n")
    (tmp_path / "toypkg" / "base.py").write_text("class Base:\n    pass\n")
    return write_spec(tmp_path, text)


def test_package_source_with_entry_loads(tmp_path):
    spec = load_spec(write_package(tmp_path))
    assert (spec.is_package, spec.entry, spec.file_stem, spec.import_stem) == (True, "sub/blocks.py", "toypkg",
                                                                                "toypkg.sub.blocks")
    assert "class Toy(Base)" in spec.source_text()
    assert sorted(spec.package_files()) == ["__init__.py", "base.py", "sub/blocks.py"]


def test_package_digest_covers_every_file(tmp_path):
    spec = load_spec(write_package(tmp_path))
    before = spec.digest()
    (tmp_path / "toypkg" / "base.py").write_text("class Base:\n    x = 1\n")
    assert spec.digest() != before


@pytest.mark.parametrize(("text", "message", "line"), [
    (PACKAGE.replace("entry: sub/blocks.py\n", ""), "missing field 'entry'", 4),
    (PACKAGE.replace("sub/blocks.py", "../toy.py"), "must be a .py file inside 'toypkg/'", 10),
    (PACKAGE.replace("sub/blocks.py", "sub/other.py"), "'sub/other.py' does not exist in 'toypkg/'", 10),
    (PACKAGE.replace("sub/blocks.py", "sub/my-blocks.py"), "with an importable path", 10),
], ids=["entry-missing", "entry-outside", "entry-not-found", "entry-not-importable"])
def test_bad_package_source_is_one_clear_line(tmp_path, text, message, line):
    path = write_package(tmp_path, text)
    with pytest.raises(YamlforgeError) as info:
        load_spec(path)
    assert message in str(info.value) and str(info.value).endswith(f"({path}:{line})"), str(info.value)


# ---------------------------------------------------------------- the bundled specs, loaded when named (issue 30)


@pytest.fixture
def counted_loads(tmp_path, monkeypatch):
    """The spec files load_spec reads, with an empty cache (the bundled index is built once, then read)."""
    from yamlforge import specs

    monkeypatch.setenv("YAMLFORGE_CACHE", str(tmp_path / "cache"))
    loaded = []
    real = specs.load_spec

    def load_spec_counted(path, **kwargs):
        loaded.append(path.name)
        return real(path, **kwargs)

    monkeypatch.setattr(specs, "load_spec", load_spec_counted)
    return loaded


def test_a_registry_loads_only_the_bundled_spec_a_lookup_names(counted_loads):
    SpecRegistry()  # builds the index: every bundled spec loaded, and checked, once
    counted_loads.clear()
    registry = SpecRegistry()
    assert (registry.find("Conv"), registry.get("revcol_tiny").name) == (None, "RevCol")
    assert counted_loads == ["revcol.yaml"]
    assert {s.name for s in registry} >= {"SHSA", "RevCol", "TimmBackbone"}


def test_a_user_spec_overrides_the_bundled_one_of_its_name(counted_loads, tmp_path):
    path = write_spec(tmp_path, GOOD.replace("name: Toy", "name: SHSA"))
    registry = SpecRegistry([path])
    assert registry.get("SHSA").spec_path == path.resolve()
    assert registry.find("Toy") is registry.get("SHSA")
    assert [s.spec_path for s in registry if s.name == "SHSA"] == [path.resolve()]
