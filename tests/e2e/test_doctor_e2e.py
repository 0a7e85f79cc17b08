"""doctor on real checkouts: a clean one, drift against the manifest, a shadowing copy, YOLOv9's package."""

from __future__ import annotations

import hashlib

from typer.testing import CliRunner

from yamlforge.check.doctor import doctor
from yamlforge.cli import app
from yamlforge.patch.manifest import MANIFEST, AppliedModule, FileRecord, Manifest
from yamlforge.scratch import YOLOV9_RELEASE
from yamlforge.targets import detect_target

cli = CliRunner()


def digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


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


def test_doctor_clean_checkout_is_ok(checkout_factory):
    root = checkout_factory("ultralytics", "8.4.190")
    report = doctor(detect_target(root))
    assert report.ok, report.problems
    assert report.imported["inside_checkout"] and report.imported["version"] == "8.4.190"
    result = cli.invoke(app, ["doctor", "--repo", str(root)])
    assert result.exit_code == 0
    assert "doctor: ok" in result.stdout and "applied: nothing" in result.stdout


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


def test_doctor_detects_shadowing_copy(checkout_factory, monkeypatch):
    root = checkout_factory("ultralytics", "8.0.227")
    monkeypatch.setenv("YAMLFORGE_VERIFY_PATH", "append")  # the checkout last: site-packages' copy wins
    report = doctor(detect_target(root))
    assert not report.imported["inside_checkout"]
    assert len(report.problems) == 1
    assert "pip uninstall ultralytics" in report.problems[0].fix


def test_doctor_yolov9_imports_models_from_checkout(checkout_factory):
    root = checkout_factory("yolov9", YOLOV9_RELEASE)
    report = doctor(detect_target(root))
    assert report.ok, report.problems
    assert report.imported["package"] == "models" and report.imported["inside_checkout"]
