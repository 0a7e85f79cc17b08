"""A writer killed after any one of its file operations loses nothing: the next run rolls it back (or, once it
committed, only tidies up), and a final revert is byte-identical to the original checkout.

The writer runs in a forked child that SIGKILLs itself through the ``YAMLFORGE_FAULT_AFTER`` hook, once for every
k; the plan is made once (planning is what makes a run slow), the checkout copied afresh for each k.
"""

from __future__ import annotations

import itertools
import os
import shutil
import signal
import subprocess
import sys

import pytest

from yamlforge.patch.journal import FAULT_HOOK, JOURNAL
from yamlforge.patch.lock import recover_interrupted
from yamlforge.patch.plan import plan_apply, plan_revert
from yamlforge.patch.writer import write_changeset
from yamlforge.specs import SpecRegistry
from yamlforge.targets import detect_target

VERSION = "8.4.190"
MODULES = ["SHSA", "BiLevelRoutingAttention", "RIFormerBlock", "token_mixer", "RevCol"]
YAMLFORGE = os.path.join(os.path.dirname(sys.executable), "yamlforge")


def snapshot(root):
    """Every file's bytes and every folder (as None), so an extra empty folder counts too."""
    return {p.relative_to(root).as_posix(): p.read_bytes() if p.is_file() else None
            for p in sorted(root.rglob("*")) if "__pycache__" not in p.parts}


def in_child(work, fault_after: int) -> int:
    """Run ``work()`` in a forked child that kills itself after its ``fault_after``-th file operation; wait status."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.environ[FAULT_HOOK] = str(fault_after)
        code = 1
        try:
            work()
            code = 0
        finally:
            os._exit(code)  # never back into pytest
    return os.waitpid(pid, 0)[1]


def fresh(source, dest):
    """A copy of ``source`` made of hard links: the writer never writes a file in place (it renames), so this is
    safe, and :func:`kill_at_every_operation` checks that ``source`` stayed as it was."""
    shutil.rmtree(dest, ignore_errors=True)
    shutil.copytree(source, dest, symlinks=True, copy_function=os.link)
    return dest


def write_planned(plan):
    """The plan's changeset, writable from a child: the test process must not keep holding the lock."""
    plan.lock.release()
    return plan.changeset


def revert_all(root):
    write_changeset(write_planned(plan_revert(detect_target(root), SpecRegistry([]))))


@pytest.fixture(scope="module")
def checkouts(tmp_path_factory, pristine):
    """A pristine copy and the same checkout with all five modules applied."""
    base = tmp_path_factory.mktemp("journal")
    original = fresh(pristine("ultralytics", VERSION), base / "original")
    applied = fresh(original, base / "applied")
    registry = SpecRegistry([])
    write_changeset(write_planned(plan_apply(detect_target(applied), [registry.get(n) for n in MODULES], registry)))
    return original, applied


def kill_at_every_operation(source, work, changeset, after):
    """Kill the write of ``changeset`` after each k-th operation; the next run restores ``source`` or keeps ``after``.

    Returns the last k that left a journal (the most work for a rollback).
    """
    before = snapshot(source)
    outcomes, last_interrupted = set(), None
    for k in itertools.count(1):
        fresh(source, work)
        status = in_child(lambda: write_changeset(changeset), k)
        if os.WIFEXITED(status):
            assert os.WEXITSTATUS(status) == 0
            assert snapshot(work) == after
            break
        assert os.WTERMSIG(status) == signal.SIGKILL
        rolled_back = (work / JOURNAL).exists()
        message = recover_interrupted(work)
        assert (message is not None) == rolled_back, k
        assert snapshot(work) == (before if rolled_back else after), f"killed after operation {k}"
        outcomes.add(rolled_back)
        last_interrupted = k if rolled_back else last_interrupted
    assert snapshot(source) == before
    assert outcomes == {True, False}  # both sides of the commit were hit
    assert k > len(changeset.effective)  # every file is at least one operation
    return last_interrupted


def test_apply_of_five_modules_killed_after_any_operation_is_rolled_back(checkouts, tmp_path):
    original, applied = checkouts
    work = fresh(original, tmp_path / "repo")
    registry = SpecRegistry([])
    changeset = write_planned(plan_apply(detect_target(work), [registry.get(n) for n in MODULES], registry))
    kill_at_every_operation(original, work, changeset, after=snapshot(applied))


def test_revert_killed_after_any_operation_then_reverted_is_byte_identical(checkouts, tmp_path):
    original, applied = checkouts
    work = fresh(applied, tmp_path / "repo")
    changeset = write_planned(plan_revert(detect_target(work), SpecRegistry([])))
    pristine_state = snapshot(original)
    k = kill_at_every_operation(applied, work, changeset, after=pristine_state)
    # The rollback itself killed after each of its operations: rolled back again by the next run.
    interrupted = tmp_path / "interrupted"
    fresh(applied, work)
    in_child(lambda: write_changeset(changeset), k)
    fresh(work, interrupted)
    for j in itertools.count(1):
        fresh(interrupted, work)
        status = in_child(lambda: recover_interrupted(work), j)
        recover_interrupted(work)
        assert snapshot(work) == snapshot(applied), f"recovery killed after operation {j}"
        if os.WIFEXITED(status):
            break
    revert_all(work)
    assert snapshot(work) == pristine_state


def test_console_script_killed_mid_apply_is_rolled_back_by_the_next_command(checkouts, tmp_path):
    original, _ = checkouts
    work = fresh(original, tmp_path / "repo")
    env = {**os.environ, FAULT_HOOK: "18"}  # journal, 7 folders, 6 staged files, 4 renames: riformer.py is in
    killed = subprocess.run([YAMLFORGE, "apply", "--repo", str(work), "-m", "SHSA", "-m", "RIFormerBlock"],
                            env=env, capture_output=True, text=True, check=False)
    assert killed.returncode == -signal.SIGKILL
    assert (work / JOURNAL).exists() and (work / "ultralytics/nn/modules/riformer.py").exists()
    nxt = subprocess.run([YAMLFORGE, "revert", "--repo", str(work)], capture_output=True, text=True, check=False)
    assert nxt.returncode == 0, nxt.stderr
    assert nxt.stderr.startswith("note: a yamlforge run (pid ") and "rolled it back" in nxt.stderr
    assert snapshot(work) == snapshot(original)
