"""register_in_parse_model: joins the target's channel collections or adds elif branches, on every version, once."""

from __future__ import annotations

import ast
import difflib
import subprocess
import sys
import textwrap
from pathlib import Path

import libcst as cst
import pytest

from yamlforge.errors import YamlforgeError
from yamlforge.patch.codemods import describe_registration
from yamlforge.patch.codemods.imports import add_imports
from yamlforge.patch.codemods.registration import (
    KEEP_MARKER,
    NONE_MARKER,
    Registration,
    is_parse_model,
    locate,
    register_in_parse_model,
)
from yamlforge.resources import render

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "parse_model"

SHSA = Registration("SHSA", "keep")
BRA = Registration("BiLevelRoutingAttention", "keep")
TOKEN_MIXER = Registration("token_mixer", "keep")
RIFORMER = Registration("RIFormerBlock", "in_out")
RIFORMER_FOLD = Registration("RIFormerBlock", "in_out", repeats=True)
SIMAM = Registration("SimAM", "none")
GATE = Registration("Gate", "none")
CUSTOM = Registration("HGLike", "custom", body="c1, cm, c2 = ch[f], args[0], args[1]\nargs = [c1, cm, c2, *args[2:]]\n")
BUNDLED = [SHSA, BRA, TOKEN_MIXER, RIFORMER]


def apply(code: str, registrations) -> str:
    return register_in_parse_model(code, registrations, filename="tasks.py")


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


# The three shapes of the base branch, cut down. 8.0: tuples wrapped at 120 columns.
V8_0 = src("""
    def parse_model(d, ch, verbose=True):
        for i, (f, n, m, args) in enumerate(d['backbone'] + d['head']):  # from, number, module, args
            if m in (Classify, Conv, C2f,
                     C3, RepC3):
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
                if m in (C2f, RepC3, C3):
                    args.insert(2, n)  # number of repeats
                    n = 1
            elif m is AIFI:
                args = [ch[f], *args]
            elif m in (HGStem, HGBlock):
                c1, cm, c2 = ch[f], args[0], args[1]
            else:
                c2 = ch[f]
            ch.append(c2)
""")

# 8.1/8.2: one module per line, trailing comma (ruff format)
V8_1 = src("""
    def parse_model(d, ch, verbose=True):
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):  # from, number, module, args
            if m in {
                Classify,
                Conv,
                C2f,
            }:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
                if m in {C2f}:
                    args.insert(2, n)  # number of repeats
                    n = 1
            elif m is CBFuse:
                c2 = ch[f[-1]]
            else:
                c2 = ch[f]
            ch.append(c2)
""")

# 8.3+: names bound to frozensets before the loop
V8_3 = src("""
    def parse_model(d, ch, verbose=True):
        base_modules = frozenset(
            {
                Classify,
                Conv,
                C2f,
            }
        )
        repeat_modules = frozenset(  # modules with 'repeat' arguments
            {
                C2f,
            }
        )
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):  # from, number, module, args
            if m in base_modules:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
                if m in repeat_modules:
                    args.insert(2, n)  # number of repeats
                    n = 1
            elif m in frozenset({TorchVision, Index}):
                c2 = args[0]
            else:
                c2 = ch[f]
            ch.append(c2)
""")

# YOLOv9: a set wrapped at 120 columns, eval(m), `if c2 != no`
YOLOV9 = src("""
    def parse_model(d, ch):  # model_dict, input_channels(3)
        for i, (f, n, m, args) in enumerate(d['backbone'] + d['head']):  # from, number, module, args
            m = eval(m) if isinstance(m, str) else m  # eval strings
            if m in {Conv, AConv, ConvTranspose, Bottleneck, SPP, SPPF, DWConv, BottleneckCSP, nn.ConvTranspose2d,
                     DWConvTranspose2d, SPPCSPC, ADown, RepNCSPELAN4, SPPELAN}:
                c1, c2 = ch[f], args[0]
                if c2 != no:  # if not output
                    c2 = make_divisible(c2 * gw, 8)
                args = [c1, c2, *args[1:]]
                if m in {BottleneckCSP, SPPCSPC}:
                    args.insert(2, n)  # number of repeats
                    n = 1
            elif m is Concat:
                c2 = sum(ch[x] for x in f)
            else:
                c2 = ch[f]
            ch.append(c2)
""")

