"""Writes a validated changeset to disk: every file or none, even if the process is killed half-way.

Under the checkout lock (:mod:`yamlforge.patch.lock`) the writer checks that nothing changed since planning, records
every operation in the journal (:mod:`yamlforge.patch.journal`), stages each new file next to its destination, keeps the
old content as a backup, renames the staged files into place and deletes the journal: that deletion commits.
A failure before it rolls everything back in-process; a killed process is rolled back by the next run.
"""

from __future__ import annotations

import os
import shutil
import stat
from pathlib import Path

from ..errors import YamlforgeError, command_line
from ..textfile import decode
from .changeset import Changeset
from .journal import BACKUPS, JOURNAL, Journal, checkpoint, clean_up, plan_journal, remove_empty, roll_back
from .lock import hold_checkout


def writable_hint(path: Path) -> str:
    """The command that makes ``path`` writable again, in the user's shell."""
    return command_line("attrib", "-r", path) if os.name == "nt" else command_line("chmod", "u+w", path)


def _preflight(changeset: Changeset) -> None:
    """Refuse before touching anything: read-only files, or a file that changed since it was read."""
    for change in changeset.effective:
        path = changeset.root / change.path
        if change.old is not None:
            mode = path.stat().st_mode
            # root can write through 0444, so the permission bits, not os.access, say what the user meant.
            if not mode & stat.S_IWUSR:
                raise YamlforgeError(f"'{change.path}' is read-only; nothing was written", where=str(path),
                                     hint=writable_hint(path))
            if decode(path.read_bytes()) != (change.old, changeset.disk_style(change.path)):
                raise YamlforgeError(f"'{change.path}' changed while yamlforge was working; nothing was written",
                                     where=str(path), hint="run the command again")
        elif path.exists():
            raise YamlforgeError(f"'{change.path}' appeared while yamlforge was working; nothing was written",
                                 where=str(path))


def write_changeset(changeset: Changeset) -> None:
    """Write ``changeset`` holding the checkout lock (the one its plan took, else taken now); release it after."""
    changeset.validate()
    lock = hold_checkout(changeset.root)
    try:
        _preflight(changeset)  # the last line of defence: a plan made without the lock may be stale
        _write(changeset.root, {c.path: changeset.encode(c) for c in changeset.effective})
    finally:
        lock.release()


def _write(root: Path, files: dict[str, bytes | None]) -> None:
    """Journal, stage, swap, commit; undo on any failure before the commit."""
    if not files:
        return
    journal = plan_journal(root, list(files.items()))
    written = False
    try:
        journal.save(root)
        _stage(root, journal, files)
        _swap(root, journal)
        written = True
    except OSError as exc:
        raise YamlforgeError(f"could not write the checkout ({exc.strerror}); nothing was changed",
                             where=str(exc.filename or root)) from None
    finally:
        if not written:  # a disk error, or anything else (Ctrl-C): undone here, not left to the next run
            _undo(root, journal)
    (root / JOURNAL).unlink()  # committed
    checkpoint()
    clean_up(root)


def _stage(root: Path, journal: Journal, files: dict[str, bytes | None]) -> None:
    """Create the missing folders and write every new file under its staged name."""
    for rel in journal.made_dirs:
        (root / rel).mkdir(exist_ok=True)
        checkpoint()
    for op in journal.operations:
        if op.staged is None:
            continue
        dest, staged = root / op.path, root / op.staged
        staged.write_bytes(files[op.path])
        os.chmod(staged, stat.S_IMODE(dest.stat().st_mode) if op.old is not None else 0o644)
        checkpoint()
    (root / BACKUPS).mkdir(exist_ok=True)


def _swap(root: Path, journal: Journal) -> None:
    """Move each old file to its backup (a hard link while it is replaced) and the staged file into its place."""
    for op in journal.operations:
        dest = root / op.path
        if op.backup is not None:
            if op.staged is None:
                os.replace(dest, root / op.backup)
            else:
                _link(dest, root / op.backup)
            checkpoint()
        if op.staged is not None:
            os.replace(root / op.staged, dest)
            checkpoint()
    for op in journal.operations:
        if op.new is None:  # a revert removes the folders its files leave empty
            for parent in (root / op.path).parents:
                if parent == root or not remove_empty(parent):
                    break


def _link(source: Path, backup: Path) -> None:
    """Keep ``source``'s content at ``backup``: a hard link, or an atomic copy where links are not supported."""
    try:
        os.link(source, backup)
    except OSError:
        tmp = backup.with_name(backup.name + ".tmp")
        shutil.copy2(source, tmp)
        os.replace(tmp, backup)


def _undo(root: Path, journal: Journal) -> None:
    """Roll back a write that failed in this process."""
    try:
        roll_back(root, journal)
        (root / JOURNAL).unlink(missing_ok=True)
        clean_up(root)
    except OSError:
        raise YamlforgeError("could not write the checkout, nor undo the files already written", where=str(root),
                             hint="the next `yamlforge apply` or `yamlforge revert` finishes the undo") from None
