"""adopt_source: a paper's files loaded and read without running them (classes, requirements, relative imports)."""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

from yamlforge.adopt.source import (
    Param,
    Requirement,
    install_hint,
    load_source,
    missing_requirements,
    module_classes,
    relativize_imports,
    requirements,
)
from yamlforge.errors import YamlforgeError


def src(text: str) -> str:
    return textwrap.dedent(text).lstrip("\n")


def write_tree(root: Path, files: dict[str, str]) -> Path:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(src(text))
    return root


def one_file(tmp_path: Path, text: str, name: str = "block.py"):
    return load_source(write_tree(tmp_path, {name: text}) / name)


# ------------------------------------------------------------------ loading


def test_load_file_without_extension(tmp_path):
    source = one_file(tmp_path, "import torch\n", name="block")
    assert (source.is_package, source.entry, source.name, list(source.files)) == (False, "block", "block", ["block"])


def test_load_package_lists_every_py_and_skips_hidden_and_cache(tmp_path):
    root = write_tree(tmp_path / "model", {"__init__.py": "", "basic.py": "x = 1\n", "sub/deep.py": "y = 2\n",
                                           ".git/hook.py": "", "__pycache__/basic.py": "", "README.md": "text\n"})
    source = load_source(root)
    assert (source.is_package, source.entry, source.name) == (True, "", "model")
    assert sorted(source.files) == ["__init__.py", "basic.py", "sub/deep.py"]


def test_module_name_is_an_identifier(tmp_path):
    assert one_file(tmp_path, "x = 1\n", name="2-my-block.py").name == "_2_my_block"


def test_syntax_error_names_file_and_line(tmp_path):
    with pytest.raises(YamlforgeError) as info:
        one_file(tmp_path, "import torch\n\ndef f(:\n    pass\n")
    assert info.value.where == f"{tmp_path / 'block.py'}:3"
    assert "is not valid Python" in info.value.message


def test_syntax_error_in_package_names_that_file(tmp_path):
    root = write_tree(tmp_path / "pkg", {"ok.py": "x = 1\n", "sub/bad.py": "x = = 1\n"})
    with pytest.raises(YamlforgeError) as info:
        load_source(root)
    assert info.value.where == f"{root / 'sub' / 'bad.py'}:1"


def test_missing_path(tmp_path):
    with pytest.raises(YamlforgeError, match="does not exist"):
        load_source(tmp_path / "nope.py")


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(YamlforgeError, match="has no .py file"):
        load_source(tmp_path / "empty")


def test_binary_file(tmp_path):
    (tmp_path / "weights").write_bytes(b"\x80\x02PK\x00\x00binary")
    with pytest.raises(YamlforgeError, match="binary file"):
        load_source(tmp_path / "weights")


def test_other_extension_is_refused(tmp_path):
    (tmp_path / "notes.ipynb").write_text("{}")
    with pytest.raises(YamlforgeError, match="not a Python file"):
        load_source(tmp_path / "notes.ipynb")


@pytest.mark.parametrize("link", ["file.py", "folder"], ids=["file-link", "folder-link"])
def test_link_leading_outside_the_folder_is_refused(tmp_path, link):
    outside = write_tree(tmp_path / "outside", {"file.py": "x = 1\n", "folder/inner.py": "y = 1\n"})
    root = write_tree(tmp_path / "pkg", {"main.py": "z = 1\n"})
    (root / link).symlink_to(outside / link)
    with pytest.raises(YamlforgeError, match="links outside the source folder"):
        load_source(root)


def test_link_inside_the_folder_is_read_once(tmp_path):
    root = write_tree(tmp_path / "pkg", {"main.py": "z = 1\n"})
    (root / "alias.py").symlink_to(root / "main.py")
    assert list(load_source(root).files) == ["main.py"]


# ------------------------------------------------------------------ classes


def names(text: str, tmp_path: Path) -> list[str]:
    return [c.name for c in module_classes(one_file(tmp_path, text))]