KEEP_BRANCH = """\
        elif m in {SHSA}:  # yamlforge: channel-keeping modules
            c2 = ch[f]
            args = [c2, *args]
"""
NONE_BRANCH = """\
        elif m in {SimAM}:  # yamlforge: modules without channel arguments
            c2 = ch[f]
"""
ELSE = "        else:\n            c2 = ch[f]\n"


def with_branch(code: str, branch: str) -> str:
    assert code.count(ELSE) == 1
    return code.replace(ELSE, branch + ELSE)


FIXES = [
    pytest.param(V8_0, [RIFORMER], V8_0.replace("C3, RepC3):", "C3, RepC3, RIFormerBlock):"), id="8.0-tuple-join"),
    pytest.param(
        V8_0,
        [RIFORMER_FOLD],
        V8_0.replace("C3, RepC3):", "C3, RepC3, RIFormerBlock):").replace(
            "(C2f, RepC3, C3):", "(C2f, RepC3, C3, RIFormerBlock):"
        ),
        id="8.0-tuple-join-with-repeats",
    ),
    pytest.param(
        V8_0.replace(
            "C3, RepC3):",
            "C3, RepC3, AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA):",
        ),
        [RIFORMER],
        V8_0.replace(
            "C3, RepC3):",
            "C3, RepC3, AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA,\n"
            "                 RIFormerBlock):",
        ),
        id="8.0-tuple-wraps-like-its-own-continuation-past-120-columns",
    ),
    pytest.param(
        V8_1,
        [RIFORMER_FOLD],
        V8_1.replace(
            "            C2f,\n        }:", "            C2f,\n            RIFormerBlock,\n        }:"
        ).replace("{C2f}:", "{C2f, RIFormerBlock}:"),
        id="8.1-one-per-line-set-and-repeat-set",
    ),
    pytest.param(
        V8_3,
        [RIFORMER_FOLD],
        V8_3.replace("            C2f,\n        }", "            C2f,\n            RIFormerBlock,\n        }"),
        id="8.3-base-and-repeat-frozensets",
    ),
    pytest.param(
        V8_3,
        [RIFORMER],
        V8_3.replace(
            "            Classify,\n            Conv,\n            C2f,\n",
            "            Classify,\n            Conv,\n            C2f,\n            RIFormerBlock,\n",
        ),
        id="8.3-base-frozenset-only",
    ),
    pytest.param(
        V8_3.replace("if m in base_modules:", "if m in frozenset({Classify, Conv}):"),
        [RIFORMER],
        V8_3.replace("if m in base_modules:", "if m in frozenset({Classify, Conv, RIFormerBlock}):"),
        id="inline-frozenset",
    ),
    pytest.param(
        YOLOV9,
        [RIFORMER],
        YOLOV9.replace("RepNCSPELAN4, SPPELAN}:", "RepNCSPELAN4, SPPELAN, RIFormerBlock}:"),
        id="yolov9-set-join",
    ),
    pytest.param(V8_0, [SHSA], with_branch(V8_0, KEEP_BRANCH), id="8.0-keep-branch"),
    pytest.param(V8_3, [SHSA], with_branch(V8_3, KEEP_BRANCH), id="8.3-keep-branch"),
    pytest.param(YOLOV9, [SHSA], with_branch(YOLOV9, KEEP_BRANCH), id="yolov9-keep-branch"),
    pytest.param(
        V8_1,
        [SHSA, BRA, TOKEN_MIXER],
        with_branch(V8_1, KEEP_BRANCH.replace("{SHSA}", "{SHSA, BiLevelRoutingAttention, token_mixer}")),
        id="several-keep-modules-share-one-branch",
    ),
    pytest.param(
        with_branch(V8_1, KEEP_BRANCH),
        [SHSA, TOKEN_MIXER],
        with_branch(V8_1, KEEP_BRANCH.replace("{SHSA}", "{SHSA, token_mixer}")),
        id="joins-existing-yamlforge-keep-branch",
    ),
    pytest.param(
        V8_1,
        [CUSTOM, SHSA],
        with_branch(
            V8_1,
            KEEP_BRANCH + "        elif m in {HGLike}:  # yamlforge\n"
            "            c1, cm, c2 = ch[f], args[0], args[1]\n"
            "            args = [c1, cm, c2, *args[2:]]\n",
        ),
        id="custom-branch-after-keep-branch",
    ),
    pytest.param(
        V8_0,
        [Registration("Nested", "custom", body="if args:\n    c2 = args[0]\nelse:\n    c2 = ch[f]\n")],
        with_branch(
            V8_0,
            "        elif m in {Nested}:  # yamlforge\n"
            "            if args:\n                c2 = args[0]\n            else:\n                c2 = ch[f]\n",
        ),
        id="custom-body-with-its-own-blocks",
    ),
    pytest.param(
        V8_1.replace(
            "elif m is CBFuse:", "elif m is SHSA:  # hand-patched\n            pass\n        elif m is CBFuse:"
        ),
        [SHSA, TOKEN_MIXER, RIFORMER],
        with_branch(
            V8_1.replace(
                "elif m is CBFuse:", "elif m is SHSA:  # hand-patched\n            pass\n        elif m is CBFuse:"
            ).replace("            C2f,\n        }:", "            C2f,\n            RIFormerBlock,\n        }:"),
            KEEP_BRANCH.replace("{SHSA}", "{token_mixer}"),
        ),
        id="only-names-not-registered-by-hand",
    ),
    pytest.param(
        V8_0,
        [SHSA, SHSA, RIFORMER, RIFORMER],
        with_branch(V8_0, KEEP_BRANCH).replace("C3, RepC3):", "C3, RepC3, RIFormerBlock):"),
        id="duplicates-registered-once",
    ),
    pytest.param(V8_3, [SIMAM], with_branch(V8_3, NONE_BRANCH), id="8.3-none-branch"),
    pytest.param(YOLOV9, [SIMAM, GATE], with_branch(YOLOV9, NONE_BRANCH.replace("{SimAM}", "{SimAM, Gate}")),
                 id="yolov9-none-modules-share-one-branch"),
    pytest.param(V8_1, [SIMAM, SHSA], with_branch(V8_1, KEEP_BRANCH + NONE_BRANCH), id="none-branch-after-keep-branch"),
    pytest.param(with_branch(V8_0, KEEP_BRANCH + NONE_BRANCH), [GATE, TOKEN_MIXER],
                 with_branch(V8_0, KEEP_BRANCH.replace("{SHSA}", "{SHSA, token_mixer}")
                             + NONE_BRANCH.replace("{SimAM}", "{SimAM, Gate}")),
                 id="joins-existing-branches-of-each-rule"),
]


