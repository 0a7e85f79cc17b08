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
from yamlforge.patch.manifest import MANIFEST, AppliedModule, FileRecord, Manifest
from yamlforge.scratch import YOLOV9_RELEASE
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


def write_manifest(root, *, requires: list[str]) -> str:
    """A manifest as the engine writes it after applying one module: the created file and the patched tasks.py."""
    module_file = "ultralytics/nn/modules/shsa.py"
    (root / module_file).write_text("class SHSA: ...\n")
    tasks = root / "ultralytics/nn/tasks.py"
    manifest = Manifest(
        target="ultralytics 8.4.190",
        modules={"SHSA": AppliedModule(spec_digest="0" * 64, exports=["SHSA"], role="layer", channels="keep",
                                       file=module_file, requires=requires)},
        files={
            module_file: FileRecord(before=None, after=digest("class SHSA: ...\n")),
            "ultralytics/nn/tasks.py": FileRecord(before=None, after=hashlib.sha256(tasks.read_bytes()).hexdigest()),
        },
    )
    (root / MANIFEST).parent.mkdir(exist_ok=True)
    (root / MANIFEST).write_text(manifest.to_text())
    return module_file


@pytest.mark.e2e
def test_doctor_clean_checkout_is_ok(checkout_factory):
    root = checkout_factory("ultralytics", "8.4.190")
    report = doctor(detect_target(root))
    assert report.ok, report.problems
    assert report.imported["inside_checkout"] and report.imported["version"] == "8.4.190"
    result = cli.invoke(app, ["doctor", "--repo", str(root)])
    assert result.exit_code == 0
    assert "doctor: ok" in result.stdout and "applied: nothing" in result.stdout


@pytest.mark.e2e
def test_doctor_reports_drift_and_missing_requirements_with_fixes(checkout_factory):
    root = checkout_factory("ultralytics", "8.4.190")
    module_file = write_manifest(root, requires=["typer>=0.1", "yamlforge-no-such-package>=1", "typer>=999"])
    (root / module_file).write_text("class SHSA: ...  # edited by hand\n")
    report = doctor(detect_target(root))
    assert report.files == {module_file: "modified", "ultralytics/nn/tasks.py": "ok"}
    assert report.modules == {"SHSA": ["SHSA"]}
    missing = {m["requirement"]: m["installed"] for m in report.missing_requirements}
    assert set(missing) == {"yamlforge-no-such-package>=1", "typer>=999"}
    assert missing["yamlforge-no-such-package>=1"] is None and missing["typer>=999"]
    fixes = [p.fix for p in report.problems]
    assert fixes[0] == f"yamlforge apply --repo {root} --module SHSA  # re-applies onto your edits"
    assert any(f.endswith("pip install 'yamlforge-no-such-package>=1'") for f in fixes)
    result = cli.invoke(app, ["doctor", "--repo", str(root)])
    assert result.exit_code == 1
    assert f"modified {module_file}" in " ".join(result.stdout.split())
    assert "doctor: 3 problem(s)" in result.stdout


@pytest.mark.e2e
def test_doctor_detects_shadowing_copy(checkout_factory, monkeypatch):
    root = checkout_factory("ultralytics", "8.0.227")
    monkeypatch.setenv("YAMLFORGE_VERIFY_PATH", "append")  # the checkout last: site-packages' copy wins
    report = doctor(detect_target(root))
    assert not report.imported["inside_checkout"]
    assert len(report.problems) == 1
    assert "pip uninstall ultralytics" in report.problems[0].fix


@pytest.mark.e2e
def test_doctor_yolov9_imports_models_from_checkout(checkout_factory):
    root = checkout_factory("yolov9", YOLOV9_RELEASE)
    report = doctor(detect_target(root))
    assert report.ok, report.problems
    assert report.imported["package"] == "models" and report.imported["inside_checkout"]


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
    return lambda python, args, timeout, script: ({"imported": imported, "traps": list(traps), "missing": []}, "")


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
