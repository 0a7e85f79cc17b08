"""`yamlforge adopt` through the CLI: the survey table, a written spec, and bad input as one line with nothing
written."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from checkout_tools import tree_hashes
from typer.testing import CliRunner

from yamlforge.adopt.engine import TIMEOUT_ENV
from yamlforge.cli import app

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "adopt"
PYTHON = sys.executable


def fixture(name: str):
    return lambda tmp: [str(FIXTURES / name)]


def written(name: str, text: str):
    """SOURCE::CLASS of a file ``name`` with ``text``, made in the test's folder."""
    def make(tmp: Path) -> list[str]:
        (tmp / name).write_text(text)
        return [f"{tmp / name}::Block"]
    return make


def linked_outside(tmp: Path) -> list[str]:
    (tmp / "elsewhere.py").write_text((FIXTURES / "layers.py").read_text())
    (tmp / "src").mkdir()
    (tmp / "src" / "layers.py").symlink_to(tmp / "elsewhere.py")
    return [f"{tmp / 'src'}::ChannelGate"]


def output_is_a_file(tmp: Path) -> list[str]:
    (tmp / "spec.yaml").write_text("name: mine\n")
    return [f"{FIXTURES / 'layers.py'}::ChannelGate", "-o", str(tmp / "spec.yaml")]


def spec_edited_by_hand(tmp: Path) -> list[str]:
    (tmp / "out").mkdir()
    (tmp / "out" / "channelgate.yaml").write_text("name: ChannelGate  # edited by hand\n")
    return [f"{FIXTURES / 'layers.py'}::ChannelGate"]


LAYERS = str(FIXTURES / "layers.py")
CASES = [
    # id, argv (or a function of the test's folder making it), what the error line says
    ("missing-source", [], "missing SOURCE"),
    ("source-does-not-exist", ["nowhere/block.py::Block"], "'nowhere/block.py' does not exist"),
    ("empty-class", [f"{LAYERS}::"], "is not SOURCE::CLASS"),
    ("syntax-error", written("broken.py", "class Block(nn.Module:\n    pass\n"), "'broken.py' is not valid Python"),
    ("no-nn-module", written("plain.py", "class Block:\n    pass\n"), "no torch.nn.Module class"),
    ("unknown-class", [f"{LAYERS}::ChanelGate"], "no nn.Module class 'ChanelGate' in the source; did you mean"),
    ("link-outside-the-folder", linked_outside, "links outside the source folder"),
    ("missing-package", [f"{FIXTURES / 'missing_dep.py'}::NeedsAbsentPackage"],
     "the source imports yamlforge_absent_package, which"),
    ("malformed-set", [f"{LAYERS}::ChannelGate", "--set", "reduction"], "--set 'reduction' is not KEY=VALUE"),
    ("set-without-class", [LAYERS, "--set", "reduction=2"], "--name and --set need SOURCE::CLASS"),
    ("name-not-an-identifier", [f"{LAYERS}::ChannelGate", "--name", "2-gate"], "--name '2-gate' is not a Python"),
    ("output-is-a-file", output_is_a_file, "is a file, not a folder"),
    ("spec-edited-by-hand", spec_edited_by_hand, "exists with other content; nothing was written"),
    # these probe the class in a subprocess
    ("unknown-set-key", [f"{LAYERS}::ChannelGate", "--set", "nope=1"], "ChannelGate has no constructor argument nope"),
    ("required-argument-without-set", [f"{LAYERS}::NeedsHeads"], "give them with --set num_heads=..."),
    ("forward-fails-in-every-layout", [f"{FIXTURES / 'bad.py'}::Broken"], "forward failed in every layout"),
    ("forward-hangs", [f"{FIXTURES / 'bad.py'}::Hangs"], "Hangs did not finish within 5 s"),
    ("classifier-without-flags", [f"{FIXTURES / 'networks.py'}::TinyClassifier"],
     "is a classifier (output (1, 10)), not a layer or backbone; a detector needs feature maps"),
    ("fixed-input-resolution", [f"{FIXTURES / 'layouts.py'}::FixedGridBlock"],
     "is built for one fixed map size (input_resolution)"),
]


@pytest.mark.parametrize(("argv", "message"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_and_writes_nothing(tmp_path, monkeypatch, argv, message):
    monkeypatch.setenv(TIMEOUT_ENV, "5")
    args = argv(tmp_path) if callable(argv) else argv
    if args and "-o" not in args:
        args = [*args, "-o", str(tmp_path / "out")]
    before = tree_hashes(tmp_path), sorted(tmp_path.rglob("*"))
    result = CliRunner().invoke(app, ["adopt", *args, "--python", PYTHON])
    assert result.exit_code == 2, result.output
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and message in errors[0], result.output
    assert "Traceback" not in result.output
    assert (tree_hashes(tmp_path), sorted(tmp_path.rglob("*"))) == before


def test_missing_package_hint_is_the_pip_command(tmp_path):
    result = CliRunner().invoke(app, ["adopt", f"{FIXTURES / 'missing_dep.py'}::NeedsAbsentPackage",
                                      "--python", PYTHON, "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert f"hint: {PYTHON} -m pip install yamlforge_absent_package" in result.output


def test_adopt_writes_spec_prints_row_and_apply_command_and_twice_is_identical(tmp_path):
    argv = ["adopt", f"{FIXTURES / 'layers.py'}::ExpandProject", "--set", "expand_ratio=3", "--python", PYTHON,
            "-o", str(tmp_path / "specs")]
    first = CliRunner().invoke(app, argv)
    assert first.exit_code == 0, first.output
    spec = tmp_path / "specs" / "expandproject.yaml"
    assert first.stdout.splitlines() == ["YAML row: - [-1, 1, ExpandProject, [256, 3]]",
                                         f"next:     yamlforge apply --repo REPO --spec {spec}"]
    assert f"create    {spec}" in first.stderr
    assert {p.name for p in (tmp_path / "specs").iterdir()} == {"expandproject.py", "expandproject.yaml"}
    again = CliRunner().invoke(app, argv)
    assert again.exit_code == 0, again.output
    assert f"identical {spec}" in again.stderr


def test_survey_lists_every_class_and_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(app, ["adopt", str(FIXTURES / "networks.py"), "--python", PYTHON])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line for line in result.stdout.splitlines()[1:] if line.strip()}
    assert "cannot adopt: PyramidNet is a classifier" in rows["PyramidNet"]
    assert "networks.py:33" in rows["TinyClassifier"]
    assert list(tmp_path.iterdir()) == []
