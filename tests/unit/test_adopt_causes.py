"""adopt (issue 30): an import that never runs is no requirement, and refusals name their real cause.

The tables read source text only (no torch); the last tests probe the ``causes/`` fixtures in a subprocess, once.
"""

from __future__ import annotations

import ast
import sys
import textwrap
from pathlib import Path

import pytest

from yamlforge.adopt import engine as adopt
from yamlforge.adopt.source import import_lines, load_source, requirements, undefined_names
from yamlforge.errors import YamlforgeError
from yamlforge.runners import yf_refusals

CAUSES = Path(__file__).resolve().parents[1] / "fixtures" / "adopt" / "causes"
PYTHON = sys.executable
MAIN = 'under if __name__ == "__main__"'


def source_of(tmp_path: Path, text: str):
    (tmp_path / "block.py").write_text(textwrap.dedent(text).lstrip("\n"))
    return load_source(tmp_path / "block.py")


# ------------------------------------------------------------------ which imports run with the module

DEFERRED = [
    pytest.param("import einops\n", "", id="top-level-runs"),
    pytest.param("def load():\n    import einops\n", "inside a function", id="in-a-function"),
    pytest.param("class A:\n    def f(self):\n        from einops import rearrange\n", "inside a function",
                 id="in-a-method"),
    pytest.param("async def f():\n    import einops\n", "inside a function", id="in-an-async-function"),
    pytest.param("if __name__ == '__main__':\n    import einops\n", MAIN, id="main-guard"),
    pytest.param("if '__main__' == __name__:\n    import einops\n", MAIN, id="main-guard-reversed"),
    pytest.param("if __name__ == '__main__':\n    pass\nelse:\n    import einops\n", "", id="main-guard-else-runs"),
    pytest.param("if DEBUG:\n    import einops\n", "", id="other-if-runs"),
    pytest.param("class A:\n    import einops\n", "", id="class-body-runs"),
    pytest.param("def f(x=__import__('os')):\n    pass\nimport einops\n", "", id="after-a-function-runs"),
    pytest.param("def f():\n    import einops\nimport einops\n", "", id="top-level-wins-over-deferred"),
    pytest.param("import einops\ndef f():\n    import einops\n", "", id="top-level-first-stays"),
]


@pytest.mark.parametrize(("text", "deferred"), DEFERRED)
def test_an_import_that_never_runs_is_deferred(tmp_path, text, deferred):
    (req,) = requirements(source_of(tmp_path, text))
    assert (req.import_name, req.deferred, req.needed) == ("einops", deferred, not deferred)


def test_a_guarded_import_inside_a_function_is_optional_and_deferred(tmp_path):
    (req,) = requirements(source_of(tmp_path, """
        def load():
            try:
                import einops
            except ImportError:
                einops = None
    """))
    assert (req.optional, req.deferred, req.needed) == (True, "inside a function", False)


# ------------------------------------------------------------------ names nothing defines

UNDEFINED = [
    pytest.param("class A(nn.Module):\n    def f(self, x):\n        return F.relu(x) * math.pi\n", ["nn", "F", "math"],
                 id="cut-out-class"),
    pytest.param("import math\nfrom torch import nn\nx = nn.Linear(1, math.floor(2.5))\n", [], id="all-imported"),
    pytest.param("from torch.nn import *\nx = Linear(1, 2)\n", [], id="star-import-binds-anything"),
    pytest.param("def f(a, *b, c=1, **d):\n    return [i for i in a], b, c, d, len(a)\n", [], id="args-and-builtins"),
    pytest.param("def f():\n    global G\n    G = 1\ndef g():\n    return G\n", [], id="global"),
    pytest.param("try:\n    pass\nexcept Exception as e:\n    print(e)\n", [], id="except-name"),
    pytest.param("def f(x):\n    match x:\n        case [a, *rest]:\n            return a, rest\n", [],
                 id="match-captures"),
    pytest.param("if (n := 3):\n    print(n)\n", [], id="walrus"),
    pytest.param("y = rearrange(x)\nx = 1\n", ["rearrange"], id="read-before-store-is-bound"),
]


@pytest.mark.parametrize(("text", "names"), UNDEFINED)
def test_undefined_names(text, names):
    assert undefined_names(ast.parse(text)) == names


def test_import_lines_of_the_usual_names_once_each():
    assert import_lines(["nn", "F", "math", "rearrange", "foo", "nn"]) == [
        "from torch import nn", "import torch.nn.functional as F", "import math", "from einops import rearrange"]


def test_a_refusal_for_a_name_error_lists_every_undefined_name_and_its_import():
    source = load_source(CAUSES / "cut_out_block.py")
    said = adopt._refusal(source, PYTHON, {"error": "importing the source failed: NameError: name 'nn' is not "
                                                    "defined", "undefined": ["nn"]})
    assert said == ("cut_out_block.py uses nn, rearrange, F, math without importing or defining them (a class cut "
                    "out of a bigger file?); add at its top: from torch import nn; from einops import rearrange; "
                    "import torch.nn.functional as F; import math")


