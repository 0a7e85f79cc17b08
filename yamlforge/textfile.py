"""A checkout's text as yamlforge reads it (``\\n`` line endings, no BOM) and as the file has it on disk.

Windows checkouts hold CRLF files (Git for Windows' ``core.autocrlf``) and some editors save a UTF-8 BOM. Codemods
and the YAML compiler only ever see normalised text; :class:`TextStyle` remembers how the file wrote it, so an edit
goes back in the file's own style: with its line ending and BOM, and, in a file with mixed endings, every line the
edit did not touch with the very bytes it had.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass
from pathlib import Path

BOM = "\ufeff"
ENDINGS = ("\r\n", "\n", "\r")
_RAW_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class TextStyle:
    """How a file writes its text: its dominant line ending, a BOM, and, for mixed endings only, its raw text."""

    newline: str = "\n"
    bom: bool = False
    raw: str | None = None  # the decoded text with its own endings, kept only when they are mixed

    @classmethod
    def of(cls, raw: str) -> TextStyle:
        """The style of ``raw`` (decoded, endings as on disk); ties between endings go to ``\\n``."""
        bom = raw.startswith(BOM)
        crlf = raw.count("\r\n")
        counts = {"\r\n": crlf, "\n": raw.count("\n") - crlf, "\r": raw.count("\r") - crlf}
        newline = max(ENDINGS, key=lambda ending: (counts[ending], ending == "\n"))
        mixed = sum(1 for count in counts.values() if count) > 1
        return cls(newline, bom, raw.removeprefix(BOM) if mixed else None)

    @property
    def for_new_files(self) -> TextStyle:
        """The style of a file created next to this one: its line ending (a BOM is one editor's mark on one file)."""
        return TextStyle(self.newline)

    def encode(self, text: str) -> bytes:
        """``text`` (normalised) as bytes in this style: the file's own bytes again for the file's own text."""
        if self.raw is None:
            body = text if self.newline == "\n" else text.replace("\n", self.newline)
        else:
            body = _merge(self.raw, text, self.newline)
        return ((BOM if self.bom else "") + body).encode("utf-8")


def normalise(raw: str) -> str:
    """``raw`` with every line ending as ``\\n`` and no BOM: what Python's own parser makes of it."""
    text = raw.removeprefix(BOM)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text


def decode(data: bytes) -> tuple[str, TextStyle]:
    """A file's bytes as normalised text, and the style to write it back in (UnicodeDecodeError if not UTF-8)."""
    raw = data.decode("utf-8")
    return normalise(raw), TextStyle.of(raw)


def read_text(path: Path) -> str:
    """The normalised text of ``path`` (OSError, UnicodeDecodeError as ``Path.read_text``)."""
    return normalise(Path(path).read_bytes().decode("utf-8"))


def read_style(path: Path) -> TextStyle | None:
    """The style of the file at ``path``, None when there is no such file."""
    path = Path(path)
    return TextStyle.of(path.read_bytes().decode("utf-8")) if path.is_file() else None


def _merge(raw: str, text: str, newline: str) -> str:
    """``text`` where each line it shares with ``raw`` keeps its raw ending, and each new line ends with ``newline``."""
    raw_lines = _RAW_LINE.findall(raw)
    old = [normalise(line) for line in raw_lines]
    new = _split_lines(text)
    out: list[str] = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            out.extend(raw_lines[i1:i2])
        else:
            out.extend(line.replace("\n", newline) for line in new[j1:j2])
    return "".join(out)


def _split_lines(text: str) -> list[str]:
    """Lines of normalised text with their ``\\n`` (``str.splitlines`` would also split at form feeds)."""
    parts = text.split("\n")
    lines = [part + "\n" for part in parts[:-1]]
    if parts[-1]:
        lines.append(parts[-1])
    return lines