NOOPS = [
    pytest.param(
        V8_1.replace("    C2f,\n        }:", "    C2f,\n            SHSA,\n            RIFormerBlock,\n        }:"),
        id="hand-registered-in-base-set",
    ),
    pytest.param(
        V8_3.replace(
            "            C2f,\n        }\n    )\n    repeat",
            "            C2f,\n            SHSA,\n            RIFormerBlock,\n        }\n    )\n    repeat",
        ),
        id="hand-registered-in-base-modules",
    ),
    pytest.param(
        V8_0.replace(
            "elif m is AIFI:", "elif m is SHSA or m is RIFormerBlock:\n            pass\n        elif m is AIFI:"
        ),
        id="hand-registered-via-m-is",
    ),
    pytest.param(V8_0.replace("(HGStem, HGBlock)", "(HGStem, HGBlock, SHSA, RIFormerBlock)"), id="in-another-branch"),
    pytest.param(
        with_branch(V8_0, "        elif m  in{ SHSA ,RIFormerBlock }  :\n            c2 = ch[f]\n"),
        id="unusual-spacing",
    ),
    pytest.param(
        with_branch(V8_1, KEEP_BRANCH).replace(
            "            C2f,\n        }:", "            C2f,\n            RIFormerBlock,\n        }:"
        ),
        id="applied",
    ),
    pytest.param(
        with_branch(V8_1, KEEP_BRANCH.replace("  # yamlforge: channel-keeping modules", "")).replace(
            "            C2f,\n        }:", "            C2f,\n            RIFormerBlock,\n        }:"
        ),
        id="applied-then-comment-removed",
    ),
]