CLASS_CASES = [
    pytest.param("import torch.nn as nn\nclass A(nn.Module): pass\n", ["A"], id="import-torch-nn-as-nn"),
    pytest.param("from torch import nn\nclass A(nn.Module): pass\n", ["A"], id="from-torch-import-nn"),
    pytest.param("import torch\nclass A(torch.nn.Module): pass\n", ["A"], id="torch-nn-Module"),
    pytest.param("from torch.nn import Module as M\nclass A(M): pass\n", ["A"], id="aliased-Module"),
    pytest.param("from torch import nn as tnn\nclass A(tnn.Sequential): pass\n", ["A"], id="nn-Sequential"),
    pytest.param("from torch import nn\nclass B(C): pass\nclass C(nn.Module): pass\n", ["B", "C"],
                 id="indirect-defined-later"),
    pytest.param("from dataclasses import dataclass\nfrom torch import nn\n@dataclass\nclass Cfg:\n    dim: int = 4\n"
                 "class A(nn.Module): pass\n", ["A"], id="dataclass-noise"),
    pytest.param("from torch import nn\nclass A(nn.Module):\n    class Inner(nn.Module): pass\n", ["A"],
                 id="nested-class-ignored"),
    pytest.param("import nn\nclass A(nn.Module): pass\n", [], id="foreign-nn"),
    pytest.param("class Module: pass\nclass A(Module): pass\n", [], id="local-Module"),
    pytest.param("from torch import nn\nclass A(nn.functional.relu): pass\n", [], id="lowercase-torch-name"),
]


@pytest.mark.parametrize(("text", "expected"), CLASS_CASES)
def test_module_classes_found(tmp_path, text, expected):
    assert names(text, tmp_path) == expected


def test_class_params_and_forward(tmp_path):
    text = """
        from torch import nn
        class Block(nn.Module):
            def __init__(self, dim, ratio=4.0, *blocks, act=nn.GELU, norm, **kw):
                super().__init__()
            def forward(self, x, H, W, *rest):
                return x
    """
    (info,) = module_classes(one_file(tmp_path, text))
    assert (info.name, info.file, info.line) == ("Block", "block.py", 2)
    assert info.params == [Param("dim", None, "positional"), Param("ratio", "4.0", "positional"),
                           Param("blocks", None, "var_positional"), Param("act", "nn.GELU", "keyword"),
                           Param("norm", None, "keyword"), Param("kw", None, "var_keyword")]
    assert info.forward_params == ["x", "H", "W", "*rest"]


def test_default_keeps_its_source_text(tmp_path):
    text = "from torch import nn\nclass A(nn.Module):\n    def __init__(self, k=( 3,3 ), p=-1): pass\n"
    (info,) = module_classes(one_file(tmp_path, text))
    assert [p.default for p in info.params] == ["( 3,3 )", "-1"]


def test_init_and_forward_inherited_across_files(tmp_path):
    root = write_tree(tmp_path / "pkg", {
        "base.py": """
            import torch.nn as nn
            class Base(nn.Module):
                def __init__(self, c1, c2=8): pass
                def forward(self, x): return x
        """,
        "blocks.py": "from .base import Base\nclass Child(Base):\n    pass\n",
    })
    infos = {c.name: c for c in module_classes(load_source(root))}
    assert infos["Child"].params == [Param("c1", None, "positional"), Param("c2", "8", "positional")]
    assert (infos["Child"].file, infos["Child"].forward_params) == ("blocks.py", ["x"])


def test_module_without_init_has_no_params(tmp_path):
    (info,) = module_classes(one_file(tmp_path, "from torch import nn\nclass A(nn.Module):\n    pass\n"))
    assert (info.params, info.forward_params) == ([], [])


# ------------------------------------------------------------------ requirements


def reqs(text: str, tmp_path: Path) -> list[tuple]:
    return [(r.import_name, r.pip_name, r.where, r.optional, r.provided)
            for r in requirements(one_file(tmp_path, text))]


