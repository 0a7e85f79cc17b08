"""The journal of a write in progress (``.yamlforge/journal.json``), and rolling back a run that was killed half-way.

Before the writer changes anything it records every file operation it is about to do: the file, the sha256 of its
old and new content, the staged temp file holding the new content and where the old content is kept meanwhile
(a hard link in ``.yamlforge/backups/``). Deleting the journal is the commit point. A journal found by the next
run therefore means a run died before committing, and it is rolled *back*: every file gets its old content again,
staged files and created folders go. Rolling back needs nothing but what is on disk (a roll forward would also
need every staged file intact) and leaves the checkout as the manifest before that run described it; the user
sees the command failed and runs it again. Each step is idempotent, so a rollback that is itself killed is simply
rolled back again.

``YAMLFORGE_FAULT_AFTER=k`` is a test hook: the process SIGKILLs itself right after its k-th file operation (see
:func:`checkpoint`), so tests can interrupt a write, or a rollback, at every step.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import YamlforgeError
from .manifest import STATE_DIR, sha256

JOURNAL = f"{STATE_DIR}/journal.json"
BACKUPS = f"{STATE_DIR}/backups"
STAGED_SUFFIX = ".yamlforge-new"  # staged files sit next to their destination: a rename is atomic in one folder
FORMAT = 1

FAULT_HOOK = "YAMLFORGE_FAULT_AFTER"
_operations_done: dict[int, int] = {}  # by pid: a forked child counts its own operations from 0


def checkpoint() -> None:
    """Count one file operation of this process; the test hook ``YAMLFORGE_FAULT_AFTER=k`` kills it after the k-th."""
    pid = os.getpid()
    done = _operations_done[pid] = _operations_done.get(pid, 0) + 1
    if os.environ.get(FAULT_HOOK) == str(done):
        os.kill(pid, signal.SIGKILL)


@dataclass
class Operation:
    """One file the write changes; paths relative to the checkout root."""

    path: str
    old: str | None  # sha256 of the content before (None: the file did not exist)
    new: str | None  # sha256 of the content after (None: the file is deleted)
    staged: str | None  # temp file holding the new content until it is renamed into place
    backup: str | None  # where the old content is kept until the write commits


@dataclass
class Journal:
    """Every operation of one write, and the folders it creates, recorded before the first of them."""

    operations: list[Operation]
    made_dirs: list[str]
    pid: int
    format: int = FORMAT

    def save(self, root: Path) -> None:
        """Write the journal atomically (a half-written journal would be worse than none)."""
        path = root / JOURNAL
        path.parent.mkdir(exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=1) + "\n", encoding="utf-8")
        os.replace(tmp, path)
        checkpoint()

    @classmethod
    def load(cls, root: Path) -> Journal | None:
        path = root / JOURNAL
        if not path.is_file():
            return None
        raw = json.loads(path.read_text(encoding="utf-8"))
        return cls([Operation(**op) for op in raw["operations"]], raw["made_dirs"], raw["pid"], raw["format"])


def plan_journal(root: Path, changes: list[tuple[str, bytes | None]]) -> Journal:
    """The journal for ``(path, new bytes)`` changes: hashes, staged and backup names, folders to create."""
    operations, made_dirs = [], []
    for number, (rel, new) in enumerate(changes):
        old = (root / rel).read_bytes() if (root / rel).is_file() else None
        for parent in reversed(Path(rel).parents[:-1]):  # a relative path's last parent is "."
            if parent.as_posix() not in made_dirs and not (root / parent).exists():
                made_dirs.append(parent.as_posix())
        staged = None if new is None else (Path(rel).parent / f".{Path(rel).name}{STAGED_SUFFIX}").as_posix()
        backup = None if old is None else f"{BACKUPS}/{number}"
        operations.append(Operation(rel, sha256(old), sha256(new), staged, backup))
    return Journal(operations, made_dirs, os.getpid())


def roll_back(root: Path, journal: Journal) -> int:
    """Give every file of ``journal`` its old content back; return how many files changed. Idempotent."""
    restored = sum(_undo(root, op) for op in reversed(journal.operations))
    for rel in reversed(journal.made_dirs):
        remove_empty(root / rel)
    return restored


def _undo(root: Path, op: Operation) -> bool:
    """Undo one operation, whichever of its steps were done; whether the file itself changed back."""
    dest = root / op.path
    restored = False
    if op.backup and os.path.lexists(root / op.backup):
        dest.parent.mkdir(parents=True, exist_ok=True)  # the write may have pruned a folder it emptied
        os.replace(root / op.backup, dest)  # a no-op when both are links to one file (killed before the swap) ...
        (root / op.backup).unlink(missing_ok=True)  # ... so the backup may still be there
        restored = True
    elif op.old is None and dest.is_file() and sha256(dest.read_bytes()) == op.new:
        dest.unlink()
        restored = True
    if restored:
        checkpoint()
    if op.staged and os.path.lexists(root / op.staged):
        (root / op.staged).unlink()
        checkpoint()
    return restored


def interrupted(root: Path) -> bool:
    """Whether a write left its traces (its own run may still be going: only the lock's holder can tell)."""
    state = root / STATE_DIR
    traces = any(os.path.lexists(root / rel) for rel in (JOURNAL, BACKUPS, f"{JOURNAL}.tmp"))
    return traces or (state.is_dir() and not any(state.iterdir()))


def recover(root: Path) -> str | None:
    """Roll back a write that died before committing (call it holding the checkout lock); say what was done."""
    journal = Journal.load(root)
    try:
        restored = roll_back(root, journal) if journal is not None else 0
        (root / JOURNAL).unlink(missing_ok=True)
        if journal is not None:
            checkpoint()
        clean_up(root)
    except OSError as exc:
        raise YamlforgeError(f"cannot roll back an interrupted yamlforge run ({exc.strerror})",
                             where=str(exc.filename or root / JOURNAL),
                             hint="fix that, then run the command again") from None
    if journal is None:
        return None
    return (f"a yamlforge run (pid {journal.pid}) was interrupted while writing this checkout; rolled it back "
            f"({restored} of {len(journal.operations)} file(s) restored)")


def clean_up(root: Path) -> None:
    """Remove what a committed write no longer needs: backups, a journal that never became one, an empty state dir."""
    if os.path.lexists(root / BACKUPS):
        shutil.rmtree(root / BACKUPS)
        checkpoint()
    (root / f"{JOURNAL}.tmp").unlink(missing_ok=True)
    remove_empty(root / STATE_DIR)


def remove_empty(directory: Path) -> bool:
    """Remove a folder left empty (a stale ``__pycache__`` does not count as content)."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return True
    if any(e.name != "__pycache__" for e in entries):
        return False
    for cache in entries:
        shutil.rmtree(cache)
    directory.rmdir()
    return True
