"""Reading a folder of Python source without running it: every ``.py`` below it, links checked, each file in its
declared encoding, each parsed (a syntax error names ``file:line``).

Below ``specs`` (a package spec's files) and ``adopt`` (a paper's folder) alike.
"""

from __future__ import annotations

import ast
import io
import os
import tokenize
from pathlib import Path

from .errors import YamlforgeError

SKIPPED_DIRS = {"__pycache__", "node_modules", "site-packages"}  # and every hidden folder (.git, .venv, ...)


def read_folder(root: Path) -> dict[str, str]:
    """The text of every ``.py`` below ``root`` (resolved) by relative path; every file must parse."""
    files = {rel: read_text(root / rel, rel) for rel in package_files(root)}
    for rel, text in files.items():
        parse(text, root / rel)
    return files


def package_files(root: Path) -> list[str]:
    """Relative paths of every ``.py`` below ``root``; a link leading outside ``root`` is refused."""
    found = []
    for folder, dirs, names in os.walk(root):
        here = Path(folder)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                         and inside(root, here / d))
        found += [(here / n).relative_to(root).as_posix() for n in sorted(names)
                  if n.endswith(".py") and inside(root, here / n)]
    if not found:
        raise YamlforgeError(f"folder '{root}' has no .py file", where=str(root),
                             hint="pass the folder that holds the module's .py files, or the file itself")
    return found


def inside(root: Path, path: Path) -> bool:
    """True for a real path inside ``root``; False for a link inside (seen elsewhere); refuses a link outside."""
    if not path.is_symlink():
        return True
    if path.resolve().is_relative_to(root):
        return False
    raise YamlforgeError(f"'{path}' links outside the source folder, to '{path.resolve()}'", where=str(path),
                         hint="copy the linked code into the folder, or pass the folder it lives in")


def read_text(path: Path, shown: str) -> str:
    """The file's text in its declared encoding (PEP 263); NUL bytes or undecodable bytes mean a binary file."""
    data = path.read_bytes()
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
        text = data.decode(encoding)
    except (UnicodeDecodeError, SyntaxError, LookupError):
        text = "\0"
    if "\0" in text:
        raise YamlforgeError(f"'{shown}' is a binary file, not Python source", where=shown,
                             hint="pass the module's .py file")
    return text


def parse(text: str, path: Path) -> ast.Module:
    try:
        return ast.parse(text, filename=str(path))
    except SyntaxError as exc:
        raise YamlforgeError(f"'{path.name}' is not valid Python ({exc.msg})", where=f"{path}:{exc.lineno}",
                             hint="fix the file, or pass only the file or folder that holds the module") from None
