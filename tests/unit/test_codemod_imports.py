"""add_imports: our ``from <module> import <name>  # yamlforge`` lines, after the last top-level import, once."""

from __future__ import annotations

import textwrap

import pytest

from yamlforge.errors import YamlforgeError
from yamlforge.patch.codemods.imports import add_imports

SHSA = [("ultralytics.nn.modules.shsa", "SHSA")]


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


HEADER = src('''
    """Model tasks."""

    import torch
    from ultralytics.nn.modules import (
        C2f,
        Conv,
    )
    from ultralytics.utils import LOGGER


    def parse_model(d, ch):
        import ast  # not module level: the insertion point ignores it
        return ast
''')

FIXES = [
    pytest.param(
        HEADER,
        SHSA,
        HEADER.replace(
            "from ultralytics.utils import LOGGER\n",
            "from ultralytics.utils import LOGGER\nfrom ultralytics.nn.modules.shsa import SHSA  # yamlforge\n",
        ),
        id="after-last-top-level-import",
    ),
    pytest.param(
        HEADER,
        [("m.riformer", "RIFormerBlock"), ("m.revcol", "RevCol"), ("m.riformer", "RIFormerDeploy")],
        HEADER.replace(
            "from ultralytics.utils import LOGGER\n",
            "from ultralytics.utils import LOGGER\n"
            "from m.riformer import RIFormerBlock, RIFormerDeploy  # yamlforge\n"
            "from m.revcol import RevCol  # yamlforge\n",
        ),
        id="names-grouped-per-module-in-first-seen-order",
    ),
    pytest.param(
        src("""
            import sys
            from models.common import *

            try:
                import thop
            except ImportError:
                thop = None
        """),
        [("models.yamlforge.shsa", "SHSA")],
        src("""
            import sys
            from models.common import *
            from models.yamlforge.shsa import SHSA  # yamlforge

            try:
                import thop
            except ImportError:
                thop = None
        """),
        id="yolov9-star-import-does-not-count-as-binding",
    ),
    pytest.param(
        src("""
            from __future__ import annotations

            import os
            X = 1
            import re  # a late import is still the last top-level one
        """),
        SHSA,
        src("""
            from __future__ import annotations

            import os
            X = 1
            import re  # a late import is still the last top-level one
            from ultralytics.nn.modules.shsa import SHSA  # yamlforge
        """),
        id="late-import",
    ),
    pytest.param(
        '"""Doc."""\nX = 1\n',
        SHSA,
        '"""Doc."""\nfrom ultralytics.nn.modules.shsa import SHSA  # yamlforge\nX = 1\n',
        id="no-imports-after-docstring",
    ),
    pytest.param(
        HEADER.replace("    C2f,\n", "    C2f,\n    SHSA,\n"),
        SHSA + [("m.bhvit", "token_mixer")],
        HEADER.replace("    C2f,\n", "    C2f,\n    SHSA,\n").replace(
            "LOGGER\n", "LOGGER\nfrom m.bhvit import token_mixer  # yamlforge\n"
        ),
        id="only-the-missing-name",
    ),
]

NOOPS = [
    pytest.param(HEADER.replace("    C2f,\n", "    C2f,\n    SHSA,\n"), id="in-parenthesized-import"),
    pytest.param(
        HEADER.replace("import torch\n", "from shsa_blog import SHSA\nimport torch\n"), id="from-another-module"
    ),
    pytest.param(HEADER.replace("import torch\n", "import torch\nfrom x import MyAttention as SHSA\n"), id="import-as"),
    pytest.param(HEADER.replace("import torch\n", "import torch, SHSA\n"), id="plain-import"),
    pytest.param(
        HEADER.replace("import torch\n", "import torch\nfrom   x   import  (SHSA)  #hand\n"), id="unusual-spacing"
    ),
    pytest.param(HEADER + "\n\nclass SHSA:\n    pass\n", id="defined-as-class"),
    pytest.param(HEADER + "\n\nSHSA = make_attention()\n", id="assigned"),
    pytest.param(
        HEADER + "\n\ntry:\n    from extra import SHSA\nexcept ImportError:\n    SHSA = None\n", id="guarded-import"
    ),
    pytest.param(
        HEADER.replace("LOGGER\n", "LOGGER\nfrom ultralytics.nn.modules.shsa import SHSA  # yamlforge\n"),
        id="applied",
    ),
]


@pytest.mark.parametrize(("before", "imports", "after"), FIXES)
def test_fixes(before, imports, after):
    assert add_imports(before, imports, filename="tasks.py") == after
    assert add_imports(after, imports, filename="tasks.py") == after


@pytest.mark.parametrize("code", NOOPS)
def test_noop(code):
    assert add_imports(code, SHSA, filename="tasks.py") == code


def test_syntax_error_names_file_and_line():
    with pytest.raises(YamlforgeError) as info:
        add_imports("import os\n\ndef f(:\n    pass\n", SHSA, filename="ultralytics/nn/tasks.py")
    assert info.value.where == "ultralytics/nn/tasks.py:3"


@pytest.mark.parametrize("pair", [("not a module", "SHSA"), ("m.shsa", "SHSA()"), ("", "SHSA")], ids=str)
def test_bad_pair_is_a_programming_error(pair):
    with pytest.raises(ValueError):
        add_imports("import os\n", [pair], filename="tasks.py")
