"""Concurrent runs on one checkout take turns: each either succeeds with its change kept or fails in one line,
a run that finds another one working waits (and says so), and the final revert is byte-identical."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time

import pytest

from yamlforge.patch.lock import hold_checkout
from yamlforge.patch.manifest import read_manifest
from yamlforge.patch.plan import plan_apply, plan_revert
from yamlforge.patch.writer import write_changeset
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target

VERSION = "8.4.190"
TASKS = "ultralytics/nn/tasks.py"
YAMLFORGE = os.path.join(os.path.dirname(sys.executable), "yamlforge")
APPLIED_FIRST = ["SHSA", "token_mixer"]
ROUNDS = [  # different modules in each run, so every order of the runs has one right final state
    [("apply", "RIFormerBlock"), ("apply", "BiLevelRoutingAttention"), ("revert", "SHSA"), ("revert", "token_mixer")],
    [("revert", "token_mixer"), ("apply", "RIFormerBlock"), ("apply", "RIFormerBlock"), ("revert", "SHSA"),
     ("apply", "BiLevelRoutingAttention")],
]


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts}


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory, pristine):
    """A pristine copy, and one with SHSA and token_mixer applied."""
    base = tmp_path_factory.mktemp("concurrency")
    original = base / "original"
    shutil.copytree(pristine("ultralytics", VERSION), original)
    applied = base / "applied"
    shutil.copytree(original, applied)
    registry = SpecRegistry([])
    write_changeset(plan_apply(detect_target(applied), [registry.get(n) for n in APPLIED_FIRST], registry).changeset)
    return original, applied


def run_together(repo, runs):
    procs = [subprocess.Popen([YAMLFORGE, verb, "--repo", str(repo), "--module", name], text=True,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for verb, name in runs]
    return [(proc.wait(timeout=600), proc.stderr.read()) for proc in procs]


@pytest.mark.parametrize("attempt", range(5))
def test_concurrent_applies_and_reverts_keep_every_success(checkouts, tmp_path, attempt):
    original, applied = checkouts
    repo = tmp_path / "repo"
    shutil.copytree(applied, repo)
    runs = ROUNDS[attempt % len(ROUNDS)]
    expected = set(APPLIED_FIRST)
    for (verb, name), (code, stderr) in zip(runs, run_together(repo, runs)):
        assert "Traceback" not in stderr
        if code == 0:
            (expected.add if verb == "apply" else expected.discard)(name)
        else:
            assert [line for line in stderr.splitlines() if line.startswith("error:")], stderr
    assert set(read_manifest(repo).modules) == expected
    tasks = (repo / TASKS).read_text(encoding="utf-8")
    registry = SpecRegistry([])
    for name in ("SHSA", "token_mixer", "RIFormerBlock", "BiLevelRoutingAttention"):
        for export in registry.get(name).exports:
            assert (f"import {export}" in tasks) == (name in expected), (name, expected)
    final = subprocess.run([YAMLFORGE, "revert", "--repo", str(repo)], capture_output=True, text=True, check=False)
    assert final.returncode == 0, final.stderr
    assert snapshot(repo) == snapshot(original)


def test_a_second_run_waits_for_the_first_and_says_so(checkouts, tmp_path):
    original, _ = checkouts
    repo = tmp_path / "repo"
    shutil.copytree(original, repo)
    lock = hold_checkout(repo)
    waiting = subprocess.Popen([YAMLFORGE, "apply", "--repo", str(repo), "--module", "SHSA"], text=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    first_line = waiting.stderr.readline()  # printed once it finds the checkout taken; it then keeps waiting
    time.sleep(0.5)
    assert waiting.poll() is None
    lock.release()
    assert waiting.wait(timeout=300) == 0, waiting.stderr.read()
    assert first_line == f"note: waiting for another yamlforge run to finish in {os.path.realpath(repo)}\n"
    assert "SHSA" in read_manifest(repo).modules


def test_a_run_that_waits_too_long_fails_in_one_line(tmp_path):
    lock = hold_checkout(tmp_path)
    code = ("from yamlforge.errors import YamlforgeError\nfrom yamlforge.patch.lock import hold_checkout\n"
            f"try:\n    hold_checkout({str(tmp_path)!r}, timeout=0.5)\nexcept YamlforgeError as exc:\n    print(exc)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            check=False)
    lock.release()
    assert result.stdout == ("another yamlforge run is still changing this checkout after 0.5 s; nothing was changed "
                             f"({os.path.realpath(tmp_path)})\n")
    assert result.stderr.startswith("note: waiting for another yamlforge run")


def test_plans_in_one_process_share_the_lock_and_leave_no_trace(checkouts, tmp_path):
    original, _ = checkouts
    target = detect_target(original)
    first = plan_revert(target, SpecRegistry([]))
    second = plan_revert(target, SpecRegistry([]))  # would wait for itself if the lock were not shared
    assert first.lock is second.lock and first.lock.held
    del first, second
    assert hold_checkout(original, timeout=0).held  # released with the plans: another holder gets it at once
    assert not (original / ".yamlforge").exists()