REQUIREMENT_CASES = [
    pytest.param("import cv2\n", [("cv2", "opencv-python", "block.py:1", False, False)], id="pip-name-differs"),
    pytest.param("from einops.layers.torch import Rearrange\n", [("einops", "einops", "block.py:1", False, False)],
                 id="submodule"),
    pytest.param("import torch\nimport numpy as np\n", [("torch", "torch", "block.py:1", False, True),
                                                        ("numpy", "numpy", "block.py:2", False, True)],
                 id="provided-by-target"),
    pytest.param("import os, sys\nfrom collections import OrderedDict\nimport __future__\n", [], id="stdlib"),
    pytest.param("from .layers import X\nfrom . import y\n", [], id="relative"),
    pytest.param("import block\n", [], id="own-module"),
    pytest.param("def f():\n    import timm\n", [("timm", "timm", "block.py:2", False, False)], id="in-function"),
    pytest.param("try:\n    import natten\nexcept ImportError:\n    natten = None\n",
                 [("natten", "natten", "block.py:2", True, False)], id="optional"),
    pytest.param("try:\n    import natten\nexcept (ValueError, ModuleNotFoundError):\n    pass\n",
                 [("natten", "natten", "block.py:2", True, False)], id="optional-tuple"),
    pytest.param("try:\n    import mmcv\nexcept KeyError:\n    pass\n",
                 [("mmcv", "mmcv", "block.py:2", False, False)], id="try-without-import-guard"),
    pytest.param("try:\n    pass\nexcept ImportError:\n    import PIL\n",
                 [("PIL", "Pillow", "block.py:4", False, False)], id="import-in-handler-is-required"),
    pytest.param("try:\n    import yaml\nexcept ImportError:\n    pass\nimport yaml\n",
                 [("yaml", "PyYAML", "block.py:5", False, False)], id="required-once-is-required"),
    pytest.param("import sklearn\nimport sklearn.metrics\n", [("sklearn", "scikit-learn", "block.py:1", False, False)],
                 id="deduplicated"),
]


@pytest.mark.parametrize(("text", "expected"), REQUIREMENT_CASES)
def test_requirements(tmp_path, text, expected):
    assert reqs(text, tmp_path) == expected


def test_package_own_modules_are_not_requirements(tmp_path):
    root = write_tree(tmp_path / "repo", {
        "models/layers.py": "import utils\nfrom models import layers\nimport helpers\nimport einops\n",
        "utils/__init__.py": "", "models/helpers.py": "",
    })
    assert [r.import_name for r in requirements(load_source(root))] == ["einops"]


def test_missing_requirements_asks_the_target_python():
    found = [Requirement("json", "json", "a.py:1", False), Requirement("yamlforge_no_such_pkg", "no-such", "a.py:2",
                                                                        False),
             Requirement("other_missing_optional", "x", "a.py:3", True)]
    assert missing_requirements(sys.executable, found) == [found[1]]


def test_missing_requirements_unknown_python():
    with pytest.raises(YamlforgeError, match="cannot run"):
        missing_requirements("/no/such/python", [Requirement("einops", "einops", "a.py:1", False)])


def test_install_hint_lists_pip_names_once():
    missing = [Requirement("cv2", "opencv-python", "a.py:1", False), Requirement("einops", "einops", "a.py:2", False),
               Requirement("cv2", "opencv-python", "b.py:1", False)]
    assert install_hint("/opt/my env/python", missing) == "'/opt/my env/python' -m pip install opencv-python einops"


# ------------------------------------------------------------------ relative imports


def relativize(tmp_path: Path, rel: str, text: str) -> str:
    """``text`` as file ``rel`` of package folder ``model/`` after relativize_imports (unchanged: the input)."""
    files = {"basic_modules.py": "", "models/layers.py": "", "models/sub/deep.py": "", rel: text}
    root = write_tree(tmp_path / "model", files)
    return relativize_imports(load_source(root)).get(rel, src(text))


