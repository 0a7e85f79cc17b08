"""Bad input to apply/revert: one clear line, the documented exit code, and a checkout left unchanged."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import textwrap

import pytest
from checkout_tools import tree_hashes
from typer.testing import CliRunner

from yamlforge.cli import app
from yamlforge.errors import InternalError
from yamlforge.resources import SPECS_DIR

VERSION = "8.4.190"
TASKS = "ultralytics/nn/tasks.py"


@pytest.fixture
def repo(tmp_path, pristine):
    dest = tmp_path / "repo"
    shutil.copytree(pristine("ultralytics", VERSION), dest)
    return dest


def write_spec(folder, body, source="import torch\n\n\nclass Mine(torch.nn.Module):\n    pass\n"):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "mine.py").write_text(source)
    spec = folder / "mine.yaml"
    spec.write_text(textwrap.dedent(body))
    return spec


SPEC = """\
name: Mine
summary: my layer
paper: "Me, 2026"
source: mine.py
exports: [Mine]
role: layer
channels: keep
"""


def break_syntax(repo):
    path = repo / TASKS
    path.write_text(path.read_text().replace("def parse_model(", "def parse_model((", 1))


def make_read_only(repo):
    os.chmod(repo / TASKS, 0o444)


def unknown_parse_model_shape(repo):
    path = repo / TASKS
    text = path.read_text()
    path.write_text(text.replace('for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):',
                                 'for i, layer in enumerate(d["layers"]):\n        f, n, m, args = layer', 1))


def foreign_module_file(repo):
    (repo / "ultralytics/nn/modules/shsa.py").write_text("# somebody else's SHSA\nclass SHSA:\n    pass\n")


def corrupt_manifest(repo):
    (repo / ".yamlforge").mkdir()
    (repo / ".yamlforge/manifest.json").write_text("{not json")


def not_a_checkout(repo):
    (repo / TASKS).unlink()


CASES = [
    # id, setup(repo, tmp_path) -> extra args, command, expected message, exit code
    ("repo-not-a-checkout", lambda r, t: not_a_checkout(r), ["apply", "--module", "SHSA"],
     "is not an Ultralytics, YOLOv9, YOLOv7 or YOLOv5 checkout (looked for ultralytics/nn/tasks.py", 2),
    ("unknown-module", None, ["apply", "--module", "SHSAX"], "unknown module 'SHSAX'; did you mean SHSA", 2),
    ("nothing-to-apply", None, ["apply"], "nothing to apply (--module)", 2),
    ("unknown-fix", None, ["apply", "--fix", "speed"], "unknown fix 'speed' (known: flops) (--fix)", 2),
    ("malformed-spec", lambda r, t: ["--spec", write_spec(t / "s", SPEC + "exports: [\n")],
     ["apply"], "malformed YAML in module spec", 2),
    ("spec-unknown-field", lambda r, t: ["--spec", write_spec(t / "s", SPEC + "colour: red\n")],
     ["apply"], "unknown field 'colour'", 2),
    ("spec-bad-class-name", lambda r, t: ["--spec", write_spec(t / "s", SPEC.replace("[Mine]", "[Mi-ne]"))],
     ["apply"], "'Mi-ne' is not a Python identifier", 2),
    ("spec-source-escapes",
     lambda r, t: ["--spec", write_spec(t / "s", SPEC.replace("source: mine.py", "source: ../../etc/x.py"))],
     ["apply"], "points outside the spec's folder", 2),
    ("class-name-clash",
     lambda r, t: ["--spec", write_spec(t / "s", SPEC.replace("[Mine]", "[Conv]").replace("name: Mine", "name: Conv"),
                                        source="class Conv:\n    pass\n")],
     ["apply"], "'Conv' already exists in the target with different code", 2),
    ("tasks-syntax-error", lambda r, t: break_syntax(r), ["apply", "--module", "SHSA"],
     "'ultralytics/nn/tasks.py' is not valid Python", 2),
    ("tasks-read-only", lambda r, t: make_read_only(r), ["apply", "--module", "SHSA"],
     "'ultralytics/nn/tasks.py' is read-only; nothing was written", 2),
    ("parse-model-unknown-shape", lambda r, t: unknown_parse_model_shape(r), ["apply", "--module", "SHSA"],
     "ultralytics/nn/tasks.py:", 2),
    ("module-file-exists-with-other-code", lambda r, t: foreign_module_file(r), ["apply", "--module", "SHSA"],
     "already exists", 2),
    ("corrupt-manifest", lambda r, t: corrupt_manifest(r), ["apply", "--module", "SHSA"],
     "unreadable yamlforge manifest", 2),
    ("revert-module-not-applied", None, ["revert", "--module", "SHSA"],
     "nothing is applied to", 2),
    ("check-finds-work", None, ["apply", "--module", "SHSA", "--check"], "would be applied", 1),
]


@pytest.mark.parametrize("setup,command,message,code", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_and_changes_nothing(repo, tmp_path, setup, command, message, code):
    extra = (setup(repo, tmp_path) if setup else None) or []
    before = tree_hashes(repo)
    result = CliRunner().invoke(app, [*command, "--repo", str(repo), *map(str, extra)])
    assert result.exit_code == code, result.output
    assert message in result.output
    assert "Traceback" not in result.output
    if code == 2:
        errors = [line for line in result.output.splitlines() if line.startswith("error:")]
        assert len(errors) == 1, result.output
    assert tree_hashes(repo) == before


def test_missing_repo_option_is_a_usage_error():
    result = CliRunner().invoke(app, ["apply", "--module", "SHSA"])
    assert result.exit_code == 2
    assert "--repo" in result.output


def test_list_and_show(tmp_path):
    runner = CliRunner()
    listed = runner.invoke(app, ["list", "--json"])
    assert listed.exit_code == 0
    import json

    names = {row["name"] for row in json.loads(listed.stdout)}
    assert {"SHSA", "BiLevelRoutingAttention", "RIFormerBlock", "token_mixer"} <= names
    assert len(names) == len(list(SPECS_DIR.glob("*.yaml")))  # one row per bundled spec file
    shown = runner.invoke(app, ["show", "SHSA"])
    assert shown.exit_code == 0, shown.output
    assert "[-1, 1, SHSA, []]" in shown.stdout
    assert "c2 = ch[f]" in shown.stdout
    assert "SHViT" in shown.stdout
    rif = runner.invoke(app, ["show", "RIFormerBlock"])
    assert "[-1, 1, RIFormerBlock, [<c2>]]" in rif.stdout
    assert runner.invoke(app, ["show", "Nope"]).exit_code == 2


def test_backbone_shape_error_names_the_line_in_the_users_file(repo):
    tasks = repo / TASKS
    text = tasks.read_text().replace("        ch.append(c2)\n", "        ch += [c2]\n", 1)
    tasks.write_text(text)
    loop = 'for i, (f, n, m, args) in enumerate(d["backbone"] + d["head"]):'
    line = text[: text.index(loop)].count("\n") + 1  # the row loop, in the user's own numbering
    before = tree_hashes(repo)
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--module", "revcol_tiny"])
    assert result.exit_code == 2, result.output
    assert f"expected 'ch.append(c2)' at the end of the row loop ({TASKS}:{line})" in result.output
    assert tree_hashes(repo) == before


# ---------------------------------------------------------------- dry run, --diff, --check: the stdout/stderr contract

DIFF_LINE = re.compile(r"^(--- (a/|/dev/null)|\+\+\+ (b/|/dev/null)|@@ -\d+(,\d+)? \+\d+(,\d+)? @@|[ +\-\\])")
STATUS_LINE = re.compile(r"^(would (create|patch|remove) +\S+|SHSA: would be applied on .*)$")


def git_apply_check(repo, patch_text, tmp_path):
    """``git apply --check`` of the patch in a fresh git repository holding the checkout."""
    work = tmp_path / "git-work"
    shutil.copytree(repo, work)
    subprocess.run(["git", "init", "-q"], cwd=work, check=True)
    patch = tmp_path / "change.patch"
    patch.write_text(patch_text)
    return subprocess.run(["git", "apply", "--check", str(patch)], cwd=work, capture_output=True, text=True,
                          check=False)


@pytest.mark.parametrize("flag", ["--dry-run", "--diff"])
def test_dry_run_writes_nothing_and_its_stdout_git_applies(repo, tmp_path, flag):
    before = tree_hashes(repo)
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA", flag])
    assert result.exit_code == 0, result.output
    assert tree_hashes(repo) == before
    assert f"+++ b/{TASKS}" in result.stdout
    assert "--- /dev/null\n+++ b/ultralytics/nn/modules/shsa.py\n" in result.stdout
    assert [line for line in result.stdout.splitlines() if not DIFF_LINE.match(line)] == []
    assert [line for line in result.stderr.splitlines() if not STATUS_LINE.match(line)] == []
    assert f"would patch    {TASKS}" in result.stderr.splitlines()
    check = git_apply_check(repo, result.stdout, tmp_path)
    assert check.returncode == 0, check.stderr


def test_check_exits_1_with_work_and_0_without_and_never_writes(repo):
    runner = CliRunner()
    before = tree_hashes(repo)
    pending = runner.invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA", "--check"])
    assert pending.exit_code == 1, pending.output
    assert pending.stdout == ""  # like black: --check alone prints no diff
    assert "SHSA: would be applied" in pending.stderr
    with_diff = runner.invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA", "--check", "--diff"])
    assert with_diff.exit_code == 1 and f"+++ b/{TASKS}" in with_diff.stdout
    assert tree_hashes(repo) == before
    assert runner.invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA"]).exit_code == 0
    applied = tree_hashes(repo)
    done = runner.invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA", "--check", "--diff"])
    assert done.exit_code == 0, done.output
    assert done.stdout == ""
    assert "SHSA: already applied, nothing to do" in done.stderr
    assert tree_hashes(repo) == applied


def test_a_write_prints_no_diff(repo):
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA"])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert f"patch    {TASKS}" in result.stderr.splitlines()


# ---------------------------------------------------------------- internal errors: exit 3, never mistaken for bad input


def crash(*args, **kwargs):
    raise KeyError("slot")


def internal(*args, **kwargs):
    raise InternalError("the patched file would not compile", where=f"{TASKS}:12")


def test_unexpected_exception_is_one_internal_error_line_and_exit_3(repo, monkeypatch):
    monkeypatch.setattr("yamlforge.patch.plan.plan_apply", crash)
    monkeypatch.delenv("YAMLFORGE_TRACEBACK", raising=False)
    before = tree_hashes(repo)
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA"])
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [
        f"error: internal error: KeyError: 'slot' (test_apply_cli.py:{crash.__code__.co_firstlineno + 1})",
        "hint: please report this bug; YAMLFORGE_TRACEBACK=1 shows the traceback",
    ]
    assert tree_hashes(repo) == before


def test_traceback_env_lets_the_exception_through(repo, monkeypatch):
    monkeypatch.setattr("yamlforge.patch.plan.plan_apply", crash)
    monkeypatch.setenv("YAMLFORGE_TRACEBACK", "1")
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA"])
    assert isinstance(result.exception, KeyError)


def test_internal_error_exits_3_with_its_report_hint(repo, monkeypatch):
    monkeypatch.setattr("yamlforge.patch.plan.plan_apply", internal)
    result = CliRunner().invoke(app, ["apply", "--repo", str(repo), "--module", "SHSA"])
    assert result.exit_code == 3, result.output
    assert result.stderr.splitlines() == [
        f"error: internal error: the patched file would not compile ({TASKS}:12)",
        "hint: please report this as a bug",
    ]


# ---------------------------------------------------------------- demo: library calls, rendered like the commands


def test_demo_applies_generates_and_verifies_the_written_model(tmp_path, monkeypatch):
    verified = []
    # the only step that needs torch; e2e tests run it for real
    monkeypatch.setattr("yamlforge.cli.demo.verify_written",
                        lambda model, target, **options: verified.append((model, target.root, options)))
    result = CliRunner().invoke(app, ["demo", "--dir", str(tmp_path), "--imgsz", "128"])
    assert result.exit_code == 0, result.output
    repo = tmp_path / f"ultralytics-{VERSION}"
    model = repo / "ultralytics/cfg/models/rt-detr/rtdetr-l-SHSA.yaml"
    assert verified == [(model, repo, {"imgsz": 128, "train": False})]
    assert f"+++ b/{TASKS}" in result.stdout
    assert re.search(r"^  - \[-1, 1, SHSA, \[.*\]\] # 4$", result.stdout, re.MULTILINE)
    assert f"patch    {TASKS}" in result.stderr.splitlines()
    assert "SHSA" in (repo / TASKS).read_text()
    assert model.read_text() in result.stdout


@pytest.mark.parametrize("command", ["apply", "demo"])
def test_apply_and_demo_both_run_the_channel_rule_probe(tmp_path, pristine, monkeypatch, command):
    """demo plans its apply through apply's own library call, so the probe's notes reach the user in both."""
    probed = []

    def probe(specs, python):  # the real probe skips bundled specs; this one answers for them
        probed.append([spec.name for spec in specs])
        return [f"probed the channel rule of {', '.join(spec.name for spec in specs)}"]

    monkeypatch.setattr("yamlforge.adopt.rulecheck.check_channel_rules", probe)
    monkeypatch.setattr("yamlforge.cli.demo.verify_written", lambda model, target, **options: None)
    if command == "apply":
        repo = tmp_path / "repo"
        shutil.copytree(pristine("ultralytics", VERSION), repo)
        args = ["apply", "--repo", str(repo), "--module", "SHSA"]
    else:
        args = ["demo", "--dir", str(tmp_path), "--imgsz", "128"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert probed == [["SHSA"]]
    assert "note: probed the channel rule of SHSA" in result.stderr.splitlines()
