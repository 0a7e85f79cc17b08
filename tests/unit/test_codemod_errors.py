"""Every codemod entry point reports a syntax error and an unexpected shape at the user's own ``file:line``."""

from __future__ import annotations

import textwrap

import pytest

from yamlforge.errors import YamlforgeError
from yamlforge.patch.codemods import (
    MULTI_OUTPUT_EDITS,
    Registration,
    add_imports,
    add_multi_output_support,
    edit_code,
    fix_get_flops,
    import_edits,
    register_in_parse_model,
    registration_edits,
)

FILENAME = "ultralytics/nn/tasks.py"
RIFORMER = Registration("RIFormerBlock", "in_out")
SHSA = Registration("SHSA", "keep")
FUSED = Registration("HGBlock_SHSA", "host", host="HGBlock")
IMPORTS = [("ultralytics.nn.modules.shsa", "SHSA")]

# parse_model before the forward method, and a one-per-line base collection: earlier edits insert lines above
# the nodes later edits fail at, so a line counted in the edited module would be off
TASKS = textwrap.dedent("""\
    import torch


    def parse_model(d, ch):
        ch = [ch]
        base_modules = frozenset(
            {
                Conv,
                C2f,
                HGBlock,
            }
        )
        layers, save, c2 = [], [], ch[-1]
        for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):
            m = globals()[m]
            if m in base_modules:
                c1, c2 = ch[f], args[0]
                args = [c1, c2, *args[1:]]
            else:
                c2 = ch[f]
            m_ = nn.Sequential(*(m(*args) for _ in range(n))) if n > 1 else m(*args)
            save.extend(x % i for x in ([f] if isinstance(f, int) else f) if x != -1)
            layers.append(m_)
            if i == 0:
                ch = []
            ch.append(c2)
        return nn.Sequential(*layers), sorted(save)


    class BaseModel:
        def _predict_once(self, x):
            y = []
            for m in self.model:
                x = m(x)
                y.append(x if m.i in self.save else None)  # save output
            return x
""")
FLOPS = ("import torch\n\n\ndef model_info(model):\n    try:\n        flops = thop.profile(model)[0]\n"
         "    except Exception:\n        fs = ''\n")

SYNTAX_ERROR = ("layers.append(m_)", "layers.append(m_")  # Python: '(' was never closed, on that line
NO_FINAL_ELSE = ("        else:\n            c2 = ch[f]\n", "")
NO_CH_APPEND = ("ch.append(c2)", "ch += [c2]")
NO_SAVE_APPEND = ("y.append(x if", "y.insert(len(y), x if")
NO_HOST = ("        HGBlock,\n", "")
FLOPS_SYNTAX_ERROR = ("thop.profile(model)[0]", "thop.profile(model")
NO_TRY = ("    try:\n        flops = thop.profile(model)[0]\n    except Exception:\n", "    if not model:\n")


def register(code: str) -> str:
    return register_in_parse_model(code, [RIFORMER, SHSA, FUSED], filename=FILENAME)


def tasks_edits(code: str) -> str:
    """The edits ``apply`` makes to the tasks file for a backbone and two layers, chained on one parse."""
    edits = [*MULTI_OUTPUT_EDITS, *registration_edits([RIFORMER, SHSA]), *import_edits(IMPORTS)]
    return edit_code(code, edits, filename=FILENAME)


ENTRY_POINTS = {
    "imports": lambda code: add_imports(code, IMPORTS, filename=FILENAME),
    "registration": register,
    "multi-output": lambda code: add_multi_output_support(code, filename=FILENAME),
    "flops": lambda code: fix_get_flops(code, filename=FILENAME),
    "tasks-edits": tasks_edits,
}

# (entry point, original code, (old, new) turning it into the faulty file, message, text of the user's line)
ERRORS = [
    pytest.param("imports", TASKS, SYNTAX_ERROR, "was never closed", "layers.append(m_", id="imports-syntax"),
    pytest.param("registration", TASKS, SYNTAX_ERROR, "was never closed", "layers.append(m_", id="registration-syntax"),
    pytest.param(
        "registration", TASKS, NO_FINAL_ELSE, "end with 'else:'", "if m in base_modules:", id="registration-no-else"
    ),
    pytest.param(
        "registration", TASKS, NO_HOST, "against HGBlock", "def parse_model(", id="registration-host-untested"
    ),
    pytest.param("multi-output", TASKS, SYNTAX_ERROR, "was never closed", "layers.append(m_", id="multi-output-syntax"),
    pytest.param(
        "multi-output", TASKS, NO_CH_APPEND, "'ch.append(c2)'", "for i, (f, n, m, args)", id="multi-output-row-loop"
    ),
    pytest.param(
        "multi-output", TASKS, NO_SAVE_APPEND, "BaseModel._predict_once", "def _predict_once(",
        id="multi-output-forward"
    ),
    pytest.param("flops", FLOPS, FLOPS_SYNTAX_ERROR, "was never closed", "thop.profile(model", id="flops-syntax"),
    pytest.param("flops", FLOPS, NO_TRY, "expected a 'try:' computing FLOPs", "def model_info(", id="flops-no-try"),
    pytest.param("tasks-edits", TASKS, SYNTAX_ERROR, "was never closed", "layers.append(m_", id="tasks-edits-syntax"),
    pytest.param(
        "tasks-edits", TASKS, NO_FINAL_ELSE, "end with 'else:'", "if m in base_modules:", id="tasks-edits-no-else"
    ),
]


def line_of(code: str, text: str) -> int:
    return next(number for number, line in enumerate(code.splitlines(), 1) if text in line)


@pytest.mark.parametrize(("entry", "original", "fault", "message", "line_text"), ERRORS)
def test_error_names_the_users_file_and_line(entry, original, fault, message, line_text):
    code = original.replace(*fault)
    assert code != original
    with pytest.raises(YamlforgeError) as info:
        ENTRY_POINTS[entry](code)
    assert message in info.value.message
    assert info.value.where == f"{FILENAME}:{line_of(code, line_text)}"


@pytest.mark.parametrize(("entry", "original"), [(e, FLOPS if e == "flops" else TASKS) for e in ENTRY_POINTS])
def test_the_file_without_the_fault_is_edited(entry, original):
    assert ENTRY_POINTS[entry](original) != original