REWRITES = [
    ("main.py", "from model.basic_modules import X\n", "from .basic_modules import X\n"),
    ("main.py", "from model.basic_modules import (\n    X,\n    Y as Z,\n)\n",
     "from .basic_modules import (\n    X,\n    Y as Z,\n)\n"),
    ("main.py", "from model import basic_modules\n", "from . import basic_modules\n"),
    ("main.py", "import model.basic_modules as bm\n", "from . import basic_modules as bm\n"),
    ("main.py", "from models.layers import X\n", "from .models.layers import X\n"),
    ("models/sub/deep.py", "from models.layers import X\n", "from ..layers import X\n"),
    ("models/sub/deep.py", "from model.basic_modules import X\n", "from ...basic_modules import X\n"),
    ("models/layers.py", "from models.sub.deep import X\n", "from .sub.deep import X\n"),
    ("models/layers.py", "from models import sub\n", "from . import sub\n"),
    ("models/layers.py", "import basic_modules\n", "from .. import basic_modules\n"),
    ("main.py", "def f():\n    from models.layers import X\n", "def f():\n    from .models.layers import X\n"),
    ("main.py", "try:\n    from models.layers import X\nexcept ImportError:\n    X = None\n",
     "try:\n    from .models.layers import X\nexcept ImportError:\n    X = None\n"),
    ("main.py", "import os, model.basic_modules as bm  # why\n",
     "import os; from . import basic_modules as bm  # why\n"),
    ("main.py", "from  model.basic_modules  import  X\n", "from  .basic_modules  import  X\n"),
    ("main.py", "from model.basic_modules import *\n", "from .basic_modules import *\n"),
]
NOOPS = [
    ("main.py", "from .basic_modules import X\n"),
    ("main.py", "from . import basic_modules as bm\n"),
    ("models/sub/deep.py", "from ..layers import X\n"),
    ("main.py", "import os\nfrom collections import OrderedDict\n"),
    ("main.py", "import torch.nn as nn\nfrom einops import rearrange\n"),
    ("main.py", "from modelzoo.basic_modules import X\n"),
    ("main.py", "import models_extra\n"),
]


@pytest.mark.parametrize(("rel", "before", "after"), REWRITES, ids=[f"{r}:{b.splitlines()[0]}" for r, b, _ in REWRITES])
def test_relativize_rewrites(tmp_path, rel, before, after):
    assert relativize(tmp_path, rel, before) == after


@pytest.mark.parametrize(("rel", "text"), NOOPS, ids=[f"{r}:{t.splitlines()[0]}" for r, t in NOOPS])
def test_relativize_noop(tmp_path, rel, text):
    assert relativize(tmp_path, rel, text) == text


@pytest.mark.parametrize(("rel", "before", "_"), REWRITES[:6], ids=[b.splitlines()[0] for _, b, _ in REWRITES[:6]])
def test_relativize_twice_is_noop(tmp_path, rel, before, _):
    once = relativize(tmp_path / "once", rel, before)
    assert relativize(tmp_path / "twice", rel, once) == once


@pytest.mark.parametrize("statement", ["import model.basic_modules", "import models.layers", "import model as m"])
def test_relativize_refuses_what_it_cannot_express(tmp_path, statement):
    with pytest.raises(YamlforgeError, match="cannot become a relative import") as info:
        relativize(tmp_path, "main.py", f"x = 1\n{statement}\n")
    assert info.value.where.endswith("main.py:2")


def test_relativize_returns_only_changed_files_and_nothing_for_one_file(tmp_path):
    root = write_tree(tmp_path / "model", {"a.py": "from model.b import X\n", "b.py": "import torch\n"})
    assert relativize_imports(load_source(root)) == {"a.py": "from .b import X\n"}
    assert relativize_imports(load_source(root / "a.py")) == {}


def test_same_class_name_in_two_files_are_two_classes(tmp_path):
    root = write_tree(tmp_path / "pkg", {
        "a.py": "from torch import nn\nclass Block(nn.Module):\n    def __init__(self, dim): pass\n",
        "b.py": "from torch import nn\nclass Block(nn.Module):\n    def __init__(self, c1, c2): pass\n",
    })
    found = [(c.file, c.name, [p.name for p in c.params]) for c in module_classes(load_source(root))]
    assert found == [("a.py", "Block", ["dim"]), ("b.py", "Block", ["c1", "c2"])]


def test_declared_encoding_is_honoured(tmp_path):
    (tmp_path / "block.py").write_bytes("# -*- coding: latin-1 -*-\nname = 'Müller'\n".encode("latin-1"))
    assert "Müller" in load_source(tmp_path / "block.py").files["block.py"]
