"""An in-memory set of file changes: status words, validation before writing, and git-compatible diffs."""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InternalError
from ..textfile import TextStyle, decode, read_style


@dataclass(frozen=True)
class FileChange:
    """One file's old and new text (``None``: the file does not exist on that side), and how each is written."""

    path: str  # relative to the checkout root, posix separators
    old: str | None
    new: str | None
    style: TextStyle = field(default_factory=TextStyle, compare=False)  # how ``new`` is written
    old_style: TextStyle = field(default_factory=TextStyle, compare=False)  # how ``old`` is on disk

    @property
    def status(self) -> str:
        if self.old == self.new:
            return "identical"
        if self.old is None:
            return "create"
        if self.new is None:
            return "delete"
        return "patch"

    def diff(self) -> str:
        """Unified diff with ``a/``/``b/`` headers (``/dev/null`` for a created or deleted file), of the text as it
        is on disk: a CRLF file's diff has CRLF lines, as ``git diff`` prints them and ``git apply`` needs them."""
        old = None if self.old is None else self.old_style.encode(self.old).decode("utf-8")
        new = None if self.new is None else self.style.encode(self.new).decode("utf-8")
        return unified_diff(old, new, "/dev/null" if self.old is None else f"a/{self.path}",
                            "/dev/null" if self.new is None else f"b/{self.path}")


def unified_diff(old: str | None, new: str | None, fromfile: str, tofile: str) -> str:
    """The diff ``git apply`` takes, with its marker for a last line without a newline; ``""`` when nothing changed."""
    if old == new:
        return ""
    lines = difflib.unified_diff((old or "").splitlines(keepends=True), (new or "").splitlines(keepends=True),
                                 fromfile=fromfile, tofile=tofile)
    return "".join(line if line.endswith("\n") else line + "\n\\ No newline at end of file\n" for line in lines)


@dataclass
class Changeset:
    """``{relpath: FileChange}`` for one checkout; only the writer turns it into bytes on disk.

    The text is normalised (:mod:`yamlforge.textfile`); each file is written back in the style it had on disk,
    or the one given to :meth:`set`; a created file takes ``new_style`` (the checkout's line ending).
    """

    root: Path
    changes: dict[str, FileChange] = field(default_factory=dict)
    new_style: TextStyle = field(default_factory=TextStyle)
    _styles: dict[str, TextStyle] = field(default_factory=dict, repr=False)  # given to set()
    _on_disk: dict[str, TextStyle] = field(default_factory=dict, repr=False)  # as read

    @classmethod
    def styled_like(cls, root: Path, path: Path) -> Changeset:
        """A changeset whose created files take the line ending of the file at ``path`` (a base YAML, a tasks file)."""
        style = read_style(path)
        return cls(root, new_style=style.for_new_files if style else TextStyle())

    def read(self, relpath: str) -> str | None:
        """Current text of a file: as already changed in this changeset, else as on disk."""
        if relpath in self.changes:
            return self.changes[relpath].new
        return self._disk(relpath)

    def set(self, relpath: str, new: str | None, *, style: TextStyle | None = None) -> None:
        """Change ``relpath`` to ``new``, written in ``style`` (default: the file's own, else ``new_style``)."""
        old = self.changes[relpath].old if relpath in self.changes else self._disk(relpath)
        if style is not None:
            self._styles[relpath] = style
        self.changes[relpath] = FileChange(relpath, old, new, self.style_of(relpath),
                                           self._on_disk.get(relpath, TextStyle()))

    def _disk(self, relpath: str) -> str | None:
        path = self.root / relpath
        if not path.is_file():
            return None
        text, self._on_disk[relpath] = decode(path.read_bytes())
        return text

    def style_of(self, relpath: str) -> TextStyle:
        """The style ``relpath`` is written in."""
        return self._styles.get(relpath) or self._on_disk.get(relpath) or self.new_style

    def disk_style(self, relpath: str) -> TextStyle | None:
        """The style of ``relpath`` when this changeset read it (None: it did not exist)."""
        return self._on_disk.get(relpath)

    @staticmethod
    def encode(change: FileChange) -> bytes | None:
        """The bytes the writer writes for ``change`` (None: delete the file)."""
        return None if change.new is None else change.style.encode(change.new)

    @property
    def effective(self) -> list[FileChange]:
        """Changes that alter the checkout, sorted by path."""
        return [c for _, c in sorted(self.changes.items()) if c.status != "identical"]

    def diff(self) -> str:
        return "".join(c.diff() for c in self.effective)

    def validate(self) -> None:
        """Refuse to write anything that does not compile.

        Python is compiled with CPython's own parser, the one that will import it: a second libcst parse would
        double apply's cost (parsing dominates it) without rejecting anything more.
        """
        # Text that is already on disk in this checkout (pristine copies kept for revert) or was already checked
        # (the same text written in two places) needs no second check.
        known = {c.old for c in self.changes.values() if c.old is not None}
        for change in self.effective:
            if change.new is None or change.new in known:
                continue
            known.add(change.new)
            if change.path.endswith(".py"):
                try:
                    compile(change.new, change.path, "exec", dont_inherit=True)
                except SyntaxError as exc:
                    raise InternalError(
                        f"the patched file would not compile ({exc.msg}); nothing was written",
                        where=f"{change.path}:{exc.lineno}",
                        hint="please report this with the output of `yamlforge apply --dry-run`",
                    ) from None
            elif change.path.endswith(".json"):
                json.loads(change.new)
