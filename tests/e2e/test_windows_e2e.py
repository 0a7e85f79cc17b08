"""Issue 32 on CRLF copies of real checkouts (what Git for Windows checks out): apply -> gen-yaml -> verify -> revert
keep every file's line endings, ``git diff`` shows only the edited lines, and revert is byte-identical; the same with
a UTF-8 BOM on the tasks file. Runs on Linux: the files are converted, the OS is not Windows."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from checkout_tools import tree_hashes
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.patch.manifest import ORIGINALS, read_manifest
from yamlforge.scratch import YOLOV5_RELEASE, YOLOV9_RELEASE, make_checkout
from yamlforge.targets import detect_target
from yamlforge.textfile import BOM

GELAN_C = Path(__file__).resolve().parents[2] / "examples" / "models" / "gelan-c.yaml"
BARE_LF = re.compile(rb"(?<!\r)\n")
BOM_BYTES = BOM.encode("utf-8")
# name: (kind, version, base YAML (a name, or a file copied into the checkout), row SHSA goes after)
TARGETS = {
    "8.0.227": ("ultralytics", "8.0.227", "yolov8n", 4),
    "8.4.190": ("ultralytics", "8.4.190", "yolov8n", 4),
    "yolov9": ("yolov9", YOLOV9_RELEASE, GELAN_C, 4),
    "yolov5": ("yolov5", YOLOV5_RELEASE, "yolov5n", 4),
}


def git(repo: Path, *args: str) -> str:
    return subprocess.run(["git", "-c", "core.autocrlf=false", "-c", "user.name=t", "-c", "user.email=t@t", *args],
                          cwd=repo, capture_output=True, text=True, check=True).stdout


def cli(*args: str) -> str:
    result = CliRunner().invoke(app, [str(a) for a in args])
    assert result.exit_code == 0, result.output
    return result.output


def crlf(path: Path) -> None:
    path.write_bytes(path.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n"))


@pytest.fixture(scope="module", params=sorted(TARGETS))
def windows_checkout(request, tmp_path_factory):
    """(name, repo, base): a checkout whose Python files and model YAMLs are CRLF, committed to git."""
    name = request.param
    kind, version, base, _ = TARGETS[name]
    folder = tmp_path_factory.mktemp(name)
    repo = make_checkout(kind, version, folder / ("yolov5" if kind == "yolov5" else "repo"))  # yolov5 keeps its name
    if isinstance(base, Path):  # a base YAML of ours: it sits in the checkout, CRLF like the rest
        base = shutil.copy(base, repo / base.name)
    for path in [*repo.rglob("*.py"), *repo.rglob("*.yaml")]:
        if "__pycache__" not in path.parts:
            crlf(path)
    git(repo, "init", "-q")
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "CRLF checkout")
    return name, repo, base


def check_round_trip(name: str, repo: Path, base, tmp_path: Path, *, verify: bool) -> None:
    """apply -> gen-yaml (-> verify) -> revert, checking line endings, git's diff and the final bytes."""
    row = TARGETS[name][3]
    before = tree_hashes(repo)
    cli("apply", "--repo", repo, "--module", "SHSA")
    manifest = read_manifest(repo)
    tasks = detect_target(repo).kind.tasks_file
    assert tasks in manifest.files
    for rel, record in manifest.files.items():  # every patched or created file is CRLF, no line of it a bare LF
        data = (repo / rel).read_bytes()
        assert not BARE_LF.search(data), rel
        original = None if record.before is None else committed(repo, rel)
        assert data.startswith(BOM_BYTES) == (original is not None and original.startswith(BOM_BYTES)), rel
        if original is not None:  # the pristine copy kept for revert is the original's bytes
            assert (repo / ORIGINALS / rel).read_bytes() == original, rel
    added, deleted = _numstat(repo, tasks)
    assert 0 < added < 40 and deleted < 5, (added, deleted)  # a few lines, not the whole file

    out = tmp_path / f"{name}-SHSA.yaml"
    cli("gen-yaml", base, "--repo", repo, "--insert-after", f"{row}=SHSA", "-o", out)
    assert not BARE_LF.search(out.read_bytes()) and out.read_bytes().count(b"\r\n") > 10
    if verify:
        report = json.loads(cli("verify", out, "--repo", repo, "--imgsz", "64", "--json"))
        assert report["ok"], [c for c in report["checks"] if c["status"] == "fail"]

    cli("revert", "--repo", repo)
    assert tree_hashes(repo) == before  # byte for byte, every file


def committed(repo: Path, rel: str) -> bytes:
    return subprocess.run(["git", "show", f"HEAD:{rel}"], cwd=repo, capture_output=True, check=True).stdout


def _numstat(repo: Path, rel: str) -> tuple[int, int]:
    added, deleted, _ = git(repo, "diff", "--numstat", "--", rel).split("\t")
    return int(added), int(deleted)


def test_crlf_checkout_keeps_its_line_endings_through_apply_gen_yaml_verify_revert(windows_checkout, tmp_path):
    name, repo, base = windows_checkout
    check_round_trip(name, repo, base, tmp_path, verify=True)


def test_a_tasks_file_with_a_bom_is_patched_and_reverted_byte_for_byte(windows_checkout, tmp_path):
    name, repo, base = windows_checkout
    tasks = repo / detect_target(repo).kind.tasks_file
    tasks.write_bytes(BOM_BYTES + tasks.read_bytes())
    git(repo, "commit", "-qam", "a BOM, as some Windows editors save it")
    check_round_trip(name, repo, base, tmp_path, verify=False)
    assert tasks.read_bytes().startswith(BOM_BYTES)
