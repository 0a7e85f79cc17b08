"""Replaying yamlforge's edit onto a file the user changed: merged where separate, refused where overlapping."""

from __future__ import annotations

import pytest

from yamlforge.errors import CheckFailed
from yamlforge.patch.rebase import Conflict, rebase_all, rebase_edit

ORIGINAL = "import os\n\ndef f():\n    a = 1\n    b = 2\n    return a + b\n"
OURS = "import os\nfrom x import SHSA  # yamlforge\n\ndef f():\n    a = 1\n    b = 2\n    return a + b\n"

CASES = [
    # (id, current, expected after reverting our edit)
    ("untouched", OURS, ORIGINAL),
    ("user-edit-below", OURS.replace("b = 2", "b = 3"), ORIGINAL.replace("b = 2", "b = 3")),
    ("user-line-added-at-end", OURS + "print(1)\n", ORIGINAL + "print(1)\n"),
    ("user-line-added-at-top", "# mine\n" + OURS, "# mine\n" + ORIGINAL),
]


@pytest.mark.parametrize("current,expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_revert_keeps_user_edits(current, expected):
    assert rebase_edit(OURS, current, ORIGINAL) == expected


def test_reapply_onto_user_edit():
    edited = ORIGINAL.replace("a = 1", "a = 10")
    assert rebase_edit(ORIGINAL, edited, OURS) == OURS.replace("a = 1", "a = 10")


def test_revert_when_user_changed_our_line_is_a_conflict():
    with pytest.raises(Conflict) as info:
        rebase_edit(OURS, OURS.replace("SHSA  # yamlforge", "SHSA, CBAM"), ORIGINAL)
    assert info.value.line == 2


def test_insertion_next_to_a_changed_line_is_a_conflict():
    with pytest.raises(Conflict) as info:
        rebase_edit(ORIGINAL, ORIGINAL.replace("import os", "import sys"), OURS)
    assert info.value.line == 2  # where our line would go


def test_conflicts_are_reported_together_with_lines():
    bad = OURS.replace("SHSA  # yamlforge", "SHSA, X")
    with pytest.raises(CheckFailed, match=r"a\.py:2, b\.py:2"):
        rebase_all({"a.py": (OURS, bad, ORIGINAL), "b.py": (OURS, bad, ORIGINAL)})
