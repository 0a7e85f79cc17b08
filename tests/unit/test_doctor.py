"""doctor: an interrupted run rolled back, file drift against the manifest, the package Python imports, environment
traps, missing requirements, and a fix for each (the traps in real second venvs: test_doctor_traps_e2e.py)."""

from __future__ import annotations

import hashlib

import pytest
from typer.testing import CliRunner

from yamlforge.check import doctor as doctor_module
from yamlforge.check.doctor import doctor, file_status
from yamlforge.cli import app
from yamlforge.patch.journal import plan_journal
from yamlforge.target_python import RunnerAnswer
from yamlforge.targets import detect_target

cli = CliRunner()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


@pytest.mark.parametrize(("content", "after", "expected"), [
    ("patched\n", digest("patched\n"), "ok"),
    ("patched + user edit\n", digest("patched\n"), "modified"),
    (None, digest("patched\n"), "missing"),
    (None, None, "ok"),  # a deletion yamlforge recorded: absent is what it should be
], ids=["ok", "modified", "missing", "deleted-as-recorded"])
def test_file_status(tmp_path, content, after, expected):
    if content is not None:
        (tmp_path / "f.py").write_text(content)
    assert file_status(tmp_path, "f.py", after) == expected


def test_doctor_not_a_checkout_exits_2(tmp_path):
    result = cli.invoke(app, ["doctor", "--repo", str(tmp_path)])
    assert result.exit_code == 2
    assert "is not an Ultralytics, YOLOv9, YOLOv7 or YOLOv5 checkout" in result.output


def fake_checkout(root):
    """Just what detect_target reads of an Ultralytics checkout."""
    (root / "ultralytics/nn").mkdir(parents=True)
    (root / "ultralytics/nn/tasks.py").write_text("")
    (root / "ultralytics/__init__.py").write_text('__version__ = "8.3.40"\n')
    return detect_target(root)


def runner_answer(root, *traps: dict):
    """What verify_runner's environment mode prints: the checkout imported from itself, and ``traps``."""
    imported = {"package": "ultralytics", "file": f"{root}/ultralytics/__init__.py", "version": "8.3.40",
                "inside_checkout": True}
    return lambda script, args, python, timeout, target: RunnerAnswer(
        {"imported": imported, "traps": list(traps), "missing": []}, "")


def test_doctor_rolls_back_an_interrupted_run_and_says_so(tmp_path, monkeypatch):
    target = fake_checkout(tmp_path)
    plan_journal(tmp_path, [("ultralytics/nn/modules/shsa.py", b"class SHSA: ...\n")]).save(tmp_path)
    (tmp_path / "ultralytics/nn/modules").mkdir()
    (tmp_path / "ultralytics/nn/modules/shsa.py").write_text("class SHSA: ...\n")  # killed right after this rename
    monkeypatch.setattr(doctor_module, "run_runner", runner_answer(tmp_path))
    report = doctor(target)
    assert report.recovered.endswith("rolled it back (1 of 1 file(s) restored)")
    assert not (tmp_path / "ultralytics/nn/modules").exists() and not (tmp_path / ".yamlforge").exists()
    assert report.ok
    assert doctor(target).recovered is None


def test_doctor_reports_each_environment_trap_with_its_fix(tmp_path, monkeypatch):
    fake_checkout(tmp_path)
    trap = {"name": "thop", "message": "the thop Python imports (/v/thop) comes from thop, not ultralytics-thop",
            "fix": "python -m pip uninstall -y thop && python -m pip install --force-reinstall --no-deps x"}
    monkeypatch.setattr(doctor_module, "run_runner", runner_answer(tmp_path, trap))
    result = cli.invoke(app, ["doctor", "--repo", str(tmp_path)])
    assert result.exit_code == 1
    assert f"problem: {trap['message']}\n  fix: {trap['fix']}\n" in result.stdout