@pytest.mark.parametrize(("before", "registrations", "after"), FIXES)
def test_fixes(before, registrations, after):
    assert apply(before, registrations) == after
    assert apply(after, registrations) == after


@pytest.mark.parametrize("code", NOOPS)
def test_noop(code):
    assert apply(code, [SHSA, RIFORMER_FOLD]) == code


def test_keep_branch_body_comes_from_the_template():
    keep = locate(_parse_model(apply(V8_3, [SHSA]))).keep_branch
    assert cst.Module(body=list(keep.body.body)).code == render("parse_model/keep.py.j2")


def test_none_branch_body_comes_from_the_template_and_leaves_args_alone():
    shape = locate(_parse_model(apply(V8_3, [SIMAM])))
    branch = shape.shared_branches["none"]
    assert cst.Module(body=list(branch.body.body)).code == render("parse_model/none.py.j2") == "c2 = ch[f]\n"
    assert shape.keep_branch is None


def test_comment_removed_keep_branch_is_not_recognised_but_names_are_not_duplicated():
    bare = with_branch(V8_1, KEEP_BRANCH.replace("  # yamlforge: channel-keeping modules", ""))
    patched = apply(bare, [SHSA, TOKEN_MIXER])
    assert patched == with_branch(bare, KEEP_BRANCH.replace("{SHSA}", "{token_mixer}"))


ERRORS = [
    pytest.param("x = 1\n", [SHSA], "no parse_model function", 1, id="no-parse-model"),
    pytest.param("def parse_model(d, ch):\n    return d\n", [SHSA], "expected the row loop", 1, id="no-row-loop"),
    pytest.param(
        V8_0.replace("(f, n, m, args)", "(f, n, module, args)"),
        [SHSA],
        "expected the row loop",
        1,
        id="row-loop-with-other-names",
    ),
    pytest.param(
        V8_0.replace("c1, c2 = ch[f], args[0]", "c1, c2 = ch[f], args[1]"),
        [SHSA],
        "c1, c2 = ch[f], args[0]",
        2,
        id="no-base-branch",
    ),
    pytest.param(
        V8_0.replace("        else:\n            c2 = ch[f]\n", ""), [SHSA], "end with 'else:'", 3, id="no-final-else"
    ),
    pytest.param(
        V8_3.replace("base_modules = frozenset(", "base_modules = build_modules("),
        [RIFORMER],
        "tuple, a set, frozenset",
        15,
        id="base-modules-not-a-literal",
    ),
    pytest.param(
        V8_3.replace("if m in base_modules:", "if m in BASE_MODULES:"),
        [RIFORMER],
        "tuple, a set, frozenset",
        15,
        id="base-modules-bound-elsewhere",
    ),
    pytest.param(
        V8_1.replace("                args.insert(2, n)  # number of repeats\n", ""),
        [RIFORMER_FOLD],
        "args.insert(2, n)",
        3,
        id="repeats-without-repeat-branch",
    ),
    pytest.param(
        "import os\n\n" + V8_0.replace("args = [ch[f], *args]", "args = [ch[f], *args]]"),
        [SHSA],
        "not valid Python",
        13,
        id="syntax-error",
    ),
]


@pytest.mark.parametrize(("code", "registrations", "message", "line"), ERRORS)
def test_unexpected_shape_is_one_clear_error(code, registrations, message, line):
    with pytest.raises(YamlforgeError) as info:
        apply(code, registrations)
    assert message in info.value.message
    assert info.value.where == f"tasks.py:{line}"


def test_error_lines_are_those_of_the_file_as_given():
    """A later edit failing reports the user's line numbers, not those after an earlier edit inserted lines."""
    code = V8_3.replace("        else:\n            c2 = ch[f]\n", "")
    with pytest.raises(YamlforgeError) as info:
        apply(code, [RIFORMER, SHSA])  # the frozenset join adds a line before the chain
    assert info.value.where == "tasks.py:15"