@pytest.mark.parametrize(("error", "fields"), [
    ("importing the source failed: NameError: name 'nn' is not defined", {"undefined": ["nn"]}),
    ("forward failed in every layout: nchw: NameError: name 'F' is not defined; nhwc: NameError: name 'F' is not "
     "defined", {"undefined": ["F"]}),
    ("forward failed in every layout: nchw: RuntimeError: shapes do not match", {}),
    ("ModuleNotFoundError: No module named 'natten.functional'", {"no_module": "natten"}),
], ids=["at-import", "in-forward-once", "other-error", "no-module"])
def test_a_refusal_field_names_what_a_name_error_says_is_undefined(error, fields):
    assert yf_refusals.failure_fields(error) == fields


@pytest.mark.parametrize(("init", "other", "found"), [
    pytest.param("from . import ext\n", None, ["ext"], id="relative-from-import"),
    pytest.param("from {pkg} import ext\n", None, ["ext"], id="absolute-from-import"),
    pytest.param("import {pkg}.ext\n", None, ["ext"], id="import-submodule"),
    pytest.param("from . import ext\n", ("ext.py", "raise ImportError('its own failure')\n"), None,
                 id="a-python-module-failing-is-no-extension"),
    pytest.param("import yamlforge_no_such_top_level\n", None, None, id="a-missing-package-is-no-extension"),
])
def test_an_unbuilt_submodule_of_a_package_is_a_compiled_extension(tmp_path, monkeypatch, request, init, other,
                                                                    found):
    pkg = "yf_fake_ops_" + request.node.callspec.id.replace("-", "_")
    (tmp_path / pkg).mkdir()
    (tmp_path / pkg / "__init__.py").write_text(init.format(pkg=pkg))
    if other:
        (tmp_path / pkg / other[0]).write_text(other[1])
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ImportError) as caught:
        __import__(pkg)
    expected = {"extension": {"names": [f"{pkg}.{n}" for n in found], "package": pkg}} if found else {}
    assert yf_refusals.import_failure_fields(caught.value) == expected


@pytest.mark.parametrize(("package", "where"), [
    ("fused_ops", "(built from the source's fused_ops/ by setup.py)"),
    ("mmcv", "(part of the installed package mmcv)"),
])
def test_a_compiled_extension_refusal_says_where_it_comes_from(package, where):
    source = load_source(CAUSES / "compiled_repo" / "block.py")
    said = adopt._refusal(source, PYTHON, {"error": "importing the source failed: ImportError: cannot import name "
                                                    "'_ext'", "extension": {"names": [f"{package}._ext"],
                                                                           "package": package}})
    assert said.startswith(f"it needs the compiled extension {package}._ext, which {PYTHON} does not have {where}: ")


# ------------------------------------------------------------------ probed in a subprocess


@pytest.fixture(scope="module")
def surveyed(tmp_path_factory):
    """The single-file cause fixtures, probed in one runner process."""
    folder = tmp_path_factory.mktemp("causes") / "causes"
    folder.mkdir()
    for name in ("fixed_grid_mlp.py", "inplace_input.py", "cut_out_block.py", "import_when_built.py"):
        (folder / name).write_text((CAUSES / name).read_text())
    return {r.name: r for r in adopt.survey(folder, PYTHON)}


@pytest.mark.parametrize(("name", "reason"), [
    ("RowMixer", "RowMixer runs only at one map size, 8x8 in nchw, where H == W == segment_dim: a detector's maps "
                 "change size with the image, so adopt refuses it"),
    ("InplaceResidual", "its forward writes in place into its input (or a tensor its backward needs), so it cannot "
                        "be trained: the backward fails with RuntimeError: one of the variables needed for gradient "
                        "computation has been modified by an inplace operation"),
    ("CutOutBlock", "cut_out_block.py uses nn, rearrange, F, math without importing or defining them"),
    ("BuiltWithAbsentPackage", "building or running the class runs the import of yamlforge_absent_kernel_package "
                               "(import_when_built.py:10, inside a function), which "),
])
def test_each_cause_is_refused_in_one_line_naming_it(surveyed, name, reason):
    error = surveyed[name].error
    assert error.startswith(reason)
    assert "\n" not in error


def test_an_unbuilt_compiled_extension_of_the_source_is_named_with_its_origin():
    with pytest.raises(YamlforgeError) as caught:
        adopt.adopt(CAUSES / "compiled_repo" / "block.py", "FusedGateBlock", python=PYTHON, write=False)
    assert str(caught.value).startswith(f"it needs the compiled extension fused_ops._ext, which {PYTHON} does not "
                                        "have (built from the source's fused_ops/ by setup.py): ")
    assert "\n" not in str(caught.value)


def test_imports_that_never_run_are_notes_and_not_requirements(tmp_path):
    result = adopt.adopt(CAUSES / "deferred_imports.py", "GatedMix", python=PYTHON, out_dir=tmp_path)
    assert result.decision.rule == "keep"
    notes = [n for n in result.notes if "is not installed" in n]
    assert [n.split(",")[0] for n in notes] == [
        "yamlforge_absent_stream_helper is not installed",
        "yamlforge_absent_flop_counter is not installed"]
    assert "(deferred_imports.py:10) is inside a function" in notes[0]
    assert f"(deferred_imports.py:28) is {MAIN}" in notes[1]
    assert "requires: []" in result.spec_path.read_text()
