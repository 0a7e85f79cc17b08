"""Writes a validated changeset to disk atomically: every file or none."""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .changeset import Changeset
from .errors import YamlforgeError


def _preflight(changeset: Changeset) -> None:
    """Refuse before touching anything: read-only files, or a file that changed since it was read."""
    for change in changeset.effective:
        path = changeset.root / change.path
        if change.old is not None:
            mode = path.stat().st_mode
            # root can write through 0444, so the permission bits, not os.access, say what the user meant.
            if not mode & stat.S_IWUSR:
                raise YamlforgeError(f"'{change.path}' is read-only; nothing was written", where=str(path),
                                     hint=f"chmod u+w {path}")
            if path.read_text(encoding="utf-8") != change.old:
                raise YamlforgeError(f"'{change.path}' changed while yamlforge was working; nothing was written",
                                     where=str(path), hint="run the command again")
        elif path.exists():
            raise YamlforgeError(f"'{change.path}' appeared while yamlforge was working; nothing was written",
                                 where=str(path))


def write_changeset(changeset: Changeset) -> None:
    """Stage every new file next to its destination, then swap them in; on any failure restore what was swapped."""
    changeset.validate()
    _preflight(changeset)
    staged: list[tuple[Path, Path | None, bytes | None]] = []  # (dest, temp file, old bytes)
    made_dirs: list[Path] = []
    done: list[tuple[Path, bytes | None]] = []
    try:
        for change in changeset.effective:
            dest = changeset.root / change.path
            old = dest.read_bytes() if change.old is not None else None
            if change.new is None:
                staged.append((dest, None, old))
                continue
            for parent in reversed(dest.parents):
                if not parent.exists():
                    parent.mkdir()
                    made_dirs.append(parent)
            fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".yamlforge", dir=dest.parent)
            with os.fdopen(fd, "wb") as fh:
                fh.write(change.new.encode("utf-8"))
            if old is not None:
                os.chmod(tmp, stat.S_IMODE(dest.stat().st_mode))
            else:
                os.chmod(tmp, 0o644)
            staged.append((dest, Path(tmp), old))
        for dest, tmp, old in staged:
            if tmp is None:
                dest.unlink()
            else:
                os.replace(tmp, dest)
            done.append((dest, old))
    except OSError as exc:
        for dest, old in reversed(done):
            if old is None:
                dest.unlink(missing_ok=True)
            else:
                dest.write_bytes(old)
        for _, tmp, _ in staged:
            if tmp is not None:
                tmp.unlink(missing_ok=True)
        for directory in reversed(made_dirs):
            _remove_empty(directory)
        raise YamlforgeError(f"could not write the checkout ({exc.strerror}); nothing was changed",
                             where=str(exc.filename or changeset.root)) from None
    for change in changeset.effective:
        if change.new is None:
            for parent in (changeset.root / change.path).parents:
                if parent == changeset.root or not _remove_empty(parent):
                    break


def _remove_empty(directory: Path) -> bool:
    """Remove a folder left empty by a revert (a stale ``__pycache__`` does not count as content)."""
    try:
        entries = list(directory.iterdir())
    except FileNotFoundError:
        return True
    if any(e.name != "__pycache__" for e in entries):
        return False
    for cache in entries:
        for f in cache.iterdir():
            f.unlink()
        cache.rmdir()
    directory.rmdir()
    return True
