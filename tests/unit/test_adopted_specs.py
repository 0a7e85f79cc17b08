"""Specs in the notations adopt writes (package folders, channels: none) apply, refuse and revert like bundled ones."""

from __future__ import annotations

import shutil
import sys
import textwrap

import pytest
from checkout_tools import tree_hashes
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import YamlforgeError
from yamlforge.patch.plan import plan_apply, plan_revert
from yamlforge.patch.writer import write_changeset
from yamlforge.resources import render
from yamlforge.specs import SpecRegistry, load_spec
from yamlforge.targets import detect_target

VERSION = "8.4.190"
MODULES = "ultralytics/nn/modules"
SPEC = """\
name: {name}
summary: test layer
paper: "Me, 2026"
source: {source}
exports: [{export}]
role: layer
channels: {channels}
"""


@pytest.fixture
def repo(tmp_path, pristine):
    dest = tmp_path / "repo"
    shutil.copytree(pristine("ultralytics", VERSION), dest)
    return dest


def package_spec(folder, name="DualPath", stem="dualpath"):
    """A package folder without __init__.py anywhere, its entry importing a sibling and a sub-folder relatively."""
    files = {
        "blocks.py": "import torch\n\nfrom .basic import ConvNorm\nfrom .sub.deep import Deep\n\n\n"
                     f"class {name}(torch.nn.Module):\n    pass\n",
        "basic.py": "import torch\n\n\nclass ConvNorm(torch.nn.Module):\n    pass\n",
        "sub/deep.py": "import torch\n\n\nclass Deep(torch.nn.Module):\n    pass\n",
    }
    for rel, text in files.items():
        (folder / stem / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / stem / rel).write_text(text)
    spec = folder / f"{stem}.yaml"
    spec.write_text(SPEC.format(name=name, source=f"{stem}/", export=name, channels="keep") + "entry: blocks.py\n")
    return spec


def file_spec(folder, name, channels="keep", source="import torch\n\n\nclass {name}(torch.nn.Module):\n    pass\n"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name.lower()}.py").write_text(source.format(name=name))
    spec = folder / f"{name.lower()}.yaml"
    spec.write_text(SPEC.format(name=name, source=f"{name.lower()}.py", export=name, channels=channels))
    return spec


def apply(repo, *spec_paths):
    target = detect_target(repo)
    specs = [load_spec(p) for p in spec_paths]
    write_changeset(plan_apply(target, specs, SpecRegistry(spec_paths)).changeset)
    return target


def test_package_is_placed_with_init_files_imported_from_its_entry_and_reverted_byte_exactly(repo, tmp_path):
    before = tree_hashes(repo)
    target = apply(repo, package_spec(tmp_path / "specs"))
    placed = sorted(p.relative_to(repo / MODULES).as_posix() for p in (repo / MODULES / "dualpath").rglob("*.py"))
    assert placed == ["dualpath/__init__.py", "dualpath/basic.py", "dualpath/blocks.py", "dualpath/sub/__init__.py",
                      "dualpath/sub/deep.py"]
    for path in (repo / MODULES / "dualpath").rglob("*.py"):
        compile(path.read_text(), str(path), "exec")
    assert "from .sub.deep import Deep" in (repo / MODULES / "dualpath/blocks.py").read_text()
    root_init = (repo / MODULES / "dualpath/__init__.py").read_text()
    assert 'import_module(".blocks", __name__)' in root_init and "value.__module__ = package" in root_init
    assert "from ultralytics.nn.modules.dualpath.blocks import DualPath" in (repo / target.kind.tasks_file).read_text()
    manifest = (repo / ".yamlforge/manifest.json").read_text()
    assert '"file": "ultralytics/nn/modules/dualpath/"' in manifest and "dualpath/sub/deep.py" in manifest

    write_changeset(plan_revert(target, SpecRegistry()).changeset)
    assert tree_hashes(repo) == before
    assert not (repo / MODULES / "dualpath").exists()


def test_yolov9_package_init_imports_the_entry_module(tmp_path):
    spec = load_spec(package_spec(tmp_path))
    assert "from .dualpath.blocks import DualPath\n" in render("package_init.py.j2", specs=[spec], fusions=[])


@pytest.mark.parametrize(("make", "message"), [
    (lambda folder: file_spec(folder, "Conv"),
     "Conv's module file would replace 'ultralytics/nn/modules/conv.py', which already exists"),
    (lambda folder: package_spec(folder, name="Mine", stem="head"),
     "Mine's package would shadow 'ultralytics/nn/modules/head.py'"),
], ids=["file-over-conv.py", "package-folder-shadowing-head.py"])
def test_placing_over_the_targets_own_module_is_refused_and_writes_nothing(repo, tmp_path, make, message):
    before = tree_hashes(repo)
    with pytest.raises(YamlforgeError) as info:
        apply(repo, make(tmp_path / "specs"))
    assert message in str(info.value) and "\n" not in str(info.value)
    assert tree_hashes(repo) == before


def test_channels_none_gets_its_own_branch(repo, tmp_path):
    target = apply(repo, file_spec(tmp_path / "specs", "Gate", channels="none"))
    tasks = (repo / target.kind.tasks_file).read_text()
    branch = "        elif m in {Gate}:  # yamlforge: modules without channel arguments\n            c2 = ch[f]\n"
    assert branch in tasks


# ------------------------------------------------------------------ apply probes a hand-written spec's channel rule

NO_CHANNEL = textwrap.dedent("""\
    import torch


    class {name}(torch.nn.Module):
        def __init__(self, no_spatial=False):
            super().__init__()
            self.no_spatial = no_spatial

        def forward(self, x):
            return x * torch.sigmoid(x)
    """)


def test_apply_refuses_a_channel_rule_the_code_contradicts(repo, tmp_path):
    """The issue's silent failure: declared keep, built as Gate(64), i.e. no_spatial=64."""
    spec = file_spec(tmp_path / "specs", "Gate", channels="keep", source=NO_CHANNEL)
    before = tree_hashes(repo)
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--spec", str(spec)])
    assert result.exit_code == 2, result.output
    error = next(line for line in result.output.splitlines() if line.startswith("error:"))
    assert error == (f"error: Gate declares channels: keep, but probing Gate found no constructor argument sets the "
                     f"width (channels: none); nothing was changed ({spec}:7)")
    assert tree_hashes(repo) == before


def test_apply_without_torch_in_python_says_so_in_one_line(repo, tmp_path):
    python = tmp_path / "python-without-site-packages"
    python.write_text(f'#!/bin/sh\nexec {sys.executable} -S "$@"\n')
    python.chmod(0o755)
    spec = file_spec(tmp_path / "specs", "Gate", channels="none", source=NO_CHANNEL)
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--spec", str(spec), "--python", str(python)])
    assert result.exit_code == 2, result.output
    assert f"error: {python} cannot import torch, so the channel rule of Gate cannot be checked (--python)" in \
        result.output.splitlines()