def test_custom_body_that_does_not_parse_names_the_module():
    with pytest.raises(YamlforgeError) as info:
        apply(V8_0, [Registration("Broken", "custom", body="c2 = (\n")])
    assert "'Broken'" in info.value.message


@pytest.mark.parametrize(
    "kwargs",
    [
        {"name": "not-a-name", "channels": "keep"},
        {"name": "X", "channels": "sideways"},
        {"name": "X", "channels": "custom"},
    ],
    ids=["bad-name", "unknown-rule", "custom-without-body"],
)
def test_invalid_registration_is_a_programming_error(kwargs):
    with pytest.raises(ValueError):
        Registration(**kwargs)


@pytest.mark.parametrize(
    ("reg", "shown"),
    [
        (SHSA, ["elif m in {SHSA}:  " + KEEP_MARKER, "    c2 = ch[f]", "    args = [c2, *args]"]),
        (RIFORMER_FOLD, ["c1, c2 = ch[f], args[0]", "args.insert(2, n)"]),
        (CUSTOM, ["elif m in {HGLike}:  # yamlforge", "    c1, cm, c2 = ch[f], args[0], args[1]"]),
        (SIMAM, ["elif m in {SimAM}:  " + NONE_MARKER, "    c2 = ch[f]", "args are passed as"]),
    ],
    ids=["keep", "in_out-repeats", "custom", "none"],
)
def test_describe_registration_shows_the_branch(reg, shown):
    text = describe_registration(reg)
    for expected in shown:
        assert expected in text
    assert ("args.insert(2, n)" in text) == reg.repeats


# ----------------------------------------------------------------------------- real excerpts and real files

TARGETS = [
    (f"ultralytics-{v}", "ultralytics", v, "ultralytics/nn/tasks.py", "ultralytics.nn.modules")
    for v in ("8.0.227", "8.1.47", "8.2.103", "8.3.40", "8.3.228", "8.4.190")
]
TARGETS.append(("yolov9-0.0.4", "yolov9", "0.0.4", "models/yolo.py", "models.yamlforge"))
IDS = [t[0] for t in TARGETS]
STEMS = {"SHSA": "shsa", "BiLevelRoutingAttention": "biformer", "token_mixer": "bhvit", "RIFormerBlock": "riformer"}


def apply_bundled(code: str, package: str, filename: str, registrations=BUNDLED) -> str:
    stems = {**STEMS, "SimAM": "simam"}
    code = add_imports(code, [(f"{package}.{stems[r.name]}", r.name) for r in registrations], filename=filename)
    return register_in_parse_model(code, registrations, filename=filename)


@pytest.mark.parametrize(("name", "kind", "version", "relpath", "package"), TARGETS, ids=IDS)
def test_real_excerpt_before_after(name, kind, version, relpath, package):
    """imports + parse_model of each target, with the four bundled layer modules applied as reviewed in .py.after."""
    before = (FIXTURES / f"{name}.py.before").read_text(encoding="utf-8")
    after = (FIXTURES / f"{name}.py.after").read_text(encoding="utf-8")
    assert apply_bundled(before, package, relpath) == after
    assert apply_bundled(after, package, relpath) == after


NONE_TARGETS = [t for t in TARGETS if t[0] in ("ultralytics-8.0.227", "ultralytics-8.4.190", "yolov9-0.0.4")]


@pytest.mark.parametrize(("name", "kind", "version", "relpath", "package"), NONE_TARGETS,
                         ids=[t[0] for t in NONE_TARGETS])
def test_real_excerpt_before_after_none_rule(name, kind, version, relpath, package):
    """The bundled modules plus a module without channel arguments, as reviewed in .none.py.after: its branch
    follows the keep branch."""
    before = (FIXTURES / f"{name}.py.before").read_text(encoding="utf-8")
    after = (FIXTURES / f"{name}.none.py.after").read_text(encoding="utf-8")
    assert apply_bundled(before, package, relpath, [*BUNDLED, SIMAM]) == after
    assert apply_bundled(after, package, relpath, [*BUNDLED, SIMAM]) == after


