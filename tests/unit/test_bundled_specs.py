"""Every spec shipped in module_specs/ loads, names what its standalone implementation file defines, and imports."""

from __future__ import annotations

import ast
import importlib.util
import inspect
import sys

import pytest

from yamlforge.resources import SPECS_DIR
from yamlforge.specs import REQUIRED, load_spec

SPEC_PATHS = sorted(SPECS_DIR.glob("*.yaml"))
SPEC_IDS = [p.stem for p in SPEC_PATHS]

# What the four bundled layers promise (the README and parse_model registration depend on it).
LAYERS = [
    ("shsa", "SHSA", "shsa.py", ("SHSA",), "keep"),
    ("biformer", "BiLevelRoutingAttention", "biformer.py", ("BiLevelRoutingAttention",), "keep"),
    ("riformer", "RIFormerBlock", "riformer.py", ("RIFormerBlock",), "in_out"),
    ("bhvit", "token_mixer", "bhvit.py", ("token_mixer",), "keep"),
]

# Parameters of the exported callable that parse_model's channel rule fills in before the YAML args.
FILLED_BY_RULE = {"keep": 1, "in_out": 1, "custom": 0, "backbone": 1}  # keep: c2 = ch[f]; in_out/backbone: c1


def top_level_names(tree: ast.Module) -> set[str]:
    names = set()
    for node in tree.body:
        if isinstance(node, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.Assign):
            names.update(t.id for t in node.targets if isinstance(t, ast.Name))
    return names


def imported_roots(tree: ast.Module) -> set[str]:
    roots = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            roots.add("." if node.level else node.module.split(".")[0])
    return roots


def import_standalone(path):
    """Import one implementation file by path, outside any package, as it runs once copied into a checkout."""
    spec = importlib.util.spec_from_file_location(f"standalone_{path.stem}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("stem,name,source,exports,channels", LAYERS, ids=[layer[0] for layer in LAYERS])
def test_bundled_layer_spec_fields(stem, name, source, exports, channels):
    spec = load_spec(SPECS_DIR / f"{stem}.yaml", bundled=True)
    assert (spec.name, spec.source.name, spec.exports, spec.channels) == (name, source, exports, channels)
    assert (spec.role, spec.stride, spec.requires, spec.repeats) == ("layer", 1, (), "none")
    assert spec.summary and spec.paper


@pytest.mark.parametrize("path", SPEC_PATHS, ids=SPEC_IDS)
def test_source_defines_every_export_and_imports_only_torch_and_stdlib(path):
    spec = load_spec(path, bundled=True)
    tree = ast.parse(spec.source_text(), filename=str(spec.source))
    assert ast.get_docstring(tree), f"{spec.source.name} opens without a docstring"
    missing = set(spec.exports) - top_level_names(tree)
    assert not missing, f"{spec.source.name} does not define {sorted(missing)}"
    # The file is copied verbatim into the target: a relative or third-party import would break there.
    foreign = imported_roots(tree) - set(sys.stdlib_module_names) - {"torch"} - set(spec.requires)  # and requires:
    assert not foreign, f"{spec.source.name} imports {sorted(foreign)}"


@pytest.mark.parametrize("path", SPEC_PATHS, ids=SPEC_IDS)
def test_source_imports_standalone_and_args_match_the_signature(path):
    spec = load_spec(path, bundled=True)
    module = import_standalone(spec.source)
    for export in spec.exports:
        assert callable(getattr(module, export)), export
    # The spec's args are what the user writes after the channels the rule fills in: same names, same defaults.
    params = list(inspect.signature(getattr(module, spec.exports[0])).parameters.values())
    params = params[FILLED_BY_RULE[spec.channels] :]
    assert [a.name for a in spec.args] == [p.name for p in params]
    for arg, param in zip(spec.args, params):
        expected = REQUIRED if param.default is inspect.Parameter.empty else param.default
        assert arg.default == expected, f"{spec.name} arg {arg.name}: spec {arg.default!r}, code {expected!r}"


def test_every_implementation_file_has_a_spec():
    """A stray .py in module_specs/ would ship without being applicable."""
    sources = {load_spec(p).source.name for p in SPEC_PATHS}
    assert {p.name for p in SPECS_DIR.glob("*.py")} == sources
    assert not (SPECS_DIR / "__init__.py").exists()
