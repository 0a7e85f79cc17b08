"""Replays yamlforge's own edit of a file onto a version the user has changed since (a small diff3)."""

from __future__ import annotations

import difflib

from ..errors import CheckFailed


class Conflict(Exception):
    """Our edit touches lines the user changed; ``line`` is 1-based in the user's version."""

    def __init__(self, line: int):
        super().__init__(line)
        self.line = line


def rebase_edit(recorded: str, current: str, desired: str) -> str:
    """Return ``current`` with the edit ``recorded -> desired`` applied.

    ``recorded`` is the text yamlforge left, ``current`` what is on disk now, ``desired`` what yamlforge
    wants instead of ``recorded``. Every region the edit touches must be unchanged in ``current``
    (and, for pure insertions, its two neighbours adjacent); otherwise :class:`Conflict`.
    """
    if current == recorded:
        return desired
    base, mine, want = (t.splitlines(keepends=True) for t in (recorded, current, desired))
    # base line index -> line index in the user's version, for lines the user kept
    mapping: dict[int, int] = {}
    for block in difflib.SequenceMatcher(None, base, mine, autojunk=False).get_matching_blocks():
        for k in range(block.size):
            mapping[block.a + k] = block.b + k
    out: list[str] = []
    cursor = 0  # next line of ``mine`` not yet copied
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(None, base, want, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        if i2 > i1:  # lines to replace or delete: all kept by the user, contiguously
            kept = [mapping.get(i) for i in range(i1, i2)]
            if None in kept or kept != list(range(kept[0], kept[0] + len(kept))):
                raise Conflict(_near(mapping, i1) + 1)
            start, end = kept[0], kept[-1] + 1
        else:  # pure insertion before base line i1: its neighbours must still touch
            before = mapping.get(i1 - 1, -1) if i1 > 0 else -1
            after = mapping.get(i1, len(mine)) if i1 < len(base) else len(mine)
            if (i1 > 0 and (i1 - 1) not in mapping) or (i1 < len(base) and i1 not in mapping) or after != before + 1:
                raise Conflict(_near(mapping, i1) + 1)
            start = end = after
        if start < cursor:
            raise Conflict(start + 1)
        out.extend(mine[cursor:start])
        out.extend(want[j1:j2])
        cursor = end
    out.extend(mine[cursor:])
    return "".join(out)


def _near(mapping: dict[int, int], i: int) -> int:
    """0-based line of the user's version where base line ``i`` is (or would be)."""
    if i in mapping:
        return mapping[i]
    for j in range(i - 1, -1, -1):
        if j in mapping:
            return mapping[j] + 1
    return 0


def rebase_all(files: dict[str, tuple[str, str, str]]) -> dict[str, str]:
    """Rebase several files at once; every conflict is reported together, nothing is returned on any."""
    result, conflicts = {}, []
    for path, (recorded, current, desired) in sorted(files.items()):
        try:
            result[path] = rebase_edit(recorded, current, desired)
        except Conflict as exc:
            conflicts.append(f"{path}:{exc.line}")
    if conflicts:
        raise CheckFailed(
            "your edits overlap yamlforge's in " + ", ".join(conflicts) + "; nothing was changed",
            hint="undo your edits at those lines (or apply yamlforge's part by hand), then run the command again",
        )
    return result