def _parse_model(code: str) -> cst.FunctionDef:
    return next(s for s in cst.parse_module(code).body if is_parse_model(s))


def _names(literal) -> list[str]:
    return [e.value.value for e in literal.elements if isinstance(e.value, cst.Name)]


# Lines the four bundled modules add / change on each full file: 4 imports + 3 keep branch lines, plus the base
# literal: one new line when it is one-per-line, else its last line rewritten (wrapped when past 120 columns).
DIFF_LINES = {
    "ultralytics-8.0.227": (9, 1),  # tuple's last line at 117 columns: RIFormerBlock wraps onto a new line
    "ultralytics-8.1.47": (8, 0),
    "ultralytics-8.2.103": (8, 0),
    "ultralytics-8.3.40": (8, 0),
    "ultralytics-8.3.228": (8, 0),
    "ultralytics-8.4.190": (8, 0),
    "yolov9-0.0.4": (8, 1),
}


@pytest.mark.parametrize(("name", "kind", "version", "relpath", "package"), TARGETS, ids=IDS)
def test_full_real_file(pristine, name, kind, version, relpath, package):
    code = (pristine(kind, version) / relpath).read_text(encoding="utf-8")
    once = apply_bundled(code, package, relpath)
    assert apply_bundled(once, package, relpath) == once
    compile(once, relpath, "exec")

    shape = locate(_parse_model(once))
    assert _names(shape.base)[-1] == "RIFormerBlock"
    assert "RIFormerBlock" not in _names(shape.repeat)
    assert shape.keep_branch is shape.last_branch  # directly before the final else
    assert _names(shape.keep_branch.test.comparisons[0].comparator) == [
        "SHSA",
        "BiLevelRoutingAttention",
        "token_mixer",
    ]
    imported = {
        a.name: node.module for node in ast.parse(once).body if isinstance(node, ast.ImportFrom) for a in node.names
    }
    assert {n: imported[n] for n in STEMS} == {n: f"{package}.{stem}" for n, stem in STEMS.items()}

    diff = list(difflib.unified_diff(code.splitlines(), once.splitlines(), lineterm="", n=0))
    added = [line for line in diff if line.startswith("+") and not line.startswith("+++")]
    removed = [line for line in diff if line.startswith("-") and not line.startswith("---")]
    assert (len(added), len(removed)) == DIFF_LINES[name]
    assert all(
        line.rstrip().endswith(
            (
                "# yamlforge",
                KEEP_MARKER,
                "RIFormerBlock,",
                "RIFormerBlock}:",
                "RIFormerBlock):",
                "c2 = ch[f]",
                "args = [c2, *args]",
                "RepC3,",
            )
        )
        for line in added
    ), added


@pytest.mark.parametrize(("name", "kind", "version", "relpath", "package"), TARGETS, ids=IDS)
def test_full_real_file_repeats_join_the_repeat_collection(pristine, name, kind, version, relpath, package):
    code = (pristine(kind, version) / relpath).read_text(encoding="utf-8")
    once = register_in_parse_model(code, [RIFORMER_FOLD], filename=relpath)
    assert register_in_parse_model(once, [RIFORMER_FOLD], filename=relpath) == once
    compile(once, relpath, "exec")
    shape = locate(_parse_model(once))
    assert _names(shape.base)[-1] == "RIFormerBlock"
    assert _names(shape.repeat)[-1] == "RIFormerBlock"
    assert shape.keep_branch is None


def test_edits_never_import_libcst_matchers():
    """Its generated module takes as long to import as libcst itself: half of apply's time over its floor."""
    before = FIXTURES / "ultralytics-8.4.190.py.before"
    code = (
        "import sys; from pathlib import Path\n"
        "from yamlforge.patch.codemods import Registration, add_imports, register_in_parse_model\n"
        f"text = Path({str(before)!r}).read_text()\n"
        "text = register_in_parse_model(text, [Registration('SHSA', 'keep')], filename='tasks.py')\n"
        "add_imports(text, [('ultralytics.nn.modules.shsa', 'SHSA')], filename='tasks.py')\n"
        "assert 'libcst.matchers' not in sys.modules, 'libcst.matchers was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
