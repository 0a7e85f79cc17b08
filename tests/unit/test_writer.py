"""The writer writes every file of a changeset or none, and refuses read-only files up front."""

from __future__ import annotations

import os

import pytest

from yamlforge.errors import YamlforgeError
from yamlforge.patch.changeset import Changeset
from yamlforge.patch.writer import write_changeset


def snapshot(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture
def tree(tmp_path):
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "a.py").write_text("a = 1\n")
    (tmp_path / "pkg" / "b.py").write_text("b = 1\n")
    return tmp_path


def test_writes_creates_and_deletes(tree):
    cs = Changeset(tree)
    cs.set("pkg/a.py", "a = 2\n")
    cs.set("pkg/new/c.py", "c = 1\n")
    cs.set("pkg/b.py", None)
    write_changeset(cs)
    assert snapshot(tree) == {"pkg/a.py": b"a = 2\n", "pkg/new/c.py": b"c = 1\n"}


def patch_remove_create(tree):
    cs = Changeset(tree)
    cs.set("pkg/a.py", "a = 2\n")
    cs.set("pkg/b.py", None)
    cs.set("pkg/new/c.py", "c = 1\n")
    return cs


def test_read_only_file_refused_before_anything_is_written(tree):
    before = snapshot(tree)
    os.chmod(tree / "pkg" / "b.py", 0o444)
    cs = Changeset(tree)
    cs.set("pkg/a.py", "a = 2\n")
    cs.set("pkg/b.py", "b = 2\n")
    with pytest.raises(YamlforgeError, match="'pkg/b.py' is read-only"):
        write_changeset(cs)
    assert snapshot(tree) == before


def test_failure_midway_restores_everything(tree, monkeypatch):
    before = snapshot(tree)
    cs = patch_remove_create(tree)
    real_replace, calls = os.replace, []

    def failing_replace(src, dst):  # the disk fills up on the second swap
        calls.append(dst)
        if len(calls) == 2:
            raise OSError(28, "No space left on device", str(dst))
        real_replace(src, dst)

    monkeypatch.setattr("yamlforge.patch.writer.os.replace", failing_replace)
    with pytest.raises(YamlforgeError, match="No space left on device.*nothing was changed"):
        write_changeset(cs)
    assert snapshot(tree) == before
    assert not (tree / "pkg" / "new").exists()


def test_invalid_python_is_never_written(tree):
    cs = Changeset(tree)
    cs.set("pkg/a.py", "def (:\n")
    with pytest.raises(YamlforgeError, match="would not compile"):
        write_changeset(cs)
    assert (tree / "pkg" / "a.py").read_text() == "a = 1\n"


def test_diff_has_git_headers(tree):
    cs = Changeset(tree)
    cs.set("pkg/a.py", "a = 2\n")
    cs.set("pkg/c.py", "c = 1")
    text = cs.diff()
    assert "--- a/pkg/a.py\n+++ b/pkg/a.py\n" in text
    assert "--- /dev/null\n+++ b/pkg/c.py\n" in text
    assert text.endswith("+c = 1\n\\ No newline at end of file\n")


def test_interrupt_midway_restores_everything_and_leaves_no_journal(tree, monkeypatch):
    before = snapshot(tree)
    cs = patch_remove_create(tree)
    calls = []

    def ctrl_c_after_a_is_replaced_and_b_removed():
        calls.append(1)
        if len(calls) == 7:  # journal, mkdir, 2 staged, backup + swap of a, removal of b
            raise KeyboardInterrupt

    monkeypatch.setattr("yamlforge.patch.writer.checkpoint", ctrl_c_after_a_is_replaced_and_b_removed)
    with pytest.raises(KeyboardInterrupt):
        write_changeset(cs)
    assert snapshot(tree) == before
    assert sorted(p.name for p in tree.rglob("*")) == ["a.py", "b.py", "pkg"]  # no journal, backup or staged file
